// Replays an editing trace with Yjs or Automerge, one edit per transaction, and
// prints one JSON line like notes_bench does (bench/notes/run.sh compares them).
//   node --expose-gc yjs_automerge.mjs <yjs|automerge> <trace.json.gz>
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { basename } from 'node:path';
import * as Y from 'yjs';
// Automerge 2's string-as-text API with splice() is its "next" entry point.
const A = await import('@automerge/automerge/next');

const [impl, path] = process.argv.slice(2);
const trace = JSON.parse(gunzipSync(readFileSync(path)).toString('utf8'));
const name = basename(path).replace('.json.gz', '');
const edits = trace.txns.flatMap((t) => t.patches);

const mem = () => {
  global.gc?.();
  const m = process.memoryUsage();
  return m.heapUsed + m.external + m.arrayBuffers;
};
let t0 = performance.now();
let text, encoded, load, holder;
if (impl === 'yjs') {
  const doc = new Y.Doc();
  const t = doc.getText('text');
  for (const [pos, del, ins] of edits) {
    doc.transact(() => {
      if (del) t.delete(pos, del);
      if (ins) t.insert(pos, ins);
    });
  }
  var replay = performance.now() - t0;
  text = t.toString();
  encoded = Y.encodeStateAsUpdate(doc);
  holder = doc;
  const l0 = performance.now();
  const d2 = new Y.Doc();
  Y.applyUpdate(d2, encoded);
  d2.getText('text').toString();
  load = performance.now() - l0;
} else {
  let doc = A.from({ text: '' });
  for (const [pos, del, ins] of edits) {
    doc = A.change(doc, (d) => A.splice(d, ['text'], pos, del, ins));
  }
  var replay = performance.now() - t0;
  text = doc.text;
  encoded = A.save(doc);
  holder = doc;
  const l0 = performance.now();
  const d2 = A.load(encoded);
  void d2.text;
  load = performance.now() - l0;
}
// Memory held by the document: with it alive, minus after dropping it.
const alive = mem();
if (impl === 'automerge') A.free(holder);
holder = null;
const heap = alive - mem();
if (text !== trace.endContent) {
  console.error(`${impl} ${name}: wrong final text`);
  process.exit(1);
}
console.log(JSON.stringify({
  impl, trace: name, edits: edits.length, replay_ms: +replay.toFixed(2), heap_bytes: heap,
  encoded_bytes: encoded.length, load_ms: +load.toFixed(2),
  maxrss_kb: Math.round(process.resourceUsage().maxRSS),
}));

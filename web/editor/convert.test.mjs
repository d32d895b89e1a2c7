// Unit tests of convert.js: code points ↔ UTF-16, edits ↔ ChangeSet, diffs.
//   node --test web/editor/convert.test.mjs   (needs npm ci in web/editor)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChangeSet } from '@codemirror/state';
import { applyEdits, rng, randomText } from './testutil.mjs';
import { cpLength, utf16ToCp, cpToUtf16, changesToEdits, editsToChanges, diffTexts, textOf, composeAll } from './convert.js';

test('cpLength counts code points', () => {
  assert.equal(cpLength(''), 0);
  assert.equal(cpLength('abc'), 3);
  assert.equal(cpLength('a😀b'), 3);
  assert.equal(cpLength('👍🏽'), 2); // two code points (emoji + skin tone), four UTF-16 units
  assert.equal(cpLength('\ud83d'), 1); // lone high surrogate
  assert.equal(cpLength('\ude00x'), 2); // lone low surrogate
});

test('utf16ToCp and cpToUtf16 on strings and Texts, across lines', () => {
  const s = 'a😀b\n𝄞\n\nxé😀';
  for (const doc of [s, textOf(s)]) {
    const cps = Array.from(s);
    let u = 0;
    for (let i = 0; i <= cps.length; i++) {
      assert.equal(cpToUtf16(doc, i), u, `cp ${i}`);
      assert.equal(utf16ToCp(doc, u), i, `utf16 ${u}`);
      if (i < cps.length) u += cps[i].length;
    }
    assert.throws(() => cpToUtf16(doc, cps.length + 1), RangeError);
    assert.throws(() => cpToUtf16(doc, -1), RangeError);
  }
  // counting from a start offset
  assert.equal(cpToUtf16('😀😀x', 2, 2), 5);
});

test('changesToEdits: a ChangeSet with several changes and astral characters', () => {
  const doc = textOf('😀ab😀\ncd😀e');
  // replace "ab" by "X😀", delete "c", insert "🎉" before "e"
  const changes = ChangeSet.of([{ from: 2, to: 4, insert: 'X😀' }, { from: 7, to: 8 }, { from: 11, insert: '🎉' }], doc.length, '\n');
  const edits = changesToEdits(changes, doc);
  assert.deepEqual(edits, [[1, 2, 'X😀'], [5, 1, ''], [7, 0, '🎉']]);
  assert.equal(applyEdits(doc.toString(), edits), changes.apply(doc).toString());
});

test('editsToChanges: sequential splice semantics, result and errors', () => {
  const doc = textOf('h😀llo\nwörld');
  const edits = [[0, 1, 'H'], [2, 3, 'ey'], [4, 0, '👍🏽 '], [100 - 100, 0, '>']];
  const { changes, doc: out } = editsToChanges(edits, doc);
  assert.equal(out.toString(), applyEdits(doc.toString(), edits));
  assert.equal(changes.apply(doc).toString(), out.toString());
  assert.throws(() => editsToChanges([[99, 0, 'x']], doc), RangeError);
  assert.throws(() => editsToChanges([[0, 99, '']], doc), RangeError);
  assert.throws(() => editsToChanges([[0, 0]], doc), TypeError);
  assert.throws(() => editsToChanges([[-1, 0, 'x']], doc), TypeError);
  assert.throws(() => editsToChanges([[0.5, 0, 'x']], doc), TypeError);
  // "\r\n" and "\r" stay characters: lengths agree with the server
  const r = editsToChanges([[0, 0, 'a\r\nb\r']], textOf(''));
  assert.equal(r.doc.length, 5);
  assert.equal(utf16ToCp(r.doc, r.doc.length), cpLength('a\r\nb\r'));
});

test('random round trips: ChangeSet → edits → ChangeSet, against the server semantics', () => {
  const r = rng(7);
  for (let round = 0; round < 400; round++) {
    const start = randomText(r, Math.floor(r() * 30));
    let doc = textOf(start);
    // a composed ChangeSet of 1–4 random steps (at code point boundaries)
    const steps = [];
    for (let i = 0, n = 1 + Math.floor(r() * 4); i < n; i++) {
      const len = cpLength(doc.toString());
      const p = Math.floor(r() * (len + 1)), d = Math.floor(r() * (len - p + 1) * (r() < 0.5 ? 0 : 1));
      const from = cpToUtf16(doc, p), to = cpToUtf16(doc, d, from);
      const step = ChangeSet.of({ from, to, insert: randomText(r, Math.floor(r() * 4)) }, doc.length, '\n');
      steps.push(step);
      doc = step.apply(doc);
    }
    const startDoc = textOf(start);
    const composed = composeAll(steps, startDoc.length);
    const edits = changesToEdits(composed, startDoc);
    assert.equal(applyEdits(start, edits), doc.toString(), `round ${round}`);
    const back = editsToChanges(edits, startDoc);
    assert.equal(back.doc.toString(), doc.toString());
    assert.equal(back.changes.apply(startDoc).toString(), doc.toString());
  }
});

test('diffTexts turns a into b, keeps untouched positions, never splits a pair', () => {
  const r = rng(11);
  for (let round = 0; round < 300; round++) {
    const a = randomText(r, Math.floor(r() * 60));
    let b = a;
    for (let i = 0; i < 1 + Math.floor(r() * 3); i++) {
      const cps = Array.from(b), p = Math.floor(r() * (cps.length + 1));
      cps.splice(p, Math.floor(r() * 3), ...Array.from(randomText(r, Math.floor(r() * 3))));
      b = cps.join('');
    }
    const ta = textOf(a), tb = textOf(b);
    const c = diffTexts(ta, tb);
    assert.equal(c.apply(ta).toString(), b, `round ${round}`);
    c.iterChanges((fromA, toA) => {
      for (const pos of [fromA, toA]) {
        const hi = a.charCodeAt(pos - 1), lo = a.charCodeAt(pos);
        assert.ok(!(hi >= 0xd800 && hi <= 0xdbff && lo >= 0xdc00 && lo <= 0xdfff), `split pair at ${pos} in round ${round}`);
      }
    });
  }
  // Line-level: a change on line 1 and on line 5 are two changes; a cursor on line 3 stays.
  const a = textOf('one\ntwo\nthree\nfour\nfive'), b = textOf('ONE\ntwo\nthree\nfour\nfive!');
  const c = diffTexts(a, b);
  const parts = [];
  c.iterChanges((fromA, toA, _fb, _tb, ins) => parts.push([fromA, toA, ins.toString()]));
  assert.deepEqual(parts, [[0, 3, 'ONE'], [23, 23, '!']]);
  assert.equal(c.mapPos(10), 10);
  // Whole lines inserted and removed in the middle of a long text
  const lines = Array.from({ length: 50 }, (_, i) => `line ${i}`);
  const moved = [...lines.slice(0, 10), 'new', ...lines.slice(10, 30), ...lines.slice(31)];
  const d = diffTexts(textOf(lines.join('\n')), textOf(moved.join('\n')));
  assert.equal(d.apply(textOf(lines.join('\n'))).toString(), moved.join('\n'));
  const pos40 = lines.slice(0, 40).join('\n').length + 1; // start of "line 40"
  assert.equal(textOf(moved.join('\n')).sliceString(d.mapPos(pos40), d.mapPos(pos40) + 7), 'line 40');
});

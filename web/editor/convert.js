// Positions between CodeMirror and the notepad API (docs/notes-api.md).
// CodeMirror counts UTF-16 code units; the API counts Unicode code points. An
// API edit is [position, deleteCount, "inserted"] with splice semantics, a list
// of edits applying in order, each to the result of the previous ones.
// Documents use "\n" as the only line separator (EditorState.lineSeparator is
// set to "\n", so "\r" stays a character and lengths agree with the server).

import { ChangeSet, Text } from '@codemirror/state';

export const LINE_SEP = '\n';
const SURROGATE = /[\uD800-\uDFFF]/;
const isHigh = (c) => c >= 0xd800 && c <= 0xdbff;
const isLow = (c) => c >= 0xdc00 && c <= 0xdfff;

export const textOf = (s) => Text.of(String(s).split(LINE_SEP));

// Code points in a string (a lone surrogate counts as one).
export function cpLength(s) {
  if (!SURROGATE.test(s)) return s.length;
  let n = 0;
  for (let i = 0; i < s.length; i++, n++) {
    if (isHigh(s.charCodeAt(i)) && i + 1 < s.length && isLow(s.charCodeAt(i + 1))) i++;
  }
  return n;
}

// The chunks of a Text (lines and "\n") or of a string, from UTF-16 offset `from` to `to`.
function* chunks(doc, from, to) {
  if (typeof doc === 'string') { yield doc.slice(from, to); return; }
  for (const it = doc.iterRange(from, to); !it.next().done;) yield it.value;
}
const docLength = (doc) => doc.length;

// Code points before UTF-16 offset `pos` of doc (a Text or a string).
export function utf16ToCp(doc, pos) {
  if (!(pos >= 0 && pos <= docLength(doc))) throw new RangeError(`offset ${pos} outside the document`);
  let n = 0;
  for (const s of chunks(doc, 0, pos)) n += cpLength(s);
  return n;
}

// UTF-16 offset of code point `cp` of doc, scanning from UTF-16 offset `start`
// (a code point boundary) counting `cp` code points from there. Throws a
// RangeError past the end.
export function cpToUtf16(doc, cp, start = 0) {
  if (!Number.isInteger(cp) || cp < 0) throw new RangeError(`bad position ${cp}`);
  let u = start, left = cp;
  for (const s of chunks(doc, start, docLength(doc))) {
    if (!SURROGATE.test(s)) {
      if (left <= s.length) return u + left;
      left -= s.length; u += s.length;
      continue;
    }
    for (let i = 0; i < s.length; i++) {
      if (left === 0) return u + i;
      if (isHigh(s.charCodeAt(i)) && i + 1 < s.length && isLow(s.charCodeAt(i + 1))) i++;
      left--;
    }
    u += s.length;
  }
  if (left === 0) return u;
  throw new RangeError(`position ${cp} past the end of the document`);
}

// Counts code points for non-decreasing UTF-16 offsets in one pass.
function counter(doc) {
  let last = 0, n = 0;
  return (pos) => {
    if (pos < last) { last = 0; n = 0; }
    for (const s of chunks(doc, last, pos)) n += cpLength(s);
    last = pos;
    return n;
  };
}

// A ChangeSet that applies to `doc` → API edits (code points, in order,
// each relative to the result of the previous ones).
export function changesToEdits(changes, doc) {
  const edits = [];
  const at = counter(doc);
  let shift = 0;
  changes.iterChanges((fromA, toA, _fromB, _toB, inserted) => {
    const p = at(fromA), e = at(toA);
    const s = inserted.sliceString(0, inserted.length, LINE_SEP);
    edits.push([p + shift, e - p, s]);
    shift += cpLength(s) - (e - p);
  });
  return edits;
}

// Checks the shape of one API edit; throws a TypeError.
function checkEdit(e) {
  if (!Array.isArray(e) || e.length !== 3 || !Number.isInteger(e[0]) || !Number.isInteger(e[1]) ||
      e[0] < 0 || e[1] < 0 || typeof e[2] !== 'string') throw new TypeError(`malformed edit ${JSON.stringify(e)}`);
}

// API edits against `doc` → { changes: one ChangeSet from doc, doc: the result }.
// Throws (RangeError/TypeError) when an edit does not fit the document.
export function editsToChanges(edits, doc) {
  let cur = doc;
  let changes = ChangeSet.empty(doc.length);
  for (const e of edits) {
    checkEdit(e);
    const [p, d, s] = e;
    if (!d && !s) continue;
    const from = cpToUtf16(cur, p);
    const to = d ? cpToUtf16(cur, d, from) : from;
    const step = ChangeSet.of({ from, to, insert: s }, cur.length, LINE_SEP);
    changes = changes.compose(step);
    cur = step.apply(cur);
  }
  return { changes, doc: cur };
}

// Composes a list of ChangeSets (each applying to the result of the previous).
export function composeAll(list, length) {
  return list.reduce((acc, c) => acc.compose(c), ChangeSet.empty(length));
}

// A ChangeSet turning Text a into Text b: the changed middle (after the common
// prefix and suffix), compared line by line (a Myers diff over lines), and
// within a changed pair of single lines by their common prefix and suffix, so
// positions outside what really changed map to where they were. Never splits
// a surrogate pair.
export function diffTexts(a, b) {
  const sa = a.sliceString(0, a.length, LINE_SEP), sb = b.sliceString(0, b.length, LINE_SEP);
  if (sa === sb) return ChangeSet.empty(a.length);
  const specs = [];
  diffRange(sa, 0, sa.length, sb, 0, sb.length, specs, 0);
  return ChangeSet.of(specs, a.length, LINE_SEP);
}

function commonEnds(sa, a0, a1, sb, b0, b1) {
  let p = 0;
  const max = Math.min(a1 - a0, b1 - b0);
  while (p < max && sa.charCodeAt(a0 + p) === sb.charCodeAt(b0 + p)) p++;
  if (p > 0 && isHigh(sa.charCodeAt(a0 + p - 1)) && p < max + 1) {
    // do not end the prefix between the halves of a pair
    if (isLow(sa.charCodeAt(a0 + p)) || isLow(sb.charCodeAt(b0 + p))) p--;
  }
  let s = 0;
  const maxS = max - p;
  while (s < maxS && sa.charCodeAt(a1 - 1 - s) === sb.charCodeAt(b1 - 1 - s)) s++;
  if (s > 0 && isLow(sa.charCodeAt(a1 - s)) && (isHigh(sa.charCodeAt(a1 - s - 1)) || isHigh(sb.charCodeAt(b1 - s - 1)))) s--;
  return [p, s];
}

// Appends {from, to, insert} specs (from/to in a) turning sa[a0,a1) into sb[b0,b1).
function diffRange(sa, a0, a1, sb, b0, b1, out, depth) {
  const [p, s] = commonEnds(sa, a0, a1, sb, b0, b1);
  a0 += p; b0 += p; a1 -= s; b1 -= s;
  if (a0 === a1 && b0 === b1) return;
  const aHasLine = sa.indexOf(LINE_SEP, a0) >= 0 && sa.indexOf(LINE_SEP, a0) < a1;
  const bHasLine = sb.indexOf(LINE_SEP, b0) >= 0 && sb.indexOf(LINE_SEP, b0) < b1;
  if (depth > 0 || a0 === a1 || b0 === b1 || (!aHasLine && !bHasLine)) {
    out.push({ from: a0, to: a1, insert: sb.slice(b0, b1) });
    return;
  }
  // Line-level diff of the middle.
  const la = splitKeep(sa, a0, a1), lb = splitKeep(sb, b0, b1);
  const script = myers(la.map((x) => x[0]), lb.map((x) => x[0]));
  if (!script) { out.push({ from: a0, to: a1, insert: sb.slice(b0, b1) }); return; }
  // script: list of [i, j] matched line pairs (increasing)
  let ia = 0, ib = 0;
  const flush = (ea, eb) => {
    if (ia === ea && ib === eb) return;
    const fa = ia < la.length ? la[ia][1] : a1, ta = ea < la.length ? la[ea][1] : a1;
    const fb = ib < lb.length ? lb[ib][1] : b1, tb = eb < lb.length ? lb[eb][1] : b1;
    diffRange(sa, fa, ta, sb, fb, tb, out, depth + 1);
  };
  for (const [i, j] of script) { flush(i, j); ia = i + 1; ib = j + 1; }
  flush(la.length, lb.length);
}

// Lines of s[from,to) keeping their "\n": [[text, start], ...].
function splitKeep(s, from, to) {
  const out = [];
  let i = from;
  while (i < to) {
    let j = s.indexOf(LINE_SEP, i);
    j = j < 0 || j >= to ? to : j + 1;
    out.push([s.slice(i, j), i]);
    i = j;
  }
  return out;
}

// Myers' O((N+M)D) diff; returns the matched index pairs (increasing), or
// null when the edit distance is over maxD (the caller then replaces the range).
function myers(a, b, maxD = 500) {
  const n = a.length, m = b.length, max = Math.min(n + m, maxD);
  const off = max + 1;
  const v = new Int32Array(2 * max + 3);
  const trace = [];
  for (let d = 0; d <= max; d++) {
    trace.push(v.slice());
    for (let k = -d; k <= d; k += 2) {
      let x = k === -d || (k !== d && v[off + k - 1] < v[off + k + 1]) ? v[off + k + 1] : v[off + k - 1] + 1;
      let y = x - k;
      while (x < n && y < m && a[x] === b[y]) { x++; y++; }
      v[off + k] = x;
      if (x >= n && y >= m) return backtrack(trace, n, m, off);
    }
  }
  return null;
}

function backtrack(trace, x, y, off) {
  const pairs = [];
  for (let d = trace.length - 1; d >= 0; d--) {
    const v = trace[d], k = x - y;
    const prevK = k === -d || (k !== d && v[off + k - 1] < v[off + k + 1]) ? k + 1 : k - 1;
    const px = v[off + prevK], py = px - prevK;
    while (x > px && y > py && x > 0 && y > 0) { x--; y--; pairs.push([x, y]); }
    x = px; y = py;
  }
  return pairs.reverse();
}

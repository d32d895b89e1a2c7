// Helpers of the unit tests (*.test.mjs).

// Applies API edits to a string in code points (the server's semantics).
export function applyEdits(text, edits) {
  const cps = Array.from(text);
  for (const [p, d, s] of edits) {
    if (p > cps.length || p + d > cps.length) throw new RangeError('edit out of range');
    cps.splice(p, d, ...Array.from(s));
  }
  return cps.join('');
}

// A small deterministic PRNG (mulberry32).
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ALPHABET = ['a', 'b', 'c', ' ', '\n', 'é', '😀', '👍🏽', '𝄞', '\r', '中'];
export const randomText = (r, n) => Array.from({ length: n }, () => ALPHABET[Math.floor(r() * ALPHABET.length)]).join('');


/** Hash of a numeric key of six 32-bit words, for the set and hashlimit tables. */
export function hashKey(tag: number, a: number, b: number, c: number, d: number, e: number): number {
  // Multiply-xorshift mixing (murmur3's finaliser constants) per word: cheap and well spread.
  let h = Math.imul(tag ^ 0x9e3779b9, 0x85ebca6b);
  h = Math.imul(h ^ a ^ (h >>> 15), 0xc2b2ae35);
  h = Math.imul(h ^ b ^ (h >>> 13), 0x85ebca6b);
  h = Math.imul(h ^ c ^ (h >>> 16), 0xc2b2ae35);
  h = Math.imul(h ^ d ^ (h >>> 15), 0x85ebca6b);
  h = Math.imul(h ^ e ^ (h >>> 13), 0xc2b2ae35);
  return h ^ (h >>> 16);
}

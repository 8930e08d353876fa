/**
 * Connections per source address (or source prefix), for connlimit-style rules. Counting on demand
 * by a table scan would cost O(entries) per new connection, so a prefix is registered the first
 * time it is asked about (one scan) and then kept up to date on every insert and removal.
 *
 * Keys are numbers: the masked IPv4 address itself, or for IPv6 a 53-bit key made of two
 * independent 32-bit mixes of the masked words (collisions at 2^-53 per pair are accepted).
 */

interface PrefixCounts {
  family: number;
  prefix: number;
  mask: Uint32Array;
  counts: Map<number, number>;
}

function prefixMaskWords(family: number, prefix: number): Uint32Array {
  const m = new Uint32Array(4);
  const bits = family === 4 ? Math.min(prefix, 32) : Math.min(prefix, 128);
  for (let i = 0; i < 4; i++) {
    const b = bits - i * 32;
    m[i] = b >= 32 ? 0xffffffff : b <= 0 ? 0 : (0xffffffff << (32 - b)) >>> 0;
  }
  if (family === 4) m[1] = m[2] = m[3] = 0;
  return m;
}

function mix(h: number, k: number): number {
  k = Math.imul(k, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  h ^= Math.imul(k, 0x1b873593);
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

function keyOf(family: number, words: Uint32Array, off: number, mask: Uint32Array): number {
  if (family === 4) return (words[off] & mask[0]) >>> 0;
  let a = 0x9747b28c;
  let b = 0x3c6ef372;
  for (let i = 0; i < 4; i++) {
    const w = (words[off + i] & mask[i]) >>> 0;
    a = mix(a, w);
    b = mix(b, w ^ 0x5bd1e995);
  }
  return (a >>> 0) * 2097152 + ((b >>> 0) & 0x1fffff);
}

export class SourceCounts {
  #registered: PrefixCounts[] = [];

  /** Number of registered prefixes (each costs a map update per insert/remove). */
  get prefixes(): number {
    return this.#registered.length;
  }

  find(family: number, prefix: number): PrefixCounts | undefined {
    for (const r of this.#registered) if (r.family === family && r.prefix === prefix) return r;
    return undefined;
  }

  /** Register a prefix; `scan` must call `add` for every existing entry of that family. */
  register(family: number, prefix: number, scan: (add: (words: Uint32Array, off: number) => void) => void): void {
    if (this.find(family, prefix)) return;
    const r: PrefixCounts = { family, prefix, mask: prefixMaskWords(family, prefix), counts: new Map() };
    scan((words, off) => {
      const k = keyOf(family, words, off, r.mask);
      r.counts.set(k, (r.counts.get(k) ?? 0) + 1);
    });
    this.#registered.push(r);
  }

  count(family: number, prefix: number, src: Uint32Array, off = 0): number {
    const r = this.find(family, prefix);
    if (!r) return -1;
    return r.counts.get(keyOf(family, src, off, r.mask)) ?? 0;
  }

  /** An entry with this source appeared (delta +1) or went away (delta -1). */
  update(family: number, words: Uint32Array, off: number, delta: number): void {
    const regs = this.#registered;
    for (let i = 0; i < regs.length; i++) {
      const r = regs[i];
      if (r.family !== family) continue;
      const k = keyOf(family, words, off, r.mask);
      const n = (r.counts.get(k) ?? 0) + delta;
      if (n <= 0) r.counts.delete(k);
      else r.counts.set(k, n);
    }
  }
}

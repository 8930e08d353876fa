/**
 * Token buckets for `limit`, `hashlimit` and LOG rate limiting. Like xt_limit, a bucket holds up to
 * `burst` tokens, starts full, refills at the configured rate, and a packet conforms when it can
 * take one token. State lives in typed arrays: no allocation per packet.
 */
import { prefixMask } from '../packet/address.js';
import { hashKey } from './hash.js';

/** A fixed number of independent buckets, addressed by index. */
export class TokenBuckets {
  private readonly tokens: Float64Array;
  private readonly last: Float64Array;
  private readonly perMs: Float64Array;
  private readonly burst: Float64Array;

  constructor(count: number) {
    this.tokens = new Float64Array(count);
    this.last = new Float64Array(count).fill(-Infinity);
    this.perMs = new Float64Array(count);
    this.burst = new Float64Array(count);
  }

  /** Configures bucket `i`: `perMs` tokens per millisecond, at most `burst`. Starts full. */
  init(i: number, perMs: number, burst: number): void {
    this.perMs[i] = perMs;
    this.burst[i] = burst;
    this.tokens[i] = burst;
  }

  /** Takes a token from bucket `i` at time `now` (ms); false when the bucket is empty. */
  take(i: number, now: number): boolean {
    const dt = now - this.last[i];
    // A clock that steps back refills nothing (and does not underflow the bucket).
    if (dt > 0) {
      const t = this.tokens[i] + dt * this.perMs[i];
      this.tokens[i] = t > this.burst[i] ? this.burst[i] : t;
      this.last[i] = now;
    }
    if (this.tokens[i] >= 1) {
      this.tokens[i] -= 1;
      return true;
    }
    return false;
  }
}

/** How many slots a lookup probes before evicting the stalest of them. */
const PROBES = 8;

/**
 * hashlimit's per-source buckets (--hashlimit-mode srcip with --hashlimit-srcmask), in a table of
 * fixed capacity: an idle entry expires after `expireMs` (--hashlimit-htable-expire), and when the
 * probed slots are all live the least recently used of them is evicted (counted in `evictions`), so
 * a flood of spoofed sources cannot grow memory (the kernel refuses new entries at htable-max).
 */
export class HashLimitTable {
  private readonly keys: Int32Array;
  private readonly tokens: Float64Array;
  private readonly last: Float64Array;
  private readonly mask: number;
  private readonly mask4: Int32Array;
  private readonly mask6: Int32Array;
  /** Live entries pushed out to make room for a new source. */
  evictions = 0;

  constructor(
    capacity: number,
    private readonly perMs: number,
    private readonly burst: number,
    private readonly expireMs: number,
    readonly prefix4: number,
    readonly prefix6: number,
  ) {
    let cap = 16;
    while (cap < capacity) cap *= 2;
    this.keys = new Int32Array(cap * 5);
    this.tokens = new Float64Array(cap);
    this.last = new Float64Array(cap);
    this.mask = cap - 1;
    this.mask4 = Int32Array.from(prefixMask(4, prefix4));
    this.mask6 = Int32Array.from(prefixMask(6, prefix6));
  }

  /** Takes a token from the bucket of `src`'s prefix; false when that source is over its rate. */
  take(family: number, src: Uint32Array, now: number): boolean {
    const m = family === 4 ? this.mask4 : this.mask6;
    const tag = family | ((family === 4 ? this.prefix4 : this.prefix6) << 8);
    const a = src[0] & m[0], b = src[1] & m[1], c = src[2] & m[2], d = src[3] & m[3];
    const k = this.keys;
    let slot = -1;
    let victim = -1;
    let oldest = Infinity;
    for (let n = 0, i = hashKey(tag, a, b, c, d, 0) & this.mask; n < PROBES; n++, i = (i + 1) & this.mask) {
      const o = i * 5;
      if (k[o] === tag && k[o + 1] === a && k[o + 2] === b && k[o + 3] === c && k[o + 4] === d) {
        slot = i;
        break;
      }
      const free = k[o] === 0 || now - this.last[i] > this.expireMs;
      const age = free ? -Infinity : this.last[i];
      if (age < oldest) {
        oldest = age;
        victim = i;
      }
    }
    if (slot < 0) {
      slot = victim;
      const o = slot * 5;
      if (oldest !== -Infinity) this.evictions++;
      k[o] = tag; k[o + 1] = a; k[o + 2] = b; k[o + 3] = c; k[o + 4] = d;
      this.tokens[slot] = this.burst;
      this.last[slot] = now;
    }
    const dt = now - this.last[slot];
    if (dt > 0) {
      const t = this.tokens[slot] + dt * this.perMs;
      this.tokens[slot] = t > this.burst ? this.burst : t;
      this.last[slot] = now;
    }
    if (this.tokens[slot] >= 1) {
      this.tokens[slot] -= 1;
      return true;
    }
    return false;
  }
}

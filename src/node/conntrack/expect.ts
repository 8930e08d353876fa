/**
 * Expectations: connections a helper announces before they start (an FTP data connection, a TFTP
 * transfer), so that their first packet is RELATED to a master entry instead of NEW. Modelled on
 * Linux's nf_conntrack_expect: a tuple plus a mask (wildcards where the mask is zero), a timeout,
 * the master entry, several outstanding per master up to a limit, a global limit.
 *
 * Few expectations exist at once (Linux's default nf_ct_expect_max is a few thousand), and they
 * are looked up only for packets that missed the table, so a linear scan with cheap early
 * rejection on the protocol and destination words is enough.
 */
import { TUPLE_WORDS, TW_PORTS, TW_PROTO } from './tuple.js';

export const ExpectFlag = {
  /** Stays after being used (Linux NF_CT_EXPECT_PERMANENT). */
  PERMANENT: 1,
} as const;

export interface ExpectationSpec {
  /** Master entry's slot and id (the id guards against a reused slot). */
  masterSlot: number;
  masterId: number;
  /** Expected original tuple of the new connection (TUPLE_WORDS words). */
  tuple: Uint32Array;
  /** Mask words: 0 bits are wildcards (e.g. any source port). */
  mask: Uint32Array;
  timeoutMs: number;
  flags?: number;
  /**
   * Direction of the expected connection relative to its master's tuples (the FTP data
   * connection of a PORT goes the master's reply way: 1): its NAT follows the master's (see
   * Nat.followMasterDestination). Default 0.
   */
  dir?: number;
  /** The port the helper's message announced before NAT rewrote it (-1: none, the default). */
  savedPort?: number;
}

/** Words per expectation in exportMaster's output. */
export const EXPECT_WORDS = TUPLE_WORDS + 4;

export class ExpectationLimitError extends Error {
  readonly code = 'TW_ERR_EXPECT_LIMIT';
}

export class ExpectationTable {
  readonly max: number;
  readonly maxPerMaster: number;
  #tuple: Uint32Array;
  #mask: Uint32Array;
  #masterSlot: Int32Array;
  #masterId: Uint32Array;
  #deadline: Float64Array;
  #flags: Uint8Array;
  #dir: Uint8Array;
  #savedPort: Int32Array;
  #used: Uint8Array;
  #count = 0;
  #top = 0;
  /**
   * Expectations by exact destination port, and those with a wildcard destination port: a new
   * connection to a port no expectation names is rejected without a scan (the common case; a
   * scan costs ~10 ns per expectation on every new connection).
   */
  readonly #byPort = new Uint32Array(65536);
  #wildPort = 0;

  constructor(max = 4096, maxPerMaster = 8) {
    this.max = max;
    this.maxPerMaster = maxPerMaster;
    this.#tuple = new Uint32Array(max * TUPLE_WORDS);
    this.#mask = new Uint32Array(max * TUPLE_WORDS);
    this.#masterSlot = new Int32Array(max).fill(-1);
    this.#masterId = new Uint32Array(max);
    this.#deadline = new Float64Array(max);
    this.#flags = new Uint8Array(max);
    this.#dir = new Uint8Array(max);
    this.#savedPort = new Int32Array(max);
    this.#used = new Uint8Array(max);
  }

  get count(): number {
    return this.#count;
  }

  /**
   * Add an expectation. When the master already has maxPerMaster outstanding, the oldest of them
   * is replaced (Linux evicts the oldest too); when the table is full, throws.
   */
  add(spec: ExpectationSpec, now: number): number {
    let mine = 0;
    let oldest = -1;
    for (let i = 0; i < this.#top; i++) {
      if (this.#used[i] && this.#masterSlot[i] === spec.masterSlot && this.#masterId[i] === spec.masterId) {
        mine++;
        if (oldest < 0 || this.#deadline[i] < this.#deadline[oldest]) oldest = i;
      }
    }
    if (mine >= this.maxPerMaster && oldest >= 0) this.remove(oldest);
    let idx = -1;
    for (let i = 0; i < this.#top; i++) if (!this.#used[i]) { idx = i; break; }
    if (idx < 0) {
      if (this.#top >= this.max) throw new ExpectationLimitError(`expectation table full (${this.max}); raise the limit or shorten expectation timeouts`);
      idx = this.#top++;
    }
    const o = idx * TUPLE_WORDS;
    for (let w = 0; w < TUPLE_WORDS; w++) {
      this.#mask[o + w] = spec.mask[w];
      this.#tuple[o + w] = (spec.tuple[w] & spec.mask[w]) >>> 0;
    }
    this.#masterSlot[idx] = spec.masterSlot;
    this.#masterId[idx] = spec.masterId;
    this.#deadline[idx] = now + spec.timeoutMs;
    this.#flags[idx] = spec.flags ?? 0;
    this.#dir[idx] = spec.dir ?? 0;
    this.#savedPort[idx] = spec.savedPort ?? -1;
    this.#used[idx] = 1;
    this.#count++;
    if ((spec.mask[TW_PORTS] & 0xffff) === 0xffff) this.#byPort[spec.tuple[TW_PORTS] & 0xffff]++;
    else this.#wildPort++;
    return idx;
  }

  remove(idx: number): void {
    if (!this.#used[idx]) return;
    this.#used[idx] = 0;
    this.#count--;
    const o = idx * TUPLE_WORDS + TW_PORTS;
    if ((this.#mask[o] & 0xffff) === 0xffff) this.#byPort[this.#tuple[o] & 0xffff]--;
    else this.#wildPort--;
    while (this.#top > 0 && !this.#used[this.#top - 1]) this.#top--;
  }

  /**
   * Find an expectation matching the tuple at w[off]. `masterAlive(slot, id)` tells whether the
   * master still exists; expired or orphaned expectations met on the way are removed.
   */
  match(w: Uint32Array, off: number, now: number, ids: Uint32Array): number {
    if (this.#count === 0) return -1;
    if (this.#wildPort === 0 && this.#byPort[w[off + TW_PORTS] & 0xffff] === 0) return -1;
    const proto = w[off + TW_PROTO];
    for (let i = 0; i < this.#top; i++) {
      if (!this.#used[i]) continue;
      const o = i * TUPLE_WORDS;
      if (this.#deadline[i] <= now || ids[this.#masterSlot[i]] !== this.#masterId[i]) {
        this.remove(i);
        continue;
      }
      if (this.#tuple[o + TW_PROTO] !== proto) continue;
      let ok = true;
      for (let k = 0; k < TUPLE_WORDS - 1; k++) {
        if (((w[off + k] & this.#mask[o + k]) >>> 0) !== this.#tuple[o + k]) {
          ok = false;
          break;
        }
      }
      if (ok) return i;
    }
    return -1;
  }

  masterOf(idx: number): number {
    return this.#masterSlot[idx];
  }

  /** Direction of the expected connection relative to its master's tuples. */
  dirOf(idx: number): number {
    return this.#dir[idx];
  }

  /** The announced port before NAT rewrote it, -1 when none. */
  savedPortOf(idx: number): number {
    return this.#savedPort[idx];
  }

  /**
   * Expect a connection between the addresses of the tuple at w[off] (from its source to its
   * destination), any source port, to `dport`, protocol word `proto`: what the FTP and TFTP
   * helpers announce. Returns its index, or -1 when the table is full.
   */
  expectPort(spec: Omit<ExpectationSpec, 'tuple' | 'mask'>, w: Uint32Array, off: number, dport: number, proto: number, now: number): number {
    this.#toPort(w, off, dport, proto);
    try {
      return this.add({ ...spec, tuple: this.#portTuple, mask: this.#portMask }, now);
    } catch (e) {
      if (e instanceof ExpectationLimitError) return -1;
      throw e;
    }
  }

  /**
   * An expectation for that connection (see expectPort) exists already: a NAT helper picking an
   * outside port avoids one another expected connection waits on.
   */
  hasPort(w: Uint32Array, off: number, dport: number, proto: number, now: number): boolean {
    const tuple = this.#toPort(w, off, dport, proto);
    for (let i = 0; i < this.#top; i++) {
      if (!this.#used[i] || this.#deadline[i] <= now) continue;
      const o = i * TUPLE_WORDS;
      let same = true;
      for (let k = 0; k < TUPLE_WORDS; k++) {
        if (((tuple[k] & this.#mask[o + k]) >>> 0) !== this.#tuple[o + k]) {
          same = false;
          break;
        }
      }
      if (same) return true;
    }
    return false;
  }

  readonly #portTuple = new Uint32Array(TUPLE_WORDS);
  readonly #portMask = new Uint32Array(TUPLE_WORDS);

  /** expectPort's tuple and mask: both addresses exact, any source port, `dport`, the protocol. */
  #toPort(w: Uint32Array, off: number, dport: number, proto: number): Uint32Array {
    const e = this.#portTuple;
    const m = this.#portMask;
    for (let i = 0; i < 8; i++) {
      e[i] = w[off + i];
      m[i] = 0xffffffff;
    }
    e[TW_PORTS] = dport & 0xffff;
    m[TW_PORTS] = 0xffff;
    e[TW_PROTO] = proto;
    m[TW_PROTO] = 0xffffffff;
    return e;
  }

  /** Consume a matched expectation: removed unless PERMANENT. Returns its master slot. */
  take(idx: number): number {
    const m = this.#masterSlot[idx];
    if ((this.#flags[idx] & ExpectFlag.PERMANENT) === 0) this.remove(idx);
    return m;
  }

  /**
   * Write the live expectations of a master (slot and id) at out[off..], EXPECT_WORDS each
   * (tuple, its mask's ports word, milliseconds left, saved port (0xffffffff: none), dir << 8 |
   * flags), at most `max`; returns how many. For sync and `expect list`.
   */
  exportMaster(slot: number, id: number, now: number, out: Uint32Array, off: number, max: number): number {
    let n = 0;
    for (let i = 0; i < this.#top && n < max; i++) {
      if (!this.#used[i] || this.#masterSlot[i] !== slot || this.#masterId[i] !== id || this.#deadline[i] <= now) continue;
      const o = off + n * EXPECT_WORDS;
      for (let k = 0; k < TUPLE_WORDS; k++) out[o + k] = this.#tuple[i * TUPLE_WORDS + k];
      out[o + TUPLE_WORDS] = this.#mask[i * TUPLE_WORDS + 8];
      out[o + TUPLE_WORDS + 1] = Math.max(0, Math.min(0xffffffff, Math.round(this.#deadline[i] - now)));
      out[o + TUPLE_WORDS + 2] = this.#savedPort[i] >>> 0;
      out[o + TUPLE_WORDS + 3] = (this.#dir[i] << 8) | this.#flags[i];
      n++;
    }
    return n;
  }

  /** Remove every expectation of a master slot. Returns how many went. */
  removeMaster(slot: number): number {
    let n = 0;
    for (let i = 0; i < this.#top; i++) {
      if (this.#used[i] && this.#masterSlot[i] === slot) {
        this.remove(i);
        n++;
      }
    }
    return n;
  }

  /** Visit the live expectations (index, master slot, ms left), for `expect list`. Allocates nothing. */
  forEach(now: number, fn: (idx: number, masterSlot: number, msLeft: number) => void): void {
    for (let i = 0; i < this.#top; i++) if (this.#used[i] && this.#deadline[i] > now) fn(i, this.#masterSlot[i], this.#deadline[i] - now);
  }

  /** The expected tuple (masked) and mask of an expectation, copied out. */
  tupleOf(idx: number, out: Uint32Array, maskOut?: Uint32Array): void {
    for (let k = 0; k < TUPLE_WORDS; k++) {
      out[k] = this.#tuple[idx * TUPLE_WORDS + k];
      if (maskOut) maskOut[k] = this.#mask[idx * TUPLE_WORDS + k];
    }
  }

  /** Drop expired and orphaned expectations (call from the periodic tick). */
  sweep(now: number, ids: Uint32Array): void {
    for (let i = 0; i < this.#top; i++) {
      if (this.#used[i] && (this.#deadline[i] <= now || ids[this.#masterSlot[i]] !== this.#masterId[i])) this.remove(i);
    }
  }
}

/**
 * Per-entry TCP tracking state as a struct of typed arrays, indexed by the conntrack table's slot,
 * so that millions of entries cost no objects and no GC. The fields are those of the kernel's
 * struct ip_ct_tcp / ip_ct_tcp_state (include/net/netfilter/nf_conntrack_tcp.h); per-direction
 * fields are indexed slot * 2 + dir.
 *
 * Cost: 57 bytes per entry (TCP_BYTES_PER_ENTRY), well inside the 256-byte budget of a whole entry.
 */
import { TcpState } from './state.js';

/**
 * Per-direction flags (tdFlags), with the kernel's IP_CT_TCP_FLAG_* values so that conntrack-tools
 * users recognise them.
 */
export const TcpDirFlag = {
  /** The SYN of this direction carried a window scale option (RFC 7323 2.2). */
  WINDOW_SCALE: 0x01,
  /** The SYN of this direction carried SACK-permitted (RFC 2018). */
  SACK_PERM: 0x02,
  /** This direction sent the first FIN: it closed first. */
  CLOSE_INIT: 0x04,
  /** Window checks never reject this direction (mid-stream pickup, or set by the operator). */
  BE_LIBERAL: 0x08,
  /** This direction has sent data the other side has not acknowledged yet. */
  DATA_UNACKNOWLEDGED: 0x10,
  /** tdMaxack holds a real value. */
  MAXACK_SET: 0x20,
} as const;

/** Flags in lastFlags besides WINDOW_SCALE / SACK_PERM of an ignored SYN (kernel values). */
export const TcpLastFlag = {
  /** An ignored SYN in LAST_ACK may draw an RFC 5961 challenge ACK, which is not the last ACK. */
  EXP_CHALLENGE_ACK: 0x40,
  /** Simultaneous open seen: the reply's ACK in SYN_RECV completes the handshake. */
  SIMULTANEOUS_OPEN: 0x80,
} as const;

/** Per-entry flags (entryFlags). */
export const TcpEntryFlag = {
  /**
   * Tolerant until resynced: window checks never reject, out-of-window segments re-learn the
   * window data. Set on takeover, when the replicated window data may be stale.
   */
  TOLERANT: 0x01,
  /** A segment of the reply direction has been accepted (the kernel's IPS_SEEN_REPLY). */
  SEEN_REPLY: 0x02,
  /** The connection is assured (the kernel's IPS_ASSURED): not early-dropped. */
  ASSURED: 0x04,
  /** Tolerant mode: the original direction passed the strict window check since the last re-learn. */
  TOLERANT_OK_ORIGINAL: 0x08,
  /** Tolerant mode: the reply direction passed the strict window check since the last re-learn. */
  TOLERANT_OK_REPLY: 0x10,
} as const;

/** Bytes of typed-array storage per entry. */
export const TCP_BYTES_PER_ENTRY = 57;
/** Words written by exportEntry / read by importEntry. The layout is documented on exportEntry. */
export const TCP_EXPORT_WORDS = 15;

/** Largest window scale shift (RFC 7323 2.3); the kernel's TCP_MAX_WSCALE. */
export const TCP_MAX_WSCALE = 14;

/** Base class of the store's errors; each subclass has a stable code. */
export class TcpStoreError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = new.target.name;
    this.code = code;
  }
}

/** Raised by the constructor or grow() when a capacity is not a usable size. */
export class TcpCapacityError extends TcpStoreError {
  constructor(message: string) {
    super('TCP_STORE_CAPACITY', message);
  }
}

/** Raised by importEntry when the words do not describe a possible entry (corrupt or foreign sync data). */
export class TcpImportError extends TcpStoreError {
  constructor(message: string) {
    super('TCP_STORE_IMPORT', message);
  }
}

function checkCapacity(capacity: number, what: string): void {
  if (!Number.isInteger(capacity) || capacity < 0 || capacity > 0x4000000) {
    throw new TcpCapacityError(
      `${what}: capacity ${capacity} is not an integer between 0 and 67108864; size the table from its configured maximum entries`,
    );
  }
}

export class TcpStateStore {
  /** Slots available. */
  capacity: number;
  /** TcpState code per slot. */
  state: Uint8Array;
  /** TcpEntryFlag bits per slot. */
  entryFlags: Uint8Array;
  /** Direction of the last segment that passed (or was ignored), 0 or 1. */
  lastDir: Uint8Array;
  /** TcpFlagClass of that segment. */
  lastIndex: Uint8Array;
  /** Consecutive identical ACK-class segments (retransmissions), saturating at 255. */
  retrans: Uint8Array;
  /** Window scale of the last ignored SYN. */
  lastWscale: Uint8Array;
  /** TcpDirFlag / TcpLastFlag bits of the last ignored SYN, and the simultaneous-open mark. */
  lastFlags: Uint8Array;
  /** Raw (unscaled) window of the last segment noted. */
  lastWin: Uint16Array;
  lastSeq: Uint32Array;
  lastAck: Uint32Array;
  lastEnd: Uint32Array;
  /** Per direction (slot*2+dir): highest seq + len seen from the sender. */
  tdEnd: Uint32Array;
  /** Per direction: highest ack + window the receiver allowed the sender (right edge). */
  tdMaxend: Uint32Array;
  /** Per direction: largest window the sender advertised. */
  tdMaxwin: Uint32Array;
  /** Per direction: highest ack the sender sent (RST sequence check). */
  tdMaxack: Uint32Array;
  /** Per direction: window scale shift of the sender (0 unless both SYNs carried the option). */
  tdScale: Uint8Array;
  /** Per direction: TcpDirFlag bits. */
  tdFlags: Uint8Array;

  constructor(capacity: number) {
    checkCapacity(capacity, 'TcpStateStore');
    this.capacity = capacity;
    this.state = new Uint8Array(capacity);
    this.entryFlags = new Uint8Array(capacity);
    this.lastDir = new Uint8Array(capacity);
    this.lastIndex = new Uint8Array(capacity);
    this.retrans = new Uint8Array(capacity);
    this.lastWscale = new Uint8Array(capacity);
    this.lastFlags = new Uint8Array(capacity);
    this.lastWin = new Uint16Array(capacity);
    this.lastSeq = new Uint32Array(capacity);
    this.lastAck = new Uint32Array(capacity);
    this.lastEnd = new Uint32Array(capacity);
    this.tdEnd = new Uint32Array(capacity * 2);
    this.tdMaxend = new Uint32Array(capacity * 2);
    this.tdMaxwin = new Uint32Array(capacity * 2);
    this.tdMaxack = new Uint32Array(capacity * 2);
    this.tdScale = new Uint8Array(capacity * 2);
    this.tdFlags = new Uint8Array(capacity * 2);
  }

  /** Enlarge to newCapacity slots, keeping every entry. Not for the hot path: it copies everything. */
  grow(newCapacity: number): void {
    checkCapacity(newCapacity, 'TcpStateStore.grow');
    if (newCapacity < this.capacity) {
      throw new TcpCapacityError(
        `TcpStateStore.grow: ${newCapacity} is below the current capacity ${this.capacity}; a store never shrinks, make a new one`,
      );
    }
    const n = newCapacity;
    this.state = growU8(this.state, n);
    this.entryFlags = growU8(this.entryFlags, n);
    this.lastDir = growU8(this.lastDir, n);
    this.lastIndex = growU8(this.lastIndex, n);
    this.retrans = growU8(this.retrans, n);
    this.lastWscale = growU8(this.lastWscale, n);
    this.lastFlags = growU8(this.lastFlags, n);
    const lastWin = new Uint16Array(n);
    lastWin.set(this.lastWin);
    this.lastWin = lastWin;
    this.lastSeq = growU32(this.lastSeq, n);
    this.lastAck = growU32(this.lastAck, n);
    this.lastEnd = growU32(this.lastEnd, n);
    this.tdEnd = growU32(this.tdEnd, n * 2);
    this.tdMaxend = growU32(this.tdMaxend, n * 2);
    this.tdMaxwin = growU32(this.tdMaxwin, n * 2);
    this.tdMaxack = growU32(this.tdMaxack, n * 2);
    this.tdScale = growU8(this.tdScale, n * 2);
    this.tdFlags = growU8(this.tdFlags, n * 2);
    this.capacity = n;
  }

  /** Reset a slot to all zeroes (state NONE), as the kernel's memset in tcp_new. */
  clear(slot: number): void {
    this.state[slot] = TcpState.NONE;
    this.entryFlags[slot] = 0;
    this.lastDir[slot] = 0;
    this.lastIndex[slot] = 0;
    this.retrans[slot] = 0;
    this.lastWscale[slot] = 0;
    this.lastFlags[slot] = 0;
    this.lastWin[slot] = 0;
    this.lastSeq[slot] = 0;
    this.lastAck[slot] = 0;
    this.lastEnd[slot] = 0;
    this.clearDir(slot * 2);
    this.clearDir(slot * 2 + 1);
  }

  /** Reset one direction's window data (index slot*2+dir), keeping BE_LIBERAL (kernel's nf_ct_tcp_state_reset). */
  resetDir(d: number): void {
    this.tdEnd[d] = 0;
    this.tdMaxend[d] = 0;
    this.tdMaxwin[d] = 0;
    this.tdMaxack[d] = 0;
    this.tdScale[d] = 0;
    this.tdFlags[d] &= TcpDirFlag.BE_LIBERAL;
  }

  private clearDir(d: number): void {
    this.resetDir(d);
    this.tdFlags[d] = 0;
  }

  /** Copy every field of one slot to another (the table moving an entry). */
  copyEntry(fromSlot: number, toSlot: number): void {
    const f = fromSlot;
    const t = toSlot;
    this.state[t] = this.state[f];
    this.entryFlags[t] = this.entryFlags[f];
    this.lastDir[t] = this.lastDir[f];
    this.lastIndex[t] = this.lastIndex[f];
    this.retrans[t] = this.retrans[f];
    this.lastWscale[t] = this.lastWscale[f];
    this.lastFlags[t] = this.lastFlags[f];
    this.lastWin[t] = this.lastWin[f];
    this.lastSeq[t] = this.lastSeq[f];
    this.lastAck[t] = this.lastAck[f];
    this.lastEnd[t] = this.lastEnd[f];
    for (let dir = 0; dir < 2; dir++) {
      const fd = f * 2 + dir;
      const td = t * 2 + dir;
      this.tdEnd[td] = this.tdEnd[fd];
      this.tdMaxend[td] = this.tdMaxend[fd];
      this.tdMaxwin[td] = this.tdMaxwin[fd];
      this.tdMaxack[td] = this.tdMaxack[fd];
      this.tdScale[td] = this.tdScale[fd];
      this.tdFlags[td] = this.tdFlags[fd];
    }
  }

  /**
   * Write the entry as TCP_EXPORT_WORDS 32-bit words at into[offset..], for replication. Layout
   * (little fields packed low byte first):
   *   0: state | entryFlags << 8 | lastDir << 16 | lastIndex << 24
   *   1: tdScale[orig] | tdFlags[orig] << 8 | tdScale[reply] << 16 | tdFlags[reply] << 24
   *   2: retrans | lastWscale << 8 | lastFlags << 16
   *   3: lastWin
   *   4..7:  original direction tdEnd, tdMaxend, tdMaxwin, tdMaxack
   *   8..11: reply direction tdEnd, tdMaxend, tdMaxwin, tdMaxack
   *   12: lastSeq   13: lastAck   14: lastEnd
   */
  exportEntry(slot: number, into: Uint32Array, offset: number): void {
    const o = slot * 2;
    const r = o + 1;
    into[offset] = this.state[slot] | (this.entryFlags[slot] << 8) | (this.lastDir[slot] << 16) | (this.lastIndex[slot] << 24);
    into[offset + 1] = this.tdScale[o] | (this.tdFlags[o] << 8) | (this.tdScale[r] << 16) | (this.tdFlags[r] << 24);
    into[offset + 2] = this.retrans[slot] | (this.lastWscale[slot] << 8) | (this.lastFlags[slot] << 16);
    into[offset + 3] = this.lastWin[slot];
    into[offset + 4] = this.tdEnd[o];
    into[offset + 5] = this.tdMaxend[o];
    into[offset + 6] = this.tdMaxwin[o];
    into[offset + 7] = this.tdMaxack[o];
    into[offset + 8] = this.tdEnd[r];
    into[offset + 9] = this.tdMaxend[r];
    into[offset + 10] = this.tdMaxwin[r];
    into[offset + 11] = this.tdMaxack[r];
    into[offset + 12] = this.lastSeq[slot];
    into[offset + 13] = this.lastAck[slot];
    into[offset + 14] = this.lastEnd[slot];
  }

  /**
   * Read an entry written by exportEntry into slot. The words come from the peer, so they are
   * checked before anything is written: a bad entry throws TcpImportError and leaves the slot as it was.
   */
  importEntry(slot: number, from: Uint32Array, offset: number): void {
    if (offset < 0 || offset + TCP_EXPORT_WORDS > from.length) {
      throw new TcpImportError(
        `importEntry: ${TCP_EXPORT_WORDS} words needed at offset ${offset} but the buffer holds ${from.length}; the sync message is truncated`,
      );
    }
    const w0 = from[offset];
    const w1 = from[offset + 1];
    const w2 = from[offset + 2];
    const w3 = from[offset + 3];
    const state = w0 & 0xff;
    const lastDir = (w0 >>> 16) & 0xff;
    const lastIndex = w0 >>> 24;
    const scaleO = w1 & 0xff;
    const scaleR = (w1 >>> 16) & 0xff;
    if (state > TcpState.SYN_SENT2 || lastDir > 1 || lastIndex > 5 || scaleO > TCP_MAX_WSCALE || scaleR > TCP_MAX_WSCALE) {
      throw new TcpImportError(
        `importEntry: words 0-1 (${w0 >>> 0}, ${w1 >>> 0}) hold an impossible TCP state, direction, flag class or window scale; the peer runs an incompatible version or the data is corrupt`,
      );
    }
    if (w2 >>> 24 !== 0 || w3 > 0xffff) {
      throw new TcpImportError(
        `importEntry: words 2-3 (${w2 >>> 0}, ${w3 >>> 0}) have bits set that no version writes; the peer runs an incompatible version or the data is corrupt`,
      );
    }
    const o = slot * 2;
    const r = o + 1;
    this.state[slot] = state;
    this.entryFlags[slot] = (w0 >>> 8) & 0xff;
    this.lastDir[slot] = lastDir;
    this.lastIndex[slot] = lastIndex;
    this.tdScale[o] = scaleO;
    this.tdFlags[o] = (w1 >>> 8) & 0xff;
    this.tdScale[r] = scaleR;
    this.tdFlags[r] = w1 >>> 24;
    this.retrans[slot] = w2 & 0xff;
    this.lastWscale[slot] = (w2 >>> 8) & 0xff;
    this.lastFlags[slot] = (w2 >>> 16) & 0xff;
    this.lastWin[slot] = w3;
    this.tdEnd[o] = from[offset + 4];
    this.tdMaxend[o] = from[offset + 5];
    this.tdMaxwin[o] = from[offset + 6];
    this.tdMaxack[o] = from[offset + 7];
    this.tdEnd[r] = from[offset + 8];
    this.tdMaxend[r] = from[offset + 9];
    this.tdMaxwin[r] = from[offset + 10];
    this.tdMaxack[r] = from[offset + 11];
    this.lastSeq[slot] = from[offset + 12];
    this.lastAck[slot] = from[offset + 13];
    this.lastEnd[slot] = from[offset + 14];
  }
}

function growU8(a: Uint8Array, n: number): Uint8Array {
  const b = new Uint8Array(n);
  b.set(a);
  return b;
}

function growU32(a: Uint32Array, n: number): Uint32Array {
  const b = new Uint32Array(n);
  b.set(a);
  return b;
}

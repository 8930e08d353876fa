/**
 * Per-entry TCP tracking state, indexed by the conntrack table's slot, so that millions of entries
 * cost no objects and no GC. The fields are those of the kernel's struct ip_ct_tcp /
 * ip_ct_tcp_state (include/net/netfilter/nf_conntrack_tcp.h).
 *
 * Layout: an array of structs, one 64-byte record (16 32-bit words) per slot in a single
 * ArrayBuffer, viewed as words (u32) and bytes (u8). A packet touches most of its entry's fields,
 * and with a struct of separate arrays each field sat in a different cache line: with 100k random
 * live flows that was one cache miss per field (~17 per packet). One record is one cache line, so
 * a packet's TCP state costs one miss (two when the record straddles lines; see the alignment note
 * on the constructor).
 *
 *   word  0..1   tdEnd[dir]       W_TD_END + dir       u32[(slot << 4) + W_TD_END + dir]
 *   word  2..3   tdMaxend[dir]    W_TD_MAXEND + dir
 *   word  4..5   tdMaxwin[dir]    W_TD_MAXWIN + dir
 *   word  6..7   tdMaxack[dir]    W_TD_MAXACK + dir
 *   word  8..11  lastSeq, lastAck, lastEnd, lastWin (W_LAST_*)
 *   bytes 48..58 state, entryFlags, lastDir, lastIndex, tdScale[2], tdFlags[2], retrans,
 *                lastWscale, lastFlags (B_*)     u8[slot * 64 + B_STATE]
 *   bytes 59..63 spare (zero)
 *
 * Cost: 64 bytes per entry (TCP_BYTES_PER_ENTRY), inside the 256-byte budget of a whole entry.
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

/** Words per record: 16 words = 64 bytes = one cache line on x86-64 and most ARM64 cores. */
export const TCP_RECORD_WORDS = 16;
/** Bytes per record. */
export const TCP_RECORD_BYTES = 64;
/**
 * Where records live: slot s's record starts at word s * TCP_STRIDE_WORDS + TCP_BASE_WORDS of the
 * buffer. The conntrack table gives the store its own entry buffer, 48-word (192-byte) records whose
 * last 16 words are the TCP record (table.ts), so a packet's entry and TCP state are one contiguous
 * run of memory: fewer cache lines, one TLB page. A store made alone lays its records out the same
 * way in a buffer of its own.
 */
export const TCP_STRIDE_WORDS = 48;
export const TCP_BASE_WORDS = 32;
export const TCP_STRIDE_BYTES = TCP_STRIDE_WORDS * 4;
export const TCP_BASE_BYTES = TCP_BASE_WORDS * 4;

// Word offsets in a record (index u32 at (slot << 4) + W_*). Per-direction fields: add dir (0/1).
// slot << 4 stays below 2^30 for every capacity checkCapacity allows (2^26), so the shift is safe;
// the byte base slot * 64 reaches 2^32 and must not be a shift (slot << 6 goes negative past 2^25).
/** Per direction: highest seq + len seen from the sender. */
export const W_TD_END = 0;
/** Per direction: highest ack + window the receiver allowed the sender (right edge). */
export const W_TD_MAXEND = 2;
/** Per direction: largest window the sender advertised. */
export const W_TD_MAXWIN = 4;
/** Per direction: highest ack the sender sent (RST sequence check). */
export const W_TD_MAXACK = 6;
/** Sequence number of the last segment noted (ignored SYN, or ACK-class retransmission check). */
export const W_LAST_SEQ = 8;
/** Ack of the last segment noted (also a challenge ACK answering an ignored SYN). */
export const W_LAST_ACK = 9;
/** seq + len of the last segment noted. */
export const W_LAST_END = 10;
/** Raw (unscaled, 16-bit) window of the last segment noted. */
export const W_LAST_WIN = 11;

// Byte offsets in a record (index u8 at slot * 64 + B_*), in words 12..14.
/** TcpState code. */
export const B_STATE = 48;
/** TcpEntryFlag bits. */
export const B_ENTRY_FLAGS = 49;
/** Direction of the last segment that passed (or was ignored), 0 or 1. */
export const B_LAST_DIR = 50;
/** TcpFlagClass of that segment. */
export const B_LAST_INDEX = 51;
/** Per direction (+ dir): window scale shift of the sender (0 unless both SYNs carried the option). */
export const B_TD_SCALE = 52;
/** Per direction (+ dir): TcpDirFlag bits. */
export const B_TD_FLAGS = 54;
/** Consecutive identical ACK-class segments (retransmissions), saturating at 255. */
export const B_RETRANS = 56;
/** Window scale of the last ignored SYN. */
export const B_LAST_WSCALE = 57;
/** TcpDirFlag / TcpLastFlag bits of the last ignored SYN, and the simultaneous-open mark. */
export const B_LAST_FLAGS = 58;

/** Bytes of typed-array storage per entry. */
export const TCP_BYTES_PER_ENTRY = TCP_RECORD_BYTES;
/** Words written by exportEntry / read by importEntry. The layout is documented on exportEntry. */
export const TCP_EXPORT_WORDS = 15;

/** Largest window scale shift (RFC 7323 2.3); the kernel's TCP_MAX_WSCALE. */
export const TCP_MAX_WSCALE = 14;

/**
 * Whether the TCP words at from[offset..offset+15) (exportEntry's layout) are ones importEntry
 * takes: in bounds, a possible state, direction, flag class and window scales, no bits that no
 * version writes. importEntry takes exactly these (and says why it refuses the others).
 */
export function tcpExportWordsOk(from: Uint32Array, offset: number): boolean {
  if (offset < 0 || offset + TCP_EXPORT_WORDS > from.length) return false;
  const w0 = from[offset];
  const w1 = from[offset + 1];
  return (w0 & 0xff) <= TcpState.SYN_SENT2 && ((w0 >>> 16) & 0xff) <= 1 && w0 >>> 24 <= 5 && (w1 & 0xff) <= TCP_MAX_WSCALE &&
    ((w1 >>> 16) & 0xff) <= TCP_MAX_WSCALE && from[offset + 2] >>> 24 === 0 && from[offset + 3] <= 0xffff;
}

/** Why importEntry refuses words tcpExportWordsOk rejected (worked out only then). */
function tcpImportRefusal(from: Uint32Array, offset: number): string {
  if (offset < 0 || offset + TCP_EXPORT_WORDS > from.length) {
    return `importEntry: ${TCP_EXPORT_WORDS} words needed at offset ${offset} but the buffer holds ${from.length}; the sync message is truncated`;
  }
  const w0 = from[offset];
  const w1 = from[offset + 1];
  const w2 = from[offset + 2];
  const w3 = from[offset + 3];
  if (w2 >>> 24 !== 0 || w3 > 0xffff) {
    return `importEntry: words 2-3 (${w2 >>> 0}, ${w3 >>> 0}) have bits set that no version writes; the peer runs an incompatible version or the data is corrupt`;
  }
  return `importEntry: words 0-1 (${w0 >>> 0}, ${w1 >>> 0}) hold an impossible TCP state, direction, flag class or window scale; the peer runs an incompatible version or the data is corrupt`;
}

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


function checkBuffer(buffer: ArrayBuffer, capacity: number): void {
  if (buffer.byteLength < capacity * TCP_STRIDE_BYTES) {
    throw new TcpCapacityError(
      `TcpStateStore: a buffer of ${buffer.byteLength} bytes cannot hold ${capacity} records of ${TCP_STRIDE_BYTES} bytes; allocate capacity * TCP_STRIDE_BYTES`,
    );
  }
}

export class TcpStateStore {
  /** Slots available. */
  capacity: number;
  /** The records: capacity * TCP_RECORD_BYTES bytes. Replaced by grow(). */
  buffer: ArrayBuffer;
  /** Word view of buffer: slot s's word field W_X is u32[(s << 4) + W_X]. Replaced by grow(). */
  u32: Uint32Array;
  /** Byte view of buffer: slot s's byte field B_X is u8[s * 64 + B_X]. Replaced by grow(). */
  u8: Uint8Array;

  /**
   * Alignment: a record is one cache line only if the buffer starts on a 64-byte boundary, which JS
   * cannot ask for. glibc hands large blocks out 16 bytes past a page boundary, so there each record
   * straddles two lines (bytes 0..47 and 48..63); that is still 2 lines per packet instead of ~17,
   * and shifting the views by a guessed 48 bytes measured only ~6% more (see the commit message).
   */
  constructor(capacity: number, buffer?: ArrayBuffer) {
    checkCapacity(capacity, 'TcpStateStore');
    this.capacity = capacity;
    this.buffer = buffer ?? new ArrayBuffer(capacity * TCP_STRIDE_BYTES);
    checkBuffer(this.buffer, capacity);
    this.u32 = new Uint32Array(this.buffer);
    this.u8 = new Uint8Array(this.buffer);
  }

  /**
   * TcpState code of a slot. For code outside the tracker (formatting, the table, tests); the
   * tracker's hot paths index u8 themselves from a record base computed once.
   */
  stateOf(slot: number): number {
    return this.u8[(slot * TCP_STRIDE_BYTES + TCP_BASE_BYTES) + B_STATE];
  }

  /** Word field W_X (+ dir) of a slot; for tests and tooling, not per-packet code. */
  wordOf(slot: number, w: number): number {
    return this.u32[(slot * TCP_STRIDE_WORDS + TCP_BASE_WORDS) + w];
  }

  /** Byte field B_X (+ dir) of a slot; for tests and tooling, not per-packet code. */
  byteOf(slot: number, b: number): number {
    return this.u8[(slot * TCP_STRIDE_BYTES + TCP_BASE_BYTES) + b];
  }

  /**
   * Enlarge to newCapacity slots, keeping every entry. Given `buffer`, the owner (the conntrack
   * table) has already copied its records into it, and the store only views it. Not for the hot
   * path: it copies everything.
   */
  grow(newCapacity: number, buffer?: ArrayBuffer): void {
    checkCapacity(newCapacity, 'TcpStateStore.grow');
    if (newCapacity < this.capacity) {
      throw new TcpCapacityError(
        `TcpStateStore.grow: ${newCapacity} is below the current capacity ${this.capacity}; a store never shrinks, make a new one`,
      );
    }
    let next = buffer;
    if (next === undefined) {
      next = new ArrayBuffer(newCapacity * TCP_STRIDE_BYTES);
      new Uint32Array(next).set(this.u32);
    }
    checkBuffer(next, newCapacity);
    this.buffer = next;
    this.u32 = new Uint32Array(next);
    this.u8 = new Uint8Array(next);
    this.capacity = newCapacity;
  }

  /** Reset a slot to all zeroes (state NONE), as the kernel's memset in tcp_new. */
  clear(slot: number): void {
    // 16 plain stores: cheaper than a fill() call for one record, and they clear the spare bytes too.
    const u32 = this.u32;
    const b = slot * TCP_STRIDE_WORDS + TCP_BASE_WORDS;
    for (let i = 0; i < TCP_RECORD_WORDS; i++) u32[b + i] = 0;
  }

  /** Reset one direction's window data, keeping BE_LIBERAL (kernel's nf_ct_tcp_state_reset). */
  resetDir(slot: number, dir: number): void {
    const u32 = this.u32;
    const u8 = this.u8;
    const w = (slot * TCP_STRIDE_WORDS + TCP_BASE_WORDS) + dir;
    const p = (slot * TCP_STRIDE_BYTES + TCP_BASE_BYTES) + dir;
    u32[w + W_TD_END] = 0;
    u32[w + W_TD_MAXEND] = 0;
    u32[w + W_TD_MAXWIN] = 0;
    u32[w + W_TD_MAXACK] = 0;
    u8[p + B_TD_SCALE] = 0;
    u8[p + B_TD_FLAGS] &= TcpDirFlag.BE_LIBERAL;
  }

  /** Copy every field of one slot to another (the table moving an entry). */
  copyEntry(fromSlot: number, toSlot: number): void {
    const u32 = this.u32;
    const f = fromSlot * TCP_STRIDE_WORDS + TCP_BASE_WORDS;
    const t = toSlot * TCP_STRIDE_WORDS + TCP_BASE_WORDS;
    for (let i = 0; i < TCP_RECORD_WORDS; i++) u32[t + i] = u32[f + i];
  }

  /**
   * Write the entry as TCP_EXPORT_WORDS 32-bit words at into[offset..], for replication. The wire
   * layout is independent of the record layout (and of host byte order); little fields are packed
   * low byte first:
   *   0: state | entryFlags << 8 | lastDir << 16 | lastIndex << 24
   *   1: tdScale[orig] | tdFlags[orig] << 8 | tdScale[reply] << 16 | tdFlags[reply] << 24
   *   2: retrans | lastWscale << 8 | lastFlags << 16
   *   3: lastWin
   *   4..7:  original direction tdEnd, tdMaxend, tdMaxwin, tdMaxack
   *   8..11: reply direction tdEnd, tdMaxend, tdMaxwin, tdMaxack
   *   12: lastSeq   13: lastAck   14: lastEnd
   */
  exportEntry(slot: number, into: Uint32Array, offset: number): void {
    const u32 = this.u32;
    const u8 = this.u8;
    const b = slot * TCP_STRIDE_WORDS + TCP_BASE_WORDS;
    const p = (slot * TCP_STRIDE_BYTES + TCP_BASE_BYTES);
    into[offset] = u8[p + B_STATE] | (u8[p + B_ENTRY_FLAGS] << 8) | (u8[p + B_LAST_DIR] << 16) | (u8[p + B_LAST_INDEX] << 24);
    into[offset + 1] =
      u8[p + B_TD_SCALE] | (u8[p + B_TD_FLAGS] << 8) | (u8[p + B_TD_SCALE + 1] << 16) | (u8[p + B_TD_FLAGS + 1] << 24);
    into[offset + 2] = u8[p + B_RETRANS] | (u8[p + B_LAST_WSCALE] << 8) | (u8[p + B_LAST_FLAGS] << 16);
    into[offset + 3] = u32[b + W_LAST_WIN];
    for (let dir = 0; dir < 2; dir++) {
      const o = offset + 4 + dir * 4;
      into[o] = u32[b + W_TD_END + dir];
      into[o + 1] = u32[b + W_TD_MAXEND + dir];
      into[o + 2] = u32[b + W_TD_MAXWIN + dir];
      into[o + 3] = u32[b + W_TD_MAXACK + dir];
    }
    into[offset + 12] = u32[b + W_LAST_SEQ];
    into[offset + 13] = u32[b + W_LAST_ACK];
    into[offset + 14] = u32[b + W_LAST_END];
  }

  /**
   * Read an entry written by exportEntry into slot. The words come from the peer, so they are
   * checked before anything is written: a bad entry throws TcpImportError and leaves the slot as it was.
   */
  importEntry(slot: number, from: Uint32Array, offset: number): void {
    if (!tcpExportWordsOk(from, offset)) throw new TcpImportError(tcpImportRefusal(from, offset));
    const w0 = from[offset];
    const w1 = from[offset + 1];
    const w2 = from[offset + 2];
    const w3 = from[offset + 3];
    const state = w0 & 0xff;
    const lastDir = (w0 >>> 16) & 0xff;
    const lastIndex = w0 >>> 24;
    const scaleO = w1 & 0xff;
    const scaleR = (w1 >>> 16) & 0xff;
    const u32 = this.u32;
    const u8 = this.u8;
    const b = slot * TCP_STRIDE_WORDS + TCP_BASE_WORDS;
    const p = (slot * TCP_STRIDE_BYTES + TCP_BASE_BYTES);
    // Start from a zero record so the spare bytes stay zero whatever the slot held.
    this.clear(slot);
    u8[p + B_STATE] = state;
    u8[p + B_ENTRY_FLAGS] = (w0 >>> 8) & 0xff;
    u8[p + B_LAST_DIR] = lastDir;
    u8[p + B_LAST_INDEX] = lastIndex;
    u8[p + B_TD_SCALE] = scaleO;
    u8[p + B_TD_FLAGS] = (w1 >>> 8) & 0xff;
    u8[p + B_TD_SCALE + 1] = scaleR;
    u8[p + B_TD_FLAGS + 1] = w1 >>> 24;
    u8[p + B_RETRANS] = w2 & 0xff;
    u8[p + B_LAST_WSCALE] = (w2 >>> 8) & 0xff;
    u8[p + B_LAST_FLAGS] = (w2 >>> 16) & 0xff;
    u32[b + W_LAST_WIN] = w3;
    for (let dir = 0; dir < 2; dir++) {
      const o = offset + 4 + dir * 4;
      u32[b + W_TD_END + dir] = from[o];
      u32[b + W_TD_MAXEND + dir] = from[o + 1];
      u32[b + W_TD_MAXWIN + dir] = from[o + 2];
      u32[b + W_TD_MAXACK + dir] = from[o + 3];
    }
    u32[b + W_LAST_SEQ] = from[offset + 12];
    u32[b + W_LAST_ACK] = from[offset + 13];
    u32[b + W_LAST_END] = from[offset + 14];
  }
}

/**
 * One conntrack entry as a fixed run of 32-bit words: what `ct save` writes, `ct restore` reads
 * and state sync carries, so that an entry moves between tables (and nodes, and versions) whole:
 * both tuples (the NAT mapping is the reply tuple), status, mark, label, the time left and the
 * age, counters, and the TCP tracker's window data.
 *
 * Layout (ENTRY_RECORD_WORDS = 48 words, 192 bytes; little-endian as bytes):
 *   0..9    original tuple (tuple.ts)      10..19  reply tuple
 *   20      status bits (CtStatus; USED, CONFIRMED and REPLICATED are the table's own, never sent)
 *   21      mark                            22      label
 *   23      milliseconds left before expiry (clocks differ between nodes: relative, not absolute)
 *   24      age in seconds
 *   25..32  packets original, packets reply, bytes original, bytes reply (high word, low word)
 *   33..47  TCP record (TcpStateStore.exportEntry; zero for other protocols)
 *
 * Records come from files and from the network: checkEntryRecord finds every reason a record
 * cannot be an entry before a table is touched.
 */
import { Proto } from '../packet/fields.js';
import { TW_PORTS, TW_PROTO } from './tuple.js';
import { TcpStateStore, TCP_EXPORT_WORDS, tcpExportWordsOk } from './tcp-store.js';

export const ENTRY_RECORD_WORDS = 48;
export const ENTRY_RECORD_BYTES = ENTRY_RECORD_WORDS * 4;
export const ER_ORIG = 0;
export const ER_REPLY = 10;
export const ER_STATUS = 20;
export const ER_MARK = 21;
export const ER_LABEL = 22;
export const ER_TIMEOUT_MS = 23;
export const ER_AGE_S = 24;
export const ER_COUNTERS = 25;
export const ER_TCP = 33;

/** Status bits a record may carry (SEEN_REPLY, ASSURED, SRC_NAT, DST_NAT, EXPECTED). */
export const RECORD_STATUS_BITS = 1 | 2 | 8 | 16 | 64;
/** Longest timeout a record may ask for: 10 days (the longest Linux default is 5 days). */
export const RECORD_MAX_TIMEOUT_MS = 10 * 24 * 3600 * 1000;

/** A record that cannot be an entry (corrupt file or datagram, or an incompatible peer). */
export class EntryRecordError extends Error {
  readonly code = 'CT_RECORD_INVALID';
  constructor(message: string) {
    super(message);
    this.name = 'EntryRecordError';
  }
}

const TWO32 = 4294967296;

/** Split a non-negative counter into (high, low) words. */
export function writeCounter(out: Uint32Array, off: number, v: number): void {
  out[off] = Math.floor(v / TWO32) >>> 0;
  out[off + 1] = v >>> 0;
}

export function readCounter(w: Uint32Array, off: number): number {
  return w[off] * TWO32 + w[off + 1];
}

/** A store of one slot to check TCP records with, as the real import would. */
const scratchTcp = new TcpStateStore(1);

function checkTuple(w: Uint32Array, off: number, which: string): string | null {
  const fp = w[off + TW_PROTO];
  const family = fp >>> 8;
  const proto = fp & 0xff;
  if (family !== 4 && family !== 6) return `${which} tuple: address family ${family} is neither 4 nor 6`;
  if (family === 4 && (w[off + 1] | w[off + 2] | w[off + 3] | w[off + 5] | w[off + 6] | w[off + 7]) !== 0) {
    return `${which} tuple: an IPv4 address with bits beyond its first word`;
  }
  if (proto === 0 && (w[off + TW_PORTS] !== 0)) return `${which} tuple: protocol 0 with ports`;
  return null;
}

/** The tuple's family, addresses and ports are possible (checkTuple without the reason). */
function tupleOk(w: Uint32Array, off: number): boolean {
  const fp = w[off + TW_PROTO];
  const family = fp >>> 8;
  if (family === 4) {
    if ((w[off + 1] | w[off + 2] | w[off + 3] | w[off + 5] | w[off + 6] | w[off + 7]) !== 0) return false;
  } else if (family !== 6) return false;
  return (fp & 0xff) !== 0 || w[off + TW_PORTS] === 0;
}

/**
 * The record's status bits, timeout and counters are possible (what checkEntryRecord tests of
 * them; the sync decoder certifies its records with it too).
 */
export function recordScalarsOk(w: Uint32Array, off: number): boolean {
  return (w[off + ER_STATUS] & ~RECORD_STATUS_BITS) === 0 && w[off + ER_TIMEOUT_MS] <= RECORD_MAX_TIMEOUT_MS &&
    (w[off + ER_COUNTERS] | w[off + ER_COUNTERS + 2] | w[off + ER_COUNTERS + 4] | w[off + ER_COUNTERS + 6]) >>> 0 <= 0x1fffff;
}

/**
 * Why the record at w[off..off+48) cannot be an entry, or null when it can. Checks what importing
 * relies on: tuple families and protocol agree, status and timeout in range, TCP data possible.
 */
export function checkEntryRecord(w: Uint32Array, off: number): string | null {
  if (off < 0 || off + ENTRY_RECORD_WORDS > w.length) return `record truncated: ${ENTRY_RECORD_WORDS} words needed`;
  // Every record a sync receive or a restore imports passes here: the common case (a possible
  // entry that is not TCP) in plain integer tests first; the reasons are worked out only on failure.
  if (tupleOk(w, off + ER_ORIG) && tupleOk(w, off + ER_REPLY) && w[off + ER_ORIG + TW_PROTO] === w[off + ER_REPLY + TW_PROTO] &&
    recordScalarsOk(w, off)) {
    if ((w[off + ER_ORIG + TW_PROTO] & 0xff) === Proto.TCP) {
      if (tcpExportWordsOk(w, off + ER_TCP)) return null;
    } else {
      let tcpWords = 0;
      for (let i = 0; i < TCP_EXPORT_WORDS; i++) tcpWords |= w[off + ER_TCP + i];
      if (tcpWords === 0) return null;
    }
  }
  const bad = checkTuple(w, off + ER_ORIG, 'original') ?? checkTuple(w, off + ER_REPLY, 'reply');
  if (bad !== null) return bad;
  if (w[off + ER_ORIG + TW_PROTO] !== w[off + ER_REPLY + TW_PROTO]) return 'original and reply tuples differ in family or protocol';
  const status = w[off + ER_STATUS];
  if ((status & ~RECORD_STATUS_BITS) !== 0) return `status 0x${status.toString(16)} has bits a record may not carry`;
  if (w[off + ER_TIMEOUT_MS] > RECORD_MAX_TIMEOUT_MS) return `timeout ${w[off + ER_TIMEOUT_MS]} ms is above 10 days`;
  for (let i = 0; i < 4; i++) {
    if (w[off + ER_COUNTERS + i * 2] > 0x1fffff) return 'a counter is above 2^53';
  }
  const tcp = (w[off + ER_ORIG + TW_PROTO] & 0xff) === Proto.TCP;
  if (tcp) {
    try {
      scratchTcp.importEntry(0, w, off + ER_TCP);
    } catch (e) {
      return `TCP data: ${(e as Error).message}`;
    }
  } else {
    for (let i = 0; i < TCP_EXPORT_WORDS; i++) {
      if (w[off + ER_TCP + i] !== 0) return 'TCP data in a record that is not TCP';
    }
  }
  return null;
}

/** Throw EntryRecordError unless the record can be an entry. */
export function assertEntryRecord(w: Uint32Array, off: number): void {
  const why = checkEntryRecord(w, off);
  if (why !== null) throw new EntryRecordError(`conntrack entry record refused: ${why}`);
}

/** Record words -> 192 little-endian bytes at out[boff..]. */
export function recordToBytes(w: Uint32Array, off: number, out: Uint8Array, boff: number): void {
  const dv = new DataView(out.buffer, out.byteOffset + boff, ENTRY_RECORD_BYTES);
  for (let i = 0; i < ENTRY_RECORD_WORDS; i++) dv.setUint32(i * 4, w[off + i], true);
}

/** 192 little-endian bytes -> record words at w[off..]. */
export function recordFromBytes(b: Uint8Array, boff: number, w: Uint32Array, off: number): void {
  const dv = new DataView(b.buffer, b.byteOffset + boff, ENTRY_RECORD_BYTES);
  for (let i = 0; i < ENTRY_RECORD_WORDS; i++) w[off + i] = dv.getUint32(i * 4, true);
}

/** Records back to back as bytes (a table dump for tools and tests). */
export function recordsToBytes(recs: readonly Uint32Array[]): Buffer {
  const out = Buffer.alloc(recs.length * ENTRY_RECORD_BYTES);
  for (let i = 0; i < recs.length; i++) recordToBytes(recs[i], 0, out, i * ENTRY_RECORD_BYTES);
  return out;
}

/** Back-to-back records (recordsToBytes) as one Uint32Array each; EntryRecordError if cut short. */
export function recordsFromBytes(b: Uint8Array): Uint32Array[] {
  if (b.length % ENTRY_RECORD_BYTES !== 0) {
    throw new EntryRecordError(`${b.length} bytes are not a whole number of ${ENTRY_RECORD_BYTES}-byte records`);
  }
  const out: Uint32Array[] = [];
  for (let o = 0; o < b.length; o += ENTRY_RECORD_BYTES) {
    const w = new Uint32Array(ENTRY_RECORD_WORDS);
    recordFromBytes(b, o, w, 0);
    out.push(w);
  }
  return out;
}

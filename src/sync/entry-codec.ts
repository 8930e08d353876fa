/**
 * Entries of UPDATE messages (layout in wire.ts) to and from the conntrack table's 48-word entry
 * records (src/node/conntrack/entry-record.ts). The sender encodes straight from the table into
 * the datagram being packed; the receiver decodes into a record that table.importEntry checks
 * and applies. IPv4 tuples travel as 4-byte addresses, so a TCP entry is about 100 bytes, and a
 * flow without NAT leaves its reply tuple out when the peer reads that (REPLY_REVERSED).
 */
import { ENTRY_RECORD_WORDS } from '../node/conntrack/index.js';
import { ER_AGE_S, ER_COUNTERS, ER_LABEL, ER_MARK, ER_REPLY, ER_STATUS, ER_TCP, ER_TIMEOUT_MS, recordScalarsOk } from '../node/conntrack/entry-record.js';
import { ENTRY_HEAD_BYTES, EntryOp, HELPER_HEAD_BYTES, KNOWN_SECTIONS, Section, TCP_SECTION_WORDS } from './wire.js';
import { EXPECT_WORDS } from '../node/conntrack/expect.js';
import { tcpExportWordsOk } from '../node/conntrack/tcp-store.js';
import { invertTuple, tuplesEqual } from '../node/conntrack/tuple.js';
import { HELPER_STATE_HEAD_WORDS, HELPER_STATE_MAX_EXPECT, HELPER_STATE_MAX_WORDS, HELPER_STATE_SEQADJ_WORDS, HelperStateFlag } from '../node/conntrack/helpers/state.js';

// Record word offsets (entry-record.ts), as module-local copies for the hot path.
const R_REPLY = ER_REPLY;
const R_STATUS = ER_STATUS;
const R_MARK = ER_MARK;
const R_LABEL = ER_LABEL;
const R_TIMEOUT = ER_TIMEOUT_MS;
const R_AGE = ER_AGE_S;
const R_COUNTERS = ER_COUNTERS;
const R_TCP = ER_TCP;
const OP_DESTROY = EntryOp.DESTROY;
const S_MARK = Section.MARK;
const S_LABEL = Section.LABEL;
const S_COUNTERS = Section.COUNTERS;
const S_TCP = Section.TCP;
const S_AGE = Section.AGE;
const S_HELPER = Section.HELPER;
const S_REVERSED = Section.REPLY_REVERSED;
const TW = 10; // words of a tuple

/** Bytes of an encoded tuple: two addresses and the ports word. */
function tupleBytes(family: number): number {
  return family === 4 ? 12 : 36;
}

/** Bytes of an entry with this op and sections (`helperBytes`: the HELPER section's, when present). */
export function entryBytes(family: number, op: number, sections: number, helperBytes = HELPER_HEAD_BYTES): number {
  let n = ENTRY_HEAD_BYTES + tupleBytes(family);
  if (op === OP_DESTROY) return n;
  if ((sections & S_REVERSED) === 0) n += tupleBytes(family);
  n += 6;
  if (sections & S_MARK) n += 4;
  if (sections & S_LABEL) n += 4;
  if (sections & S_COUNTERS) n += 32;
  if (sections & S_TCP) n += TCP_SECTION_WORDS * 4;
  if (sections & S_AGE) n += 4;
  if (sections & S_HELPER) n += helperBytes;
  return n;
}

/** Bytes of one expectation in the HELPER section. */
function expectBytes(family: number): number {
  return tupleBytes(family) + 16;
}

/** Bytes of the HELPER section for helper state words (conntrack/helpers/state.ts). */
export function helperSectionBytes(family: number, h: Uint32Array): number {
  return HELPER_HEAD_BYTES + ((h[1] & HelperStateFlag.SEQ_ADJUST) !== 0 ? HELPER_STATE_SEQADJ_WORDS * 4 : 0) + h[2] * expectBytes(family);
}

function writeHelper(buf: Buffer, o: number, h: Uint32Array, family: number): number {
  buf[o] = h[0];
  buf[o + 1] = h[1];
  buf[o + 2] = h[2];
  buf[o + 3] = 0;
  o += HELPER_HEAD_BYTES;
  let w = HELPER_STATE_HEAD_WORDS;
  if ((h[1] & HelperStateFlag.SEQ_ADJUST) !== 0) {
    for (let i = 0; i < HELPER_STATE_SEQADJ_WORDS; i++) put32(buf, o + i * 4, h[w + i]);
    o += HELPER_STATE_SEQADJ_WORDS * 4;
    w += HELPER_STATE_SEQADJ_WORDS;
  }
  for (let i = 0; i < h[2]; i++, w += EXPECT_WORDS) {
    o = writeTuple(buf, o, h, w, family);
    const df = h[w + TW + 3];
    buf[o] = h[w + 9] & 0xff;
    buf[o + 1] = df >>> 8;
    buf[o + 2] = df & 0xff;
    buf[o + 3] = 0;
    put32(buf, o + 4, h[w + TW]);
    put32(buf, o + 8, h[w + TW + 1]);
    put32(buf, o + 12, h[w + TW + 2]);
    o += 16;
  }
  return o;
}

/** The HELPER section at buf[o..end) into words; the offset after it, or -1 when it does not fit. */
function readHelper(buf: Buffer, o: number, end: number, family: number, out: DecodedEntry): number {
  if (end - o < HELPER_HEAD_BYTES) return -1;
  const h = out.helper;
  const flags = buf[o + 1];
  const n = buf[o + 2];
  if (n > HELPER_STATE_MAX_EXPECT) return -1;
  const seq = (flags & HelperStateFlag.SEQ_ADJUST) !== 0;
  if (end - o < HELPER_HEAD_BYTES + (seq ? HELPER_STATE_SEQADJ_WORDS * 4 : 0) + n * expectBytes(family)) return -1;
  h[0] = buf[o];
  h[1] = flags & HelperStateFlag.SEQ_ADJUST;
  h[2] = n;
  o += HELPER_HEAD_BYTES;
  let w = HELPER_STATE_HEAD_WORDS;
  if (seq) {
    for (let i = 0; i < HELPER_STATE_SEQADJ_WORDS; i++) h[w + i] = u32(buf, o + i * 4);
    o += HELPER_STATE_SEQADJ_WORDS * 4;
    w += HELPER_STATE_SEQADJ_WORDS;
  }
  for (let i = 0; i < n; i++, w += EXPECT_WORDS) {
    o = readTuple(buf, o, h, w, family, buf[o + tupleBytes(family)]);
    h[w + TW + 3] = (buf[o + 1] << 8) | buf[o + 2];
    h[w + TW] = u32(buf, o + 4);
    h[w + TW + 1] = u32(buf, o + 8);
    h[w + TW + 2] = u32(buf, o + 12);
    o += 16;
  }
  out.helperWords = w;
  return o;
}

/**
 * Write a word big-endian at buf[o..o+4) (the caller made sure it fits): plain byte stores,
 * cheaper than Buffer#writeUInt32BE's argument checks in the packer's hot loop.
 */
function put32(buf: Buffer, o: number, v: number): void {
  buf[o] = v >>> 24;
  buf[o + 1] = v >>> 16;
  buf[o + 2] = v >>> 8;
  buf[o + 3] = v;
}

function writeTuple(buf: Buffer, o: number, w: Uint32Array, t: number, family: number): number {
  if (family === 4) {
    put32(buf, o, w[t]);
    put32(buf, o + 4, w[t + 4]);
    put32(buf, o + 8, w[t + 8]);
    return o + 12;
  }
  for (let i = 0; i < 8; i++) put32(buf, o + i * 4, w[t + i]);
  put32(buf, o + 32, w[t + 8]);
  return o + 36;
}

/**
 * A big-endian word at buf[o..o+4) (the caller checked the bounds): plain byte loads, cheaper
 * than Buffer#readUInt32BE's argument checks on the receive path's hot loop.
 */
function u32(buf: Buffer, o: number): number {
  return ((buf[o] << 24) | (buf[o + 1] << 16) | (buf[o + 2] << 8) | buf[o + 3]) >>> 0;
}

function readTuple(buf: Buffer, o: number, w: Uint32Array, t: number, family: number, proto: number): number {
  if (family === 4) {
    w[t] = u32(buf, o);
    w[t + 1] = 0;
    w[t + 2] = 0;
    w[t + 3] = 0;
    w[t + 4] = u32(buf, o + 4);
    w[t + 5] = 0;
    w[t + 6] = 0;
    w[t + 7] = 0;
    w[t + 8] = u32(buf, o + 8);
    w[t + 9] = (family << 8) | proto;
    return o + 12;
  }
  for (let i = 0; i < 8; i++) w[t + i] = u32(buf, o + i * 4);
  w[t + 8] = u32(buf, o + 32);
  w[t + 9] = (family << 8) | proto;
  return o + 36;
}

/**
 * The sections a record's entry carries: of `wanted`, COUNTERS and AGE; MARK and LABEL when
 * non-zero; TCP for TCP; REPLY_REVERSED when wanted and the reply tuple is the original's inverse
 * (a flow without NAT); nothing beyond the tuple for a destroy.
 */
export function recordSections(rec: Uint32Array, op: number, wanted: number): number {
  if (op === OP_DESTROY) return 0;
  let sections = wanted & (S_COUNTERS | S_AGE);
  if (rec[R_MARK] !== 0) sections |= S_MARK;
  if (rec[R_LABEL] !== 0) sections |= S_LABEL;
  if ((rec[9] & 0xff) === 6) sections |= S_TCP;
  if ((wanted & S_REVERSED) !== 0 && invertTuple(rec, 0, inverse, 0) && tuplesEqual(inverse, 0, rec, R_REPLY)) sections |= S_REVERSED;
  return sections;
}

/** Where recordSections works out a record's inverse original tuple. */
const inverse = new Uint32Array(TW);

/**
 * Encode a record (table.exportEntry's words at rec[0..48)) as an entry at buf[off..], with the
 * sections recordSections() chose; the caller made sure entryBytes() fit. Returns the offset
 * after the entry.
 */
export function encodeRecord(rec: Uint32Array, op: number, sections: number, buf: Buffer, off: number, helper: Uint32Array | null = null): number {
  const fp = rec[9];
  const family = fp >>> 8;
  const proto = fp & 0xff;
  const len = entryBytes(family, op, sections, (sections & S_HELPER) !== 0 && helper !== null ? helperSectionBytes(family, helper) : HELPER_HEAD_BYTES);
  buf[off] = op;
  buf[off + 1] = sections;
  buf[off + 2] = len >>> 8;
  buf[off + 3] = len;
  buf[off + 4] = family;
  buf[off + 5] = proto;
  let o = writeTuple(buf, off + ENTRY_HEAD_BYTES, rec, 0, family);
  if (op === OP_DESTROY) return o;
  if ((sections & S_REVERSED) === 0) o = writeTuple(buf, o, rec, R_REPLY, family);
  buf[o] = rec[R_STATUS] >>> 8;
  buf[o + 1] = rec[R_STATUS];
  put32(buf, o + 2, rec[R_TIMEOUT]);
  o += 6;
  if (sections & S_MARK) {
    put32(buf, o, rec[R_MARK]);
    o += 4;
  }
  if (sections & S_LABEL) {
    put32(buf, o, rec[R_LABEL]);
    o += 4;
  }
  if (sections & S_COUNTERS) {
    for (let i = 0; i < 8; i++) put32(buf, o + i * 4, rec[R_COUNTERS + i]);
    o += 32;
  }
  if (sections & S_TCP) {
    for (let i = 0; i < TCP_SECTION_WORDS; i++) put32(buf, o + i * 4, rec[R_TCP + i]);
    o += TCP_SECTION_WORDS * 4;
  }
  if (sections & S_AGE) {
    put32(buf, o, rec[R_AGE]);
    o += 4;
  }
  if (sections & S_HELPER) {
    if (helper === null) throw new RangeError('encodeRecord: the HELPER section needs the helper state words');
    o = writeHelper(buf, o, helper, family);
  }
  return o;
}

/** What decodeEntry read besides the record. */
export interface DecodedEntry {
  op: number;
  sections: number;
  /** Bytes the entry took. */
  length: number;
  /** The HELPER section as words (conntrack/helpers/state.ts), when sections has it. */
  helper: Uint32Array;
  helperWords: number;
  /**
   * The record passed, as it was decoded, every test checkEntryRecord makes (status, timeout,
   * ports, counters and a TCP entry's TCP words possible): table.importHashed need not check it
   * again. False for anything doubtful, whose import then says why it is refused.
   */
  checked: boolean;
}

/** A DecodedEntry with room for any HELPER section. */
export function newDecodedEntry(): DecodedEntry {
  return { op: 0, sections: 0, length: 0, helper: new Uint32Array(HELPER_STATE_MAX_WORDS), helperWords: 0, checked: false };
}

/**
 * Decode the entry at buf[off..end) into rec[ro..ro+48) (absent sections zero). Returns null, or
 * why the bytes are not an entry. Unknown section bits beyond ours are skipped by the length.
 */
export function decodeEntry(buf: Buffer, off: number, end: number, rec: Uint32Array, out: DecodedEntry, ro = 0): string | null {
  if (end - off < ENTRY_HEAD_BYTES) return 'entry truncated';
  const op = buf[off];
  const sections = buf[off + 1];
  const len = (buf[off + 2] << 8) | buf[off + 3];
  const family = buf[off + 4];
  const proto = buf[off + 5];
  if (op < EntryOp.CREATE || op > EntryOp.DESTROY) return `unknown entry op ${op}`;
  if (family !== 4 && family !== 6) return `address family ${family}`;
  if (len > end - off) return 'entry longer than the message';
  const need = entryBytes(family, op, sections & KNOWN_SECTIONS);
  if (len < need || (op === OP_DESTROY && sections !== 0)) return `entry length ${len} does not fit its sections (${need} bytes)`;
  if (op !== OP_DESTROY && (sections & S_TCP) === 0 && proto === 6) return 'TCP entry without its TCP section';
  out.op = op;
  out.sections = sections;
  out.length = len;
  out.checked = false;
  // Every word written (absent sections as zeros), no fill first: the receive path's hot loop.
  let o = readTuple(buf, off + ENTRY_HEAD_BYTES, rec, ro, family, proto);
  if (op === OP_DESTROY) {
    rec.fill(0, ro + R_REPLY, ro + ENTRY_RECORD_WORDS);
    return null;
  }
  if ((sections & S_REVERSED) === 0) o = readTuple(buf, o, rec, ro + R_REPLY, family, proto);
  else if (!invertTuple(rec, ro, rec, ro + R_REPLY)) return 'reply tuple left out, but the original has no inverse';
  rec[ro + R_STATUS] = (buf[o] << 8) | buf[o + 1];
  rec[ro + R_TIMEOUT] = u32(buf, o + 2);
  o += 6;
  if (sections & S_MARK) {
    rec[ro + R_MARK] = u32(buf, o);
    o += 4;
  } else rec[ro + R_MARK] = 0;
  if (sections & S_LABEL) {
    rec[ro + R_LABEL] = u32(buf, o);
    o += 4;
  } else rec[ro + R_LABEL] = 0;
  if (sections & S_COUNTERS) {
    for (let i = 0; i < 8; i++) rec[ro + R_COUNTERS + i] = u32(buf, o + i * 4);
    o += 32;
  } else for (let i = 0; i < 8; i++) rec[ro + R_COUNTERS + i] = 0;
  if (sections & S_TCP) {
    for (let i = 0; i < TCP_SECTION_WORDS; i++) rec[ro + R_TCP + i] = u32(buf, o + i * 4);
    o += TCP_SECTION_WORDS * 4;
  } else for (let i = 0; i < TCP_SECTION_WORDS; i++) rec[ro + R_TCP + i] = 0;
  if (sections & S_AGE) {
    rec[ro + R_AGE] = u32(buf, o);
    o += 4;
  } else rec[ro + R_AGE] = 0;
  out.helperWords = 0;
  if (sections & S_HELPER && readHelper(buf, o, off + len, family, out) < 0) return 'helper section does not fit the entry';
  // What checkEntryRecord tests beyond what decoding guarantees by construction (families 4 or 6,
  // IPv4 addresses in one word, both tuples of one family and protocol, zero TCP words for an
  // entry without the TCP section): the rest is checked here, cheaply. A TCP entry's words are
  // checked as the TCP store's import will take them (before, the import checked them by a
  // trial import into a scratch store, then imported them again).
  out.checked = recordScalarsOk(rec, ro) && ((sections & S_TCP) === 0
    ? proto !== 6 && (proto !== 0 || (rec[ro + 8] | rec[ro + R_REPLY + 8]) === 0)
    : proto === 6 && tcpExportWordsOk(rec, ro + R_TCP));
  return null;
}

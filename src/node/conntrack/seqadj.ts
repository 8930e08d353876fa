/**
 * TCP sequence adjustment of entries whose payload a NAT helper resized (Linux's
 * nf_conntrack_seqadj): per direction, the sequence number of the last resized segment and the
 * offset before and after it. Every later packet of the flow is fixed: its sequence number by its
 * own direction's offset, its acknowledgement and SACK blocks by the other direction's, so both
 * ends keep seeing one consistent byte stream. The TCP tracker reads acknowledgements with the
 * offset taken back out (untrackAck), since it tracks each direction in its sender's numbers.
 *
 * Few entries ever need it (FTP control connections behind NAT), so the state lives in a map by
 * slot, guarded by the entry's id; the entry's status bit SEQ_ADJUST says to look.
 */
import { updateChecksumAt32 } from '../packet/checksum.js';
import type { PacketView } from '../packet/view.js';

/** One entry's adjustments: index dir (0 original, 1 reply). */
export interface SeqAdjustment {
  entryId: number;
  /** Sequence number (sender's) of the last segment resized in each direction. */
  pos: [number, number];
  /** Offset for sequence numbers up to pos, and after it. */
  before: [number, number];
  after: [number, number];
}

/** a is after b in sequence space. */
function after(a: number, b: number): boolean {
  return ((a - b) | 0) > 0;
}

const TCP_OPT_SACK = 5;

export class SeqAdjustments {
  readonly #bySlot = new Map<number, SeqAdjustment>();

  get size(): number {
    return this.#bySlot.size;
  }

  /** The entry's adjustments, or undefined (a reused slot's old ones are dropped). */
  get(slot: number, entryId: number): SeqAdjustment | undefined {
    const a = this.#bySlot.get(slot);
    if (a === undefined) return undefined;
    if (a.entryId !== entryId) {
      this.#bySlot.delete(slot);
      return undefined;
    }
    return a;
  }

  /**
   * The segment of direction `dir` starting at `seq` (sender's numbers) was resized by `delta`
   * bytes. As Linux's nf_ct_seqadj_set: a new position only when it is after the last one (a
   * retransmission of the resized segment changes nothing).
   */
  record(slot: number, entryId: number, dir: number, seq: number, delta: number): SeqAdjustment {
    let a = this.get(slot, entryId);
    if (a === undefined) {
      a = { entryId, pos: [0, 0], before: [0, 0], after: [0, 0] };
      this.#bySlot.set(slot, a);
    }
    if (a.before[dir] === a.after[dir] || after(seq, a.pos[dir])) {
      a.pos[dir] = seq >>> 0;
      a.before[dir] = a.after[dir];
      a.after[dir] += delta;
    }
    return a;
  }

  /** Replace an entry's adjustments (sync, restore). */
  set(slot: number, a: SeqAdjustment): void {
    this.#bySlot.set(slot, a);
  }

  delete(slot: number): void {
    this.#bySlot.delete(slot);
  }

  /** Forget entries that ended (slot free or reused). */
  sweep(ids: Uint32Array): void {
    for (const [slot, a] of this.#bySlot) if (ids[slot] !== a.entryId) this.#bySlot.delete(slot);
  }

  /** An acknowledgement of direction `dir`'s packet, in the other direction's sender numbers (for the tracker). */
  static untrackAck(a: SeqAdjustment, dir: number, ack: number): number {
    const o = dir ^ 1;
    const off = after((ack - 1 - a.before[o]) >>> 0, a.pos[o]) ? a.after[o] : a.before[o];
    return (ack - off) >>> 0;
  }

  /**
   * Fix a packet of direction `dir` in place (the view parsed over its bytes): sequence number,
   * acknowledgement, SACK blocks, and the TCP checksum by RFC 1624. Returns true when bytes changed.
   */
  static apply(a: SeqAdjustment, v: PacketView, dir: number): boolean {
    const b = v.buffer;
    const l4 = v.l4Offset;
    const sum = l4 + 16;
    let changed = false;
    const seq = read32(b, l4 + 4);
    const soff = after(seq, a.pos[dir]) ? a.after[dir] : a.before[dir];
    if (soff !== 0) changed = replace32(b, l4 + 4, sum, seq, (seq + soff) >>> 0);
    const o = dir ^ 1;
    if ((b[l4 + 13] & 0x10) !== 0 && (a.before[o] !== 0 || a.after[o] !== 0)) {
      const ack = read32(b, l4 + 8);
      const aoff = otherOffset(a, o, ack);
      if (aoff !== 0) changed = replace32(b, l4 + 8, sum, ack, (ack - aoff) >>> 0);
      if (v.tcpHeaderLength > 20 && adjustSack(b, l4 + 20, l4 + v.tcpHeaderLength, a, o, sum)) changed = true;
    }
    return changed;
  }
}

/** The offset of a number in direction `o`'s space as the other end sees it (an ack or a SACK edge), as nf_ct_seqadj. */
function otherOffset(a: SeqAdjustment, o: number, n: number): number {
  return after((n - a.before[o]) >>> 0, a.pos[o]) ? a.after[o] : a.before[o];
}

/** Write `to` over `from` at b[at..at+4) and update the checksum at `sum` (RFC 1624). */
function replace32(b: Uint8Array, at: number, sum: number, from: number, to: number): boolean {
  write32(b, at, to);
  updateChecksumAt32(b, sum, from, to);
  return true;
}

/** SACK blocks in the options [p, end): each edge in the other direction's numbers, as nf_ct_sack_adjust. */
function adjustSack(b: Uint8Array, p: number, end: number, a: SeqAdjustment, o: number, sum: number): boolean {
  let changed = false;
  while (p < end) {
    const kind = b[p];
    if (kind === 0) break;
    if (kind === 1) {
      p++;
      continue;
    }
    if (p + 1 >= end) break;
    const len = b[p + 1];
    if (len < 2 || p + len > end) break;
    if (kind === TCP_OPT_SACK && (len - 2) % 8 === 0) {
      for (let q = p + 2; q + 4 <= p + len; q += 4) {
        const edge = read32(b, q);
        const off = otherOffset(a, o, edge);
        if (off !== 0) changed = replace32(b, q, sum, edge, (edge - off) >>> 0);
      }
    }
    p += len;
  }
  return changed;
}

function read32(b: Uint8Array, p: number): number {
  return ((b[p] << 24) | (b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3]) >>> 0;
}

function write32(b: Uint8Array, p: number, v: number): void {
  b[p] = v >>> 24;
  b[p + 1] = (v >>> 16) & 0xff;
  b[p + 2] = (v >>> 8) & 0xff;
  b[p + 3] = v & 0xff;
}

/**
 * The FTP helper (Linux's nf_conntrack_ftp and nf_nat_ftp): reads the control connection's lines
 * in order, both ways, and for each announced data connection (PORT / EPRT from the client,
 * 227 / 229 from the server) expects it, so its first packet is RELATED to the control entry:
 *
 *   announced by dir d (address A, port P)  ->  expected: from the other end's address (tuple[!d]
 *   source, any port) to tuple[!d]'s destination, port P; as Linux, in the reverse direction's
 *   tuple, which is what the data connection's first packet looks like here.
 *
 * Behind NAT the other end knows the announcer by another address (tuple[!d]'s destination, A'):
 * the line is rewritten to A' and a port P' free on A' (P when it is), the expectation is for
 * A':P', and the data connection's NAT follows the master's (back to A:P; Nat.followMaster*).
 * The rewrite changes the segment's length, so the entry's sequence numbers are adjusted from
 * then on (../seqadj.ts); a retransmission of the rewritten segment is rewritten the same way.
 * A line that must be rewritten but began in an earlier segment (already sent) is refused.
 *
 * An announcement is refused (counted by reason, no expectation) when it does not parse, names a
 * port below 1024 or above 65535, or an address that is not the sender's own on the control
 * connection (Linux's default, not `loose`: a client cannot open a hole towards a third host),
 * or a family other than the control connection's.
 */
import type { PacketView } from '../../packet/view.js';
import { MangleError, replacePayloadRanges, type PayloadEdit } from '../../packet/mangle.js';
import { Proto } from '../../packet/fields.js';
import { formatAddress } from '../../packet/address.js';
import { CtStatus, type ConntrackTable } from '../table.js';
import { CtChange } from '../events.js';
import type { ExpectationTable } from '../expect.js';
import type { SeqAdjustments } from '../seqadj.js';
import { TW_PROTO } from '../tuple.js';
import { FtpAnnouncement, FtpKind, FtpRefusal, ftpRefusalNames, parseFtpLine } from './ftp-parse.js';
import { LineEvent, LineStream } from './line-stream.js';

/** How long an announced data connection is expected (Linux's FTP expect policy: 5 minutes). */
export const FTP_EXPECT_TIMEOUT_MS = 5 * 60_000;
/** Outside ports tried for a rewritten announcement before it is refused (nat_port). */
const FREE_PORT_TRIES = 512;

/** What the helper needs of NAT: whether an outside port is free on an address. */
export interface OutsidePorts {
  pool(address: number, proto: number): { isFree(port: number): boolean };
}

/** The last segment rewritten in one direction, to rewrite its retransmissions alike. */
interface Rewrite {
  seq: number;
  len: number;
  payload: Buffer;
}

interface FtpFlow {
  /** The entry's id when this state was made (a reused slot is another connection). */
  entryId: number;
  streams: [LineStream, LineStream];
  rewrites: [Rewrite | null, Rewrite | null];
}

export class FtpHelper {
  readonly #flows = new Map<number, FtpFlow>();
  readonly #ann = new FtpAnnouncement();
  readonly #edits: PayloadEdit[] = [];
  /** Announcements refused, by FtpRefusal. */
  readonly refused = new Float64Array(ftpRefusalNames.length);
  /** Data connections expected. */
  expected = 0;
  /** Lines read. */
  lines = 0;
  /** Announcements rewritten for NAT. */
  rewritten = 0;

  constructor(
    readonly table: ConntrackTable,
    readonly expectations: ExpectationTable,
    readonly ports: OutsidePorts,
    readonly seqadj: SeqAdjustments,
  ) {}

  /** Control connections with helper state. */
  get flows(): number {
    return this.#flows.size;
  }

  /**
   * A TCP segment with payload of an FTP control entry, accepted, in direction `dir`. Returns the
   * packet to send instead (a rewritten announcement, from the IP header on), or null.
   */
  packet(v: PacketView, slot: number, dir: number, now: number): Buffer | null {
    const t = this.table;
    let f = this.#flows.get(slot);
    if (f === undefined || f.entryId !== t.id[slot]) {
      f = { entryId: t.id[slot], streams: [new LineStream(), new LineStream()], rewrites: [null, null] };
      this.#flows.set(slot, f);
    }
    const last = f.rewrites[dir];
    if (last !== null && v.tcpSeq === last.seq && v.payloadLength === last.len) {
      // The rewritten segment sent again: the same rewrite (its bytes were read already).
      return this.#build(v, [{ start: v.payloadOffset, end: v.payloadOffset + v.payloadLength, text: last.payload }]);
    }
    const s = f.streams[dir];
    s.begin(v.tcpSeq, v.buffer, v.payloadOffset, v.payloadLength);
    if (s.event === LineEvent.GAP) this.refused[FtpRefusal.STREAM_GAP]++;
    const edits = this.#edits;
    edits.length = 0;
    const expectedBefore = this.expected;
    for (;;) {
      const n = s.readLine();
      if (s.event === LineEvent.OVERLONG) this.refused[FtpRefusal.OVERLONG]++;
      if (n < 0) break;
      this.lines++;
      this.#line(s.line, n, s.lineStart, slot, dir, now);
    }
    // The standby must hold the expectations (and adjustments) as soon as the entry's other state.
    if (this.expected !== expectedBefore) t.sink.ctUpdate(t, slot, CtChange.HELPER);
    if (edits.length === 0) return null;
    const out = this.#build(v, edits);
    if (out === null) return null;
    const delta = out.length - (v.ipEnd - v.l3Offset);
    if (delta !== 0) {
      this.seqadj.record(slot, t.id[slot], dir, v.tcpSeq, delta);
      t.addStatus(slot, CtStatus.SEQ_ADJUST);
    }
    const payloadAt = v.payloadOffset - v.l3Offset;
    f.rewrites[dir] = { seq: v.tcpSeq, len: v.payloadLength, payload: out.subarray(payloadAt) };
    return out;
  }

  #build(v: PacketView, edits: PayloadEdit[]): Buffer | null {
    try {
      return replacePayloadRanges(v, edits);
    } catch (e) {
      if (!(e instanceof MangleError)) throw e;
      this.refused[FtpRefusal.REWRITE_FAILED]++;
      return null;
    }
  }

  #line(line: Uint8Array, n: number, lineStart: number, slot: number, dir: number, now: number): void {
    const a = this.#ann;
    const why = parseFtpLine(line, 0, n, dir === 0, a);
    if (why !== FtpRefusal.NONE) {
      this.refused[why]++;
      return;
    }
    if (a.kind === FtpKind.NONE) return;
    const t = this.table;
    const w = t.tuples;
    const own = t.tupleOffset(slot, dir);
    const other = t.tupleOffset(slot, dir ^ 1);
    const family = w[own + TW_PROTO] >>> 8;
    if (a.kind !== FtpKind.EPSV) {
      if (a.family !== family) {
        this.refused[FtpRefusal.FAMILY]++;
        return;
      }
      if (a.addr[0] !== w[own] || a.addr[1] !== w[own + 1] || a.addr[2] !== w[own + 2] || a.addr[3] !== w[own + 3]) {
        this.refused[FtpRefusal.NOT_SENDER]++;
        return;
      }
    }
    // NAT (IPv4): the other end knows the announcer as tuple[!dir]'s destination.
    const outside = w[other + 4];
    const natted = family === 4 && outside !== w[own];
    const proto = w[own + TW_PROTO];
    let port = a.port;
    if (natted) {
      if (lineStart < 0) {
        this.refused[FtpRefusal.SPLIT_REWRITE]++;
        return;
      }
      port = this.#freePort(outside, other, a.port, proto, now);
      if (port < 0) {
        this.refused[FtpRefusal.NAT_PORT]++;
        return;
      }
    }
    const spec = { masterSlot: slot, masterId: t.id[slot], timeoutMs: FTP_EXPECT_TIMEOUT_MS, dir: dir ^ 1, savedPort: natted ? a.port : -1 };
    if (this.expectations.expectPort(spec, w, other, port, proto, now) < 0) {
      this.refused[FtpRefusal.EXPECT_LIMIT]++;
      return;
    }
    this.expected++;
    if (!natted) return;
    const text = a.kind === FtpKind.EPSV
      ? String(port)
      : a.kind === FtpKind.EPRT
        ? `${formatAddress(4, [outside, 0, 0, 0])}|${port}`
        : `${outside >>> 24},${(outside >>> 16) & 255},${(outside >>> 8) & 255},${outside & 255},${port >>> 8},${port & 255}`;
    const bytes = Buffer.from(text, 'latin1');
    // (EPSV names only a port: when that port is free on the outside address, nothing changes.)
    if (bytes.equals(line.subarray(a.textStart, a.textEnd))) return;
    this.#edits.push({ start: lineStart + a.textStart, end: lineStart + a.textEnd, text: bytes });
    this.rewritten++;
  }

  /**
   * A port on the outside address for the expected connection: `want` when no connection holds it
   * and no other expectation waits on it, else the next such port (1024-65535) within
   * FREE_PORT_TRIES, -1 when none: each try scans the expectations, so the search is bounded (a
   * client announcing thousands of ports must not stall the engine).
   */
  #freePort(address: number, other: number, want: number, proto: number, now: number): number {
    const pool = this.ports.pool(address, Proto.TCP);
    const w = this.table.tuples;
    let p = want;
    for (let i = 0; i < FREE_PORT_TRIES; i++) {
      if (pool.isFree(p) && !this.expectations.hasPort(w, other, p, proto, now)) return p;
      p = p >= 65535 ? 1024 : p + 1;
    }
    return -1;
  }

  /** Forget the state of control connections that ended (their slot is free or reused). */
  sweep(): void {
    const ids = this.table.id;
    for (const [slot, f] of this.#flows) if (ids[slot] !== f.entryId) this.#flows.delete(slot);
  }
}

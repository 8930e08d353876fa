/**
 * The FTP helper (Linux's nf_conntrack_ftp): reads the control connection's lines in order, both
 * ways, and for each announced data connection (PORT / EPRT from the client, 227 / 229 from the
 * server) expects it, so its first packet is RELATED to the control entry:
 *
 *   announced by dir d (address A, port P)  ->  expected: from the other end's address (tuple[!d]
 *   source, any port) to tuple[!d]'s destination, port P; as Linux, in the reverse direction's
 *   tuple, which is what the data connection's first packet looks like here.
 *
 * An announcement is refused (counted by reason, no expectation) when it does not parse, names a
 * port below 1024 or above 65535, or an address that is not the sender's own on the control
 * connection (Linux's default, not `loose`: a client cannot open a hole towards a third host),
 * or a family other than the control connection's.
 */
import type { PacketFields } from '../../packet/fields.js';
import type { ConntrackTable } from '../table.js';
import { ExpectationLimitError, type ExpectationTable } from '../expect.js';
import { TUPLE_WORDS, TW_PORTS, TW_PROTO } from '../tuple.js';
import { FtpAnnouncement, FtpKind, FtpRefusal, ftpRefusalNames, parseFtpLine } from './ftp-parse.js';
import { LineEvent, LineStream } from './line-stream.js';

/** How long an announced data connection is expected (Linux's FTP expect policy: 5 minutes). */
export const FTP_EXPECT_TIMEOUT_MS = 5 * 60_000;

interface FtpFlow {
  /** The entry's id when this state was made (a reused slot is another connection). */
  entryId: number;
  streams: [LineStream, LineStream];
}

export class FtpHelper {
  readonly #flows = new Map<number, FtpFlow>();
  readonly #ann = new FtpAnnouncement();
  readonly #tuple = new Uint32Array(TUPLE_WORDS);
  readonly #mask = new Uint32Array(TUPLE_WORDS);
  /** Announcements refused, by FtpRefusal. */
  readonly refused = new Float64Array(ftpRefusalNames.length);
  /** Data connections expected. */
  expected = 0;
  /** Lines read. */
  lines = 0;

  constructor(readonly table: ConntrackTable, readonly expectations: ExpectationTable) {}

  /** Control connections with helper state. */
  get flows(): number {
    return this.#flows.size;
  }

  /** A TCP segment with payload of an FTP control entry, accepted, in direction `dir`. */
  packet(pkt: PacketFields & { buffer: Uint8Array }, slot: number, dir: number, now: number): void {
    const t = this.table;
    let f = this.#flows.get(slot);
    if (f === undefined || f.entryId !== t.id[slot]) {
      f = { entryId: t.id[slot], streams: [new LineStream(), new LineStream()] };
      this.#flows.set(slot, f);
    }
    const s = f.streams[dir];
    s.begin(pkt.tcpSeq, pkt.buffer, pkt.payloadOffset, pkt.payloadLength);
    if (s.event === LineEvent.GAP) this.refused[FtpRefusal.STREAM_GAP]++;
    for (;;) {
      const n = s.readLine();
      if (s.event === LineEvent.OVERLONG) this.refused[FtpRefusal.OVERLONG]++;
      if (n < 0) break;
      this.lines++;
      this.#line(s.line, n, slot, dir, now);
    }
  }

  #line(line: Uint8Array, n: number, slot: number, dir: number, now: number): void {
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
    const e = this.#tuple;
    const m = this.#mask;
    for (let i = 0; i < 8; i++) {
      e[i] = w[other + i];
      m[i] = 0xffffffff;
    }
    e[TW_PORTS] = a.port;
    m[TW_PORTS] = 0xffff;
    e[TW_PROTO] = w[own + TW_PROTO];
    m[TW_PROTO] = 0xffffffff;
    try {
      this.expectations.add({ masterSlot: slot, masterId: t.id[slot], tuple: e, mask: m, timeoutMs: FTP_EXPECT_TIMEOUT_MS }, now);
      this.expected++;
    } catch (err) {
      if (!(err instanceof ExpectationLimitError)) throw err;
      this.refused[FtpRefusal.EXPECT_LIMIT]++;
    }
  }

  /** Forget the state of control connections that ended (their slot is free or reused). */
  sweep(): void {
    const ids = this.table.id;
    for (const [slot, f] of this.#flows) if (ids[slot] !== f.entryId) this.#flows.delete(slot);
  }
}

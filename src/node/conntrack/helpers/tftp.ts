/**
 * The TFTP helper (Linux's nf_conntrack_tftp): a read or write request (RRQ, WRQ: RFC 1350
 * opcodes 1 and 2) from the client to the server's port opens a transfer that the server answers
 * from a port of its own (its transfer id), so the request's entry expects that reply: from the
 * server's address, any port, to the client's address and port (as the reply direction's tuple
 * has them, so after NAT too). Other opcodes announce nothing; a datagram too short for an
 * opcode is counted.
 */
import type { PacketFields } from '../../packet/fields.js';
import type { ConntrackTable } from '../table.js';
import { CtChange } from '../events.js';
import type { ExpectationTable } from '../expect.js';
import { TW_PORTS, TW_PROTO } from '../tuple.js';

/** How long the reply is expected (Linux's TFTP expect policy: 5 minutes). */
export const TFTP_EXPECT_TIMEOUT_MS = 5 * 60_000;
const RRQ = 1;
const WRQ = 2;

export class TftpHelper {
  /** Replies expected. */
  expected = 0;
  /** Datagrams to the server's port too short to hold an opcode. */
  truncated = 0;
  /** Requests for which the expectation table had no room. */
  expectLimit = 0;

  constructor(readonly table: ConntrackTable, readonly expectations: ExpectationTable) {}

  /** A UDP datagram with payload of a TFTP entry, accepted, in direction `dir`. */
  packet(pkt: PacketFields & { buffer: Uint8Array }, slot: number, dir: number, now: number): void {
    if (dir !== 0) return;
    if (pkt.payloadLength < 2) {
      this.truncated++;
      return;
    }
    const b = pkt.buffer;
    const p = pkt.payloadOffset;
    const op = (b[p] << 8) | b[p + 1];
    if (op !== RRQ && op !== WRQ) return;
    const t = this.table;
    const reply = t.tupleOffset(slot, 1);
    // From the server (any port: its new transfer id) to the client's port, as the reply tuple has them.
    const w = t.tuples;
    const spec = { masterSlot: slot, masterId: t.id[slot], timeoutMs: TFTP_EXPECT_TIMEOUT_MS };
    if (this.expectations.expectPort(spec, w, reply, w[reply + TW_PORTS] & 0xffff, w[reply + TW_PROTO], now) < 0) {
      this.expectLimit++;
      return;
    }
    this.expected++;
    t.sink.ctUpdate(t, slot, CtChange.HELPER);
  }
}

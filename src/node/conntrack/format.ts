/**
 * Entries rendered the way `conntrack -L` prints them, so operators read what they know:
 *   tcp      6 431999 ESTABLISHED src=10.1.0.5 dst=10.2.0.9 sport=40000 dport=80 packets=3 bytes=180
 *   src=10.2.0.9 dst=10.1.0.5 sport=80 dport=40000 packets=2 bytes=120 [ASSURED] mark=0 use=1
 * and as plain objects for `-o json`. Not on the packet path: allocates freely.
 */
import { Proto } from '../packet/fields.js';
import { TcpState, tcpStateNames } from './state.js';
import { CtStatus, type ConntrackTable } from './table.js';
import { TUPLE_WORDS, formatTuple, protoName, readTuple, type TupleInfo } from './tuple.js';

export interface EntryInfo {
  id: number;
  proto: string;
  protonum: number;
  /** Seconds left before expiry. */
  timeout: number;
  /** TCP state name, when TCP. */
  tcpState?: string;
  original: TupleInfo & { packets: number; bytes: number };
  reply: TupleInfo & { packets: number; bytes: number };
  flags: string[];
  mark: number;
  label: number;
  /** Age in seconds. */
  age: number;
}

export function entryFlags(status: number): string[] {
  const f: string[] = [];
  if ((status & CtStatus.SEEN_REPLY) === 0) f.push('UNREPLIED');
  if ((status & CtStatus.ASSURED) !== 0) f.push('ASSURED');
  if ((status & CtStatus.SRC_NAT) !== 0) f.push('SNAT');
  if ((status & CtStatus.DST_NAT) !== 0) f.push('DNAT');
  if ((status & CtStatus.EXPECTED) !== 0) f.push('EXPECTED');
  if ((status & CtStatus.REPLICATED) !== 0) f.push('REPLICATED');
  return f;
}

export function entryInfo(t: ConntrackTable, slot: number, now: number): EntryInfo {
  const off = t.tupleOffset(slot, 0);
  const orig = readTuple(t.tuples, off);
  const reply = readTuple(t.tuples, off + TUPLE_WORDS);
  const info: EntryInfo = {
    id: t.id[slot],
    proto: protoName(orig.proto),
    protonum: orig.proto,
    timeout: Math.max(0, Math.round((t.deadlineOf(slot) - now) / 1000)),
    original: { ...orig, packets: t.packetsOf(slot, 0), bytes: t.bytesOf(slot, 0) },
    reply: { ...reply, packets: t.packetsOf(slot, 1), bytes: t.bytesOf(slot, 1) },
    flags: entryFlags(t.statusOf(slot)),
    mark: t.markOf(slot),
    label: t.label[slot],
    age: Math.max(0, Math.round((now - t.start[slot]) / 1000)),
  };
  if (orig.proto === Proto.TCP) info.tcpState = tcpStateNames[t.tcp.stateOf(slot)] ?? String(t.tcp.stateOf(slot));
  return info;
}

/** One `conntrack -L` line. */
export function formatEntry(t: ConntrackTable, slot: number, now: number): string {
  const off = t.tupleOffset(slot, 0);
  const proto = t.tuples[off + 9] & 0xff;
  const family = t.tuples[off + 9] >>> 8;
  const timeout = Math.max(0, Math.round((t.deadlineOf(slot) - now) / 1000));
  const st = t.statusOf(slot);
  const parts = [protoName(proto).padEnd(8), String(proto).padEnd(2), String(timeout)];
  if (proto === Proto.TCP) parts.push(tcpStateNames[t.tcp.stateOf(slot)] ?? String(TcpState.NONE));
  parts.push(formatTuple(t.tuples, off), `packets=${t.packetsOf(slot, 0)}`, `bytes=${t.bytesOf(slot, 0)}`);
  if ((st & CtStatus.SEEN_REPLY) === 0) parts.push('[UNREPLIED]');
  parts.push(formatTuple(t.tuples, off + TUPLE_WORDS), `packets=${t.packetsOf(slot, 1)}`, `bytes=${t.bytesOf(slot, 1)}`);
  if ((st & CtStatus.ASSURED) !== 0) parts.push('[ASSURED]');
  if ((st & CtStatus.REPLICATED) !== 0) parts.push('[REPLICATED]');
  parts.push(`mark=${t.markOf(slot)}`);
  if (family === 6) parts.unshift('ipv6    ');
  return parts.join(' ');
}

/**
 * LOG target records and the TRACE events. Built only when a LOG fires (past its rate limit) or a
 * traced packet passes a rule: the only allocations on the packet path, and only then.
 */
import { formatAddress } from '../packet/address.js';
import { Proto, type PacketFields } from '../packet/fields.js';
import { ctStateNames } from '../conntrack/state.js';
import type { PacketMeta } from './verdict.js';

/** One LOG line, structured (what the kernel's nf_log prints as text, as fields). */
export interface LogRecord {
  /** Milliseconds since the epoch (PacketMeta.now). */
  time: number;
  /** Syslog level name (LOG --log-level; warning by default, as iptables). */
  level: string;
  prefix: string;
  chain: string;
  /** Index of the LOG rule within its chain. */
  rule: number;
  comment: string | undefined;
  family: number;
  /** Protocol name (tcp, udp, icmp, icmpv6) or number as text. */
  proto: string;
  src: string;
  dst: string;
  /** TCP/UDP ports (0 otherwise). */
  sport: number;
  dport: number;
  /** ICMP type/code (-1 otherwise). */
  icmpType: number;
  icmpCode: number;
  tcpFlags: number;
  length: number;
  inIf: number;
  outIf: number;
  mark: number;
  /** Conntrack state name, or undefined in the raw chain (before conntrack). */
  ctstate: string | undefined;
  /** LOG records of this rule dropped by its rate limit since the previous record. */
  suppressed: number;
}

/** Where LOG records go (the daemon hands them to pino; tests collect them). */
export interface LogSink {
  log(record: LogRecord): void;
}

/** One step of a traced packet's walk (as the kernel's TRACE target / nft monitor trace). */
export interface TraceEvent {
  /** Sequence number of the traced packet, so interleaved traces can be told apart. */
  id: number;
  /** 'packet' opens a trace, 'rule' per rule passed, 'return' off a user chain's end, 'verdict' ends it. */
  kind: 'packet' | 'rule' | 'return' | 'verdict';
  hook: 'raw' | 'forward';
  chain: string;
  /** Rule index in the chain; -1 for the policy. */
  rule: number;
  matched: boolean;
  /** Target taken when matched (ACCEPT, JUMP web_in, LOG, ...) or the policy's verdict. */
  target: string;
  /** Final verdict name on 'verdict' events. */
  verdict?: string;
  /** Packet summary on 'packet' events. */
  packet?: string;
}

export interface TraceSink {
  trace(event: TraceEvent): void;
}

export function protoName(p: number): string {
  switch (p) {
    case Proto.TCP: return 'tcp';
    case Proto.UDP: return 'udp';
    case Proto.ICMP: return 'icmp';
    case Proto.ICMPV6: return 'icmpv6';
    default: return String(p);
  }
}

const hasPorts = (p: number): boolean => p === Proto.TCP || p === Proto.UDP || p === 132 || p === 136;
const isIcmp = (p: number): boolean => p === Proto.ICMP || p === Proto.ICMPV6;

export function buildLogRecord(
  pkt: PacketFields, meta: PacketMeta, mark: number, ctState: number, level: string, prefix: string,
  chain: string, rule: number, comment: string | undefined, suppressed: number,
): LogRecord {
  const ports = hasPorts(pkt.proto) && !pkt.isLaterFragment;
  const icmp = isIcmp(pkt.proto) && !pkt.isLaterFragment;
  return {
    time: meta.now, level, prefix, chain, rule, comment,
    family: pkt.family, proto: protoName(pkt.proto),
    src: formatAddress(pkt.family, pkt.src), dst: formatAddress(pkt.family, pkt.dst),
    sport: ports ? pkt.sport : 0, dport: ports ? pkt.dport : 0,
    icmpType: icmp ? pkt.icmpType : -1, icmpCode: icmp ? pkt.icmpCode : -1,
    tcpFlags: pkt.proto === Proto.TCP ? pkt.tcpFlags : 0,
    length: pkt.ipLength, inIf: meta.inIf, outIf: meta.outIf, mark,
    ctstate: ctState >= 0 ? ctStateNames[ctState] : undefined,
    suppressed,
  };
}

/** "tcp 10.1.0.5:40000 -> 10.2.0.1:80 in=3 out=4 len=60", for trace 'packet' events. */
export function summarize(pkt: PacketFields, meta: PacketMeta): string {
  const src = formatAddress(pkt.family, pkt.src);
  const dst = formatAddress(pkt.family, pkt.dst);
  const v6 = pkt.family === 6;
  const ep = (a: string, port: number): string => (hasPorts(pkt.proto) ? (v6 ? `[${a}]:${port}` : `${a}:${port}`) : a);
  const extra = isIcmp(pkt.proto) ? ` type=${pkt.icmpType} code=${pkt.icmpCode}` : '';
  return `${protoName(pkt.proto)} ${ep(src, pkt.sport)} -> ${ep(dst, pkt.dport)}${extra} in=${meta.inIf} out=${meta.outIf} len=${pkt.ipLength}`;
}

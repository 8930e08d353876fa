/** Test helpers: plain PacketFields objects and a ruleset-from-YAML shortcut. */
import { parseAddress } from '../../../src/node/packet/address.js';
import { Proto, type PacketFields } from '../../../src/node/packet/fields.js';
import { CtState } from '../../../src/node/conntrack/state.js';
import {
  compileRuleset, Filter, FilterResult, parseRuleset, type CompileOptions, type FilterOptions,
} from '../../../src/node/filter/index.js';

export interface PktSpec {
  src?: string;
  dst?: string;
  proto?: 'tcp' | 'udp' | 'icmp' | 'icmpv6' | number;
  sport?: number;
  dport?: number;
  flags?: number;
  icmpType?: number;
  icmpCode?: number;
  length?: number;
  laterFragment?: boolean;
}

const protoNum = (p: PktSpec['proto']): number =>
  typeof p === 'number' ? p : p === 'udp' ? Proto.UDP : p === 'icmp' ? Proto.ICMP : p === 'icmpv6' ? Proto.ICMPV6 : Proto.TCP;

export function pkt(s: PktSpec = {}): PacketFields {
  const src = parseAddress(s.src ?? '10.1.0.5');
  const dst = parseAddress(s.dst ?? '10.2.0.1');
  return {
    invalid: 0, family: src.family, captureLength: s.length ?? 60, ipLength: s.length ?? 60, l4Offset: 20,
    proto: protoNum(s.proto), src: src.words, dst: dst.words, ttl: 64,
    isFragment: s.laterFragment ?? false, isLaterFragment: s.laterFragment ?? false,
    sport: s.sport ?? 40000, dport: s.dport ?? 80, tcpFlags: s.flags ?? 0x02, tcpSeq: 0, tcpAck: 0, tcpWindow: 0,
    tcpHeaderLength: 20, tcpMss: 0, tcpWscale: -1, tcpSackPermitted: false, tcpHasTimestamp: false, tcpTsVal: 0,
    tcpTsEcr: 0, payloadLength: 0, payloadOffset: 40, icmpType: s.icmpType ?? 0, icmpCode: s.icmpCode ?? 0,
    icmpId: 0, icmpSeq: 0, isIcmpError: false,
  };
}

export const meta = (o: Partial<{ inIf: number; outIf: number; mark: number; now: number }> = {}) => ({
  inIf: 1, outIf: 2, mark: 0, now: 1_700_000_000_000, ...o,
});

/** Interfaces 1 = eth0, 2 = eth1, 3 = wan0, 4 = wan1. */
export const ifnames = (i: number): string | undefined => ['', 'eth0', 'eth1', 'wan0', 'wan1'][i] || undefined;

export function filterOf(yaml: string, c: CompileOptions = {}, f: FilterOptions = {}): Filter {
  return new Filter(compileRuleset(parseRuleset(yaml), { interfaceName: ifnames, ...c }), f);
}

/** A filter whose forward chain is `rules` (YAML flow list items) with policy drop. */
export function forwardOf(rules: string[], extra = '', c: CompileOptions = {}, f: FilterOptions = {}): Filter {
  const yaml = `${extra}\nchains:\n  forward:\n    policy: drop\n    rules:\n${rules.map((r) => `      - ${r}`).join('\n')}\n`;
  return filterOf(yaml, c, f);
}

export const out = new FilterResult();

/** Verdict of the forward chain for `p` (NEW by default). */
export function fwd(f: Filter, p: PacketFields, o: { state?: number; connmark?: number; m?: ReturnType<typeof meta> } = {}): number {
  return f.evalForward(p, o.m ?? meta(), { state: o.state ?? CtState.NEW, connmark: o.connmark ?? 0 }, out);
}

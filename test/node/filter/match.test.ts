import { describe, expect, it } from 'vitest';
import { CtState } from '../../../src/node/conntrack/state.js';
import { TcpFlag } from '../../../src/node/packet/fields.js';
import { Verdict } from '../../../src/node/filter/index.js';
import { forwardOf, fwd, meta, out, pkt } from './helpers.js';

const { ACCEPT, DROP } = Verdict;

/** Verdict for one rule `{match: <m>, target: ACCEPT}` under policy drop. */
function accepts(m: string, p = pkt(), o: Parameters<typeof fwd>[2] = {}, extra = ''): boolean {
  return fwd(forwardOf([`{ match: ${m}, target: ACCEPT }`], extra), p, o) === ACCEPT;
}

describe('ct state', () => {
  it('accepts listed states only', () => {
    const f = forwardOf(['{ match: { ctstate: [ESTABLISHED, RELATED] }, target: ACCEPT }']);
    expect(fwd(f, pkt(), { state: CtState.ESTABLISHED })).toBe(ACCEPT);
    expect(fwd(f, pkt(), { state: CtState.RELATED })).toBe(ACCEPT);
    expect(fwd(f, pkt(), { state: CtState.NEW })).toBe(DROP);
    expect(fwd(f, pkt(), { state: CtState.INVALID })).toBe(DROP);
  });
  it('takes a comma string and negation', () => {
    expect(accepts('{ ctstate: "NEW,UNTRACKED" }', pkt(), { state: CtState.UNTRACKED })).toBe(true);
    expect(accepts('{ not: { ctstate: INVALID } }', pkt(), { state: CtState.NEW })).toBe(true);
    expect(accepts('{ not: { ctstate: INVALID } }', pkt(), { state: CtState.INVALID })).toBe(false);
  });
});

describe('addresses', () => {
  it('matches IPv4 CIDRs and hosts', () => {
    expect(accepts('{ src: 10.1.0.0/16 }', pkt({ src: '10.1.200.3' }))).toBe(true);
    expect(accepts('{ src: 10.1.0.0/16 }', pkt({ src: '10.2.0.3' }))).toBe(false);
    expect(accepts('{ dst: 10.2.0.1 }', pkt({ dst: '10.2.0.1' }))).toBe(true);
    expect(accepts('{ dst: 10.2.0.1 }', pkt({ dst: '10.2.0.2' }))).toBe(false);
    expect(accepts('{ src: 0.0.0.0/0 }', pkt({ src: '203.0.113.9' }))).toBe(true);
  });
  it('matches IPv6 CIDRs in every word, and never the other family', () => {
    expect(accepts('{ src: "2001:db8::/32" }', pkt({ src: '2001:db8:1::5', dst: '2001:db8:2::1' }))).toBe(true);
    expect(accepts('{ src: "2001:db8::/32" }', pkt({ src: '2001:db9::5', dst: '2001:db8:2::1' }))).toBe(false);
    expect(accepts('{ dst: "fd00::1:0/112" }', pkt({ src: 'fd00::9', dst: 'fd00::1:ffff' }))).toBe(true);
    expect(accepts('{ dst: "fd00::1:0/112" }', pkt({ src: 'fd00::9', dst: 'fd00::2:1' }))).toBe(false);
    // An IPv4 rule does not match an IPv6 packet, even negated (as iptables vs ip6tables).
    expect(accepts('{ not: { src: 10.0.0.0/8 } }', pkt({ src: 'fd00::1', dst: 'fd00::2' }))).toBe(false);
    expect(accepts('{ not: { src: 10.0.0.0/8 } }', pkt({ src: '192.0.2.1' }))).toBe(true);
    expect(accepts('{ src: 0.0.0.0/0 }', pkt({ src: 'fd00::1', dst: 'fd00::2' }))).toBe(false);
  });
  it('takes a list of mixed-family CIDRs', () => {
    const m = '{ src: [10.9.0.0/16, "fd00:9::/32", 192.0.2.7] }';
    expect(accepts(m, pkt({ src: '10.9.3.4' }))).toBe(true);
    expect(accepts(m, pkt({ src: '192.0.2.7' }))).toBe(true);
    expect(accepts(m, pkt({ src: '192.0.2.8' }))).toBe(false);
    expect(accepts(m, pkt({ src: 'fd00:9:1::1', dst: 'fd00::1' }))).toBe(true);
  });
});

describe('protocol and ports', () => {
  it('matches protocol names, numbers and negation', () => {
    expect(accepts('{ proto: udp }', pkt({ proto: 'udp' }))).toBe(true);
    expect(accepts('{ proto: udp }', pkt({ proto: 'tcp' }))).toBe(false);
    expect(accepts('{ proto: 47 }', pkt({ proto: 47 }))).toBe(true);
    expect(accepts('{ not: { proto: tcp } }', pkt({ proto: 'udp' }))).toBe(true);
    expect(accepts('{ not: { proto: tcp } }', pkt({ proto: 'tcp' }))).toBe(false);
  });
  it('matches a port, a range and a list', () => {
    expect(accepts('{ proto: tcp, dport: 443 }', pkt({ dport: 443 }))).toBe(true);
    expect(accepts('{ proto: tcp, dport: 443 }', pkt({ dport: 444 }))).toBe(false);
    expect(accepts('{ proto: tcp, dport: "1000-2000" }', pkt({ dport: 1000 }))).toBe(true);
    expect(accepts('{ proto: tcp, dport: "1000:2000" }', pkt({ dport: 2000 }))).toBe(true);
    expect(accepts('{ proto: tcp, dport: "1000-2000" }', pkt({ dport: 2001 }))).toBe(false);
    expect(accepts('{ proto: udp, sport: [53, "5000-5001"] }', pkt({ proto: 'udp', sport: 5001 }))).toBe(true);
    expect(accepts('{ proto: udp, sport: [53, "5000-5001"] }', pkt({ proto: 'udp', sport: 54 }))).toBe(false);
    expect(accepts('{ proto: tcp, not: { dport: [22, 23] } }', pkt({ dport: 80 }))).toBe(true);
    expect(accepts('{ proto: tcp, not: { dport: [22, 23] } }', pkt({ dport: 22 }))).toBe(false);
  });
  it('never matches a later fragment on ports, even negated (xt_tcpudp)', () => {
    expect(accepts('{ proto: tcp, dport: 80 }', pkt({ dport: 80, laterFragment: true }))).toBe(false);
    expect(accepts('{ proto: tcp, not: { dport: 80 } }', pkt({ dport: 0, laterFragment: true }))).toBe(false);
  });
});

describe('TCP flags', () => {
  const { SYN, ACK, RST, FIN } = TcpFlag;
  it('matches --tcp-flags mask/comp and --syn', () => {
    const m = '{ proto: tcp, tcpFlags: "SYN,RST,ACK,FIN SYN" }';
    expect(accepts(m, pkt({ flags: SYN }))).toBe(true);
    expect(accepts(m, pkt({ flags: SYN | ACK }))).toBe(false);
    expect(accepts('{ proto: tcp, syn: true }', pkt({ flags: SYN }))).toBe(true);
    expect(accepts('{ proto: tcp, syn: true }', pkt({ flags: SYN | RST }))).toBe(false);
    expect(accepts('{ proto: tcp, not: { syn: true } }', pkt({ flags: ACK }))).toBe(true);
    expect(accepts('{ proto: tcp, syn: false }', pkt({ flags: ACK | FIN }))).toBe(true);
    expect(accepts('{ proto: tcp, tcpFlags: "ALL NONE" }', pkt({ flags: 0 }))).toBe(true);
  });
});

describe('ICMP', () => {
  it('matches type names, numbers and type/code for v4 and v6', () => {
    expect(accepts('{ proto: icmp, icmpType: echo-request }', pkt({ proto: 'icmp', icmpType: 8 }))).toBe(true);
    expect(accepts('{ proto: icmp, icmpType: echo-request }', pkt({ proto: 'icmp', icmpType: 0 }))).toBe(false);
    expect(accepts('{ proto: icmp, icmpType: "3/3" }', pkt({ proto: 'icmp', icmpType: 3, icmpCode: 3 }))).toBe(true);
    expect(accepts('{ proto: icmp, icmpType: port-unreachable }', pkt({ proto: 'icmp', icmpType: 3, icmpCode: 1 }))).toBe(false);
    expect(accepts('{ proto: icmp, icmpType: 3 }', pkt({ proto: 'icmp', icmpType: 3, icmpCode: 1 }))).toBe(true);
    const v6 = { proto: 'icmpv6' as const, src: 'fd00::1', dst: 'fd00::2' };
    expect(accepts('{ proto: icmpv6, icmpType: echo-request }', pkt({ ...v6, icmpType: 128 }))).toBe(true);
    expect(accepts('{ proto: icmpv6, icmpType: packet-too-big }', pkt({ ...v6, icmpType: 2 }))).toBe(true);
    expect(accepts('{ proto: icmpv6, not: { icmpType: echo-request } }', pkt({ ...v6, icmpType: 129 }))).toBe(true);
  });
});

describe('interfaces', () => {
  it('resolves ifindexes to names once, with eth+ wildcards and lists', () => {
    expect(accepts('{ in: eth0 }', pkt(), { m: meta({ inIf: 1 }) })).toBe(true);
    expect(accepts('{ in: eth0 }', pkt(), { m: meta({ inIf: 2 }) })).toBe(false);
    expect(accepts('{ in: "eth+" }', pkt(), { m: meta({ inIf: 2 }) })).toBe(true);
    expect(accepts('{ out: [wan0, wan1] }', pkt(), { m: meta({ outIf: 4 }) })).toBe(true);
    expect(accepts('{ not: { out: "wan+" } }', pkt(), { m: meta({ outIf: 3 }) })).toBe(false);
    expect(accepts('{ in: eth0 }', pkt(), { m: meta({ inIf: 99 }) })).toBe(false);
  });
  it('caches per ruleset and retries unknown ifindexes after a second', () => {
    let calls = 0;
    const names = new Map([[1, 'eth0']]);
    const f = forwardOf(['{ match: { in: eth7 }, target: ACCEPT }'], '', {
      interfaceName: (i) => {
        calls++;
        return names.get(i);
      },
    });
    const t0 = 1_000_000;
    expect(fwd(f, pkt(), { m: meta({ inIf: 1, now: t0 }) })).toBe(DROP);
    expect(fwd(f, pkt(), { m: meta({ inIf: 1, now: t0 + 1 }) })).toBe(DROP);
    expect(calls).toBe(1);
    expect(fwd(f, pkt(), { m: meta({ inIf: 7, now: t0 }) })).toBe(DROP);
    names.set(7, 'eth7');
    expect(fwd(f, pkt(), { m: meta({ inIf: 7, now: t0 + 10 }) })).toBe(DROP); // still cached as unknown
    expect(fwd(f, pkt(), { m: meta({ inIf: 7, now: t0 + 1500 }) })).toBe(ACCEPT);
    names.set(1, 'eth7'); // renamed: seen after invalidateInterfaces()
    f.invalidateInterfaces();
    expect(fwd(f, pkt(), { m: meta({ inIf: 1, now: t0 + 2000 }) })).toBe(ACCEPT);
  });
});

describe('marks, length', () => {
  it('matches mark and connmark with masks', () => {
    expect(accepts('{ mark: "0x10/0xf0" }', pkt(), { m: meta({ mark: 0x1f }) })).toBe(true);
    expect(accepts('{ mark: "0x10/0xf0" }', pkt(), { m: meta({ mark: 0x2f }) })).toBe(false);
    expect(accepts('{ mark: 7 }', pkt(), { m: meta({ mark: 7 }) })).toBe(true);
    expect(accepts('{ connmark: "0x1/0x1" }', pkt(), { connmark: 3 })).toBe(true);
    expect(accepts('{ not: { connmark: "0x1/0x1" } }', pkt(), { connmark: 3 })).toBe(false);
    expect(accepts('{ mark: 0xffffffff }', pkt(), { m: meta({ mark: 0xffffffff }) })).toBe(true);
  });
  it('matches the IP total length range', () => {
    expect(accepts('{ length: "0-100" }', pkt({ length: 100 }))).toBe(true);
    expect(accepts('{ length: "0-100" }', pkt({ length: 101 }))).toBe(false);
    expect(accepts('{ not: { length: 1500 } }', pkt({ length: 1400 }))).toBe(true);
  });
});

describe('all matches must hold', () => {
  it('is a conjunction', () => {
    const m = '{ ctstate: NEW, proto: tcp, src: 10.1.0.0/16, dst: 10.2.0.0/16, dport: [80, 443], in: eth0 }';
    expect(accepts(m, pkt({ dport: 443 }))).toBe(true);
    expect(accepts(m, pkt({ dport: 443, src: '10.3.0.1' }))).toBe(false);
    expect(accepts(m, pkt({ dport: 443 }), { state: CtState.ESTABLISHED })).toBe(false);
    expect(out.verdict).toBe(DROP);
  });
});

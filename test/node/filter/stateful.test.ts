import { describe, expect, it } from 'vitest';
import { CtState } from '../../../src/node/conntrack/state.js';
import { Verdict } from '../../../src/node/filter/index.js';
import { forwardOf, fwd, meta, pkt } from './helpers.js';

const { ACCEPT, DROP } = Verdict;
const T0 = 1_700_000_000_000;
const at = (ms: number) => ({ m: meta({ now: T0 + ms }) });

describe('sets', () => {
  const sets = `sets:
  admins: { type: ip, elements: [10.0.0.1, "2001:db8::1"] }
  lan: { type: net, elements: [10.0.0.0/8, 192.168.1.0/24, 172.16.5.5, "fd00::/8"] }
  web: { type: ip+port, elements: ["192.0.2.10,tcp:80", "192.0.2.10,443", "192.0.2.11,udp:53", "192.0.2.12,tcp:8000-8002"] }`;
  it('ip sets match exact addresses of both families', () => {
    const f = forwardOf(['{ match: { src: "@admins" }, target: ACCEPT }'], sets);
    expect(fwd(f, pkt({ src: '10.0.0.1' }))).toBe(ACCEPT);
    expect(fwd(f, pkt({ src: '10.0.0.2' }))).toBe(DROP);
    expect(fwd(f, pkt({ src: '2001:db8::1', dst: '2001:db8::2' }))).toBe(ACCEPT);
    expect(fwd(f, pkt({ src: '2001:db8::2', dst: '2001:db8::2' }))).toBe(DROP);
  });
  it('net sets match any prefix they hold, negated too', () => {
    const f = forwardOf(['{ match: { not: { dst: "@lan" } }, target: ACCEPT }'], sets);
    expect(fwd(f, pkt({ dst: '10.200.1.1' }))).toBe(DROP);
    expect(fwd(f, pkt({ dst: '192.168.1.77' }))).toBe(DROP);
    expect(fwd(f, pkt({ dst: '172.16.5.5' }))).toBe(DROP);
    expect(fwd(f, pkt({ dst: '172.16.5.6' }))).toBe(ACCEPT);
    expect(fwd(f, pkt({ src: 'fd00::1', dst: 'fd12::1' }))).toBe(DROP);
    expect(fwd(f, pkt({ src: 'fd00::1', dst: '2001:db8::1' }))).toBe(ACCEPT);
  });
  it('ip+port sets match address and protocol/port of the chosen sides', () => {
    const f = forwardOf(
      ['{ match: { proto: tcp, set: { name: web, flags: [dst, dst] } }, target: ACCEPT }',
        '{ match: { proto: udp, set: { name: web, flags: [dst, dst] } }, target: ACCEPT }'], sets);
    expect(fwd(f, pkt({ dst: '192.0.2.10', dport: 80 }))).toBe(ACCEPT);
    expect(fwd(f, pkt({ dst: '192.0.2.10', dport: 443 }))).toBe(ACCEPT);
    expect(fwd(f, pkt({ dst: '192.0.2.10', dport: 22 }))).toBe(DROP);
    expect(fwd(f, pkt({ dst: '192.0.2.10', dport: 80, proto: 'udp' }))).toBe(DROP);
    expect(fwd(f, pkt({ dst: '192.0.2.11', dport: 53, proto: 'udp' }))).toBe(ACCEPT);
    expect(fwd(f, pkt({ dst: '192.0.2.12', dport: 8001 }))).toBe(ACCEPT);
    expect(fwd(f, pkt({ dst: '192.0.2.12', dport: 8003 }))).toBe(DROP);
    const g = forwardOf(['{ match: { proto: tcp, set: { name: web, flags: [src, src] } }, target: ACCEPT }'], sets);
    expect(fwd(g, pkt({ src: '192.0.2.10', sport: 80, dport: 5000 }))).toBe(ACCEPT);
  });
});

describe('limit', () => {
  it('lets a burst through, then the rate, refilled by the clock', () => {
    const f = forwardOf(['{ match: { limit: { rate: "2/second", burst: 3 } }, target: ACCEPT }']);
    const got = [0, 0, 0, 0].map(() => fwd(f, pkt(), at(0)));
    expect(got).toEqual([ACCEPT, ACCEPT, ACCEPT, DROP]);
    expect(fwd(f, pkt(), at(499))).toBe(DROP);
    expect(fwd(f, pkt(), at(500))).toBe(ACCEPT);
    expect(fwd(f, pkt(), at(600))).toBe(DROP);
    // Ten idle seconds refill to the burst, not beyond.
    const later = [0, 0, 0, 0].map(() => fwd(f, pkt(), at(10_600)));
    expect(later).toEqual([ACCEPT, ACCEPT, ACCEPT, DROP]);
  });
  it('spends tokens only when the rest of the rule matched', () => {
    const f = forwardOf(['{ match: { proto: udp, limit: { rate: "1/hour", burst: 1 } }, target: ACCEPT }']);
    for (let i = 0; i < 5; i++) expect(fwd(f, pkt({ proto: 'tcp' }), at(0))).toBe(DROP);
    expect(fwd(f, pkt({ proto: 'udp' }), at(0))).toBe(ACCEPT);
  });
});

describe('hashlimit', () => {
  it('keeps one bucket per source prefix', () => {
    const f = forwardOf(['{ match: { hashlimit: { rate: "1/second", burst: 2, srcPrefix: 24 } }, target: ACCEPT }']);
    expect([1, 2, 3].map(() => fwd(f, pkt({ src: '10.0.1.1' }), at(0)))).toEqual([ACCEPT, ACCEPT, DROP]);
    expect(fwd(f, pkt({ src: '10.0.1.200' }), at(0))).toBe(DROP); // same /24
    expect(fwd(f, pkt({ src: '10.0.2.1' }), at(0))).toBe(ACCEPT);
    expect(fwd(f, pkt({ src: '10.0.1.1' }), at(1000))).toBe(ACCEPT);
  });
  it('above: matches the sources over their rate', () => {
    const f = forwardOf(['{ match: { hashlimit: { rate: "1/minute", burst: 1, above: true } }, target: DROP }',
      '{ target: ACCEPT }']);
    expect(fwd(f, pkt({ src: '10.0.0.1' }), at(0))).toBe(ACCEPT);
    expect(fwd(f, pkt({ src: '10.0.0.1' }), at(1))).toBe(DROP);
    expect(fwd(f, pkt({ src: '10.0.0.2' }), at(1))).toBe(ACCEPT);
  });
  it('stays bounded under a flood of sources', () => {
    const f = forwardOf(['{ match: { hashlimit: { rate: "1/minute", burst: 1, size: 16 } }, target: ACCEPT }']);
    for (let i = 0; i < 5000; i++) fwd(f, pkt({ src: `10.${(i >> 8) & 255}.${i & 255}.1` }), at(i));
    expect(f.ruleset.hashlimits[0].evictions).toBeGreaterThan(4000);
  });
});

describe('connlimit', () => {
  it('counts the source prefix connections plus the new one', () => {
    const seen: number[] = [];
    const counts = new Map([[0x0a000001, 3], [0x0a000002, 4]]);
    const connCount = {
      countBySource(_family: number, src: Uint32Array, prefix: number) {
        seen.push(prefix);
        return counts.get(src[0]) ?? 0;
      },
    };
    const f = forwardOf(['{ match: { connlimit: { above: 4, srcPrefix: 32 } }, target: DROP }', '{ target: ACCEPT }'],
      '', {}, { connCount });
    expect(fwd(f, pkt({ src: '10.0.0.1' }))).toBe(ACCEPT); // 3 + this one = 4
    expect(fwd(f, pkt({ src: '10.0.0.2' }))).toBe(DROP); // 4 + 1 > 4
    expect(fwd(f, pkt({ src: '10.0.0.2' }), { state: CtState.ESTABLISHED })).toBe(ACCEPT); // already counted
    expect(seen).toEqual([32, 32, 32]);
  });
  it('upto is the complement, and a filter without a count source refuses the ruleset', () => {
    const connCount = { countBySource: () => 1 };
    const f = forwardOf(['{ match: { connlimit: { upto: 2 } }, target: ACCEPT }'], '', {}, { connCount });
    expect(fwd(f, pkt())).toBe(ACCEPT);
    expect(() => forwardOf(['{ match: { connlimit: { upto: 2 } }, target: ACCEPT }'])).toThrow(/connCount/);
  });
});

describe('statistic', () => {
  it('nth: every N-th packet from the configured offset, like xt_statistic', () => {
    const f = forwardOf(['{ match: { statistic: { mode: nth, every: 3 } }, target: ACCEPT }']);
    expect([1, 2, 3, 4, 5, 6].map(() => fwd(f, pkt()))).toEqual([DROP, DROP, ACCEPT, DROP, DROP, ACCEPT]);
    const g = forwardOf(['{ match: { statistic: { mode: nth, every: 3, packet: 2 } }, target: ACCEPT }']);
    expect([1, 2, 3, 4].map(() => fwd(g, pkt()))).toEqual([ACCEPT, DROP, DROP, ACCEPT]);
  });
  it('random: uses the injected RNG', () => {
    const seq = [0.1, 0.5, 0.29, 0.3];
    let i = 0;
    const f = forwardOf(['{ match: { statistic: { mode: random, probability: 0.3 } }, target: ACCEPT }'], '',
      { random: () => seq[i++] });
    expect(seq.map(() => fwd(f, pkt()))).toEqual([ACCEPT, DROP, ACCEPT, DROP]);
  });
});

describe('time of day', () => {
  // 2024-01-01 was a Monday.
  const monday = Date.UTC(2024, 0, 1);
  const when = (day: number, h: number, m = 0) => ({ m: meta({ now: monday + day * 86_400_000 + (h * 60 + m) * 60_000 }) });
  it('matches a UTC window on given weekdays, stop inclusive', () => {
    const f = forwardOf(['{ match: { time: { start: "08:00", stop: "18:00", days: [Mon, Tue, Wed, Thu, Fri] } }, target: ACCEPT }']);
    expect(fwd(f, pkt(), when(0, 8))).toBe(ACCEPT);
    expect(fwd(f, pkt(), when(0, 7, 59))).toBe(DROP);
    expect(fwd(f, pkt(), when(4, 18))).toBe(ACCEPT);
    expect(fwd(f, pkt(), when(4, 18, 1))).toBe(DROP);
    expect(fwd(f, pkt(), when(5, 12))).toBe(DROP); // Saturday
  });
  it('wraps past midnight when start > stop', () => {
    const f = forwardOf(['{ match: { time: { start: "22:00", stop: "06:00" } }, target: ACCEPT }']);
    expect(fwd(f, pkt(), when(2, 23))).toBe(ACCEPT);
    expect(fwd(f, pkt(), when(2, 3))).toBe(ACCEPT);
    expect(fwd(f, pkt(), when(2, 12))).toBe(DROP);
  });
});

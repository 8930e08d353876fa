import { describe, expect, it } from 'vitest';
import { CtState } from '../../../src/node/conntrack/state.js';
import {
  compileRuleset, Filter, FilterResult, parseRuleset, RejectKind, RulesetError, Verdict,
  type LogRecord, type TraceEvent,
} from '../../../src/node/filter/index.js';
import { filterOf, forwardOf, fwd, meta, out, pkt } from './helpers.js';

const { ACCEPT, DROP, REJECT } = Verdict;

const chains = `
chains:
  forward:
    policy: drop
    rules:
      - { match: { proto: tcp, dport: 22 }, target: { jump: ssh } }
      - { match: { proto: udp }, target: { jump: udp_in } }
      - { match: { proto: tcp, dport: 80 }, target: ACCEPT }
  ssh:
    rules:
      - { match: { src: 10.0.0.1 }, target: ACCEPT }
      - { match: { src: 10.0.0.2 }, target: RETURN }
      - { target: { jump: deep } }
      - { target: { reject: tcp-reset }, match: { proto: tcp } }
  deep:
    rules:
      - { match: { src: 10.0.0.3 }, target: DROP }
  udp_in:
    rules:
      - { match: { proto: udp, dport: 53 }, target: ACCEPT }
`;

describe('chains, jumps, returns and policies', () => {
  const f = filterOf(chains);
  it('jumps into user chains and returns to the next rule of the caller', () => {
    expect(fwd(f, pkt({ src: '10.0.0.1', dport: 22 }))).toBe(ACCEPT);
    expect(out.chain).toBe(f.ruleset.chainIndex('ssh'));
    expect(out.rule).toBe(0);
    // RETURN: back in forward, no further match -> policy drop.
    expect(fwd(f, pkt({ src: '10.0.0.2', dport: 22 }))).toBe(DROP);
    expect(out.rule).toBe(-1);
    expect(out.chain).toBe(1);
    // Nested jump falls off deep's end, returns into ssh, then REJECT.
    expect(fwd(f, pkt({ src: '10.0.0.9', dport: 22 }))).toBe(REJECT);
    expect(out.rejectKind).toBe(RejectKind.TCP_RESET);
    expect(fwd(f, pkt({ src: '10.0.0.3', dport: 22 }))).toBe(DROP);
    expect(out.chain).toBe(f.ruleset.chainIndex('deep'));
    // Fell off udp_in's end: forward continues and its policy drops.
    expect(fwd(f, pkt({ proto: 'udp', dport: 54 }))).toBe(DROP);
    expect(fwd(f, pkt({ proto: 'udp', dport: 53 }))).toBe(ACCEPT);
  });
  it('applies policy accept, and RETURN in a base chain means the policy', () => {
    const g = filterOf('chains:\n  forward:\n    policy: accept\n    rules:\n      - { match: { proto: udp }, target: RETURN }\n      - { target: DROP }');
    expect(fwd(g, pkt({ proto: 'udp' }))).toBe(ACCEPT);
    expect(fwd(g, pkt({ proto: 'tcp' }))).toBe(DROP);
  });
  it('counts packets and bytes per rule and per policy', () => {
    const g = filterOf(chains);
    fwd(g, pkt({ src: '10.0.0.1', dport: 22, length: 100 }));
    fwd(g, pkt({ src: '10.0.0.2', dport: 22, length: 40 }));
    fwd(g, pkt({ dport: 80, length: 1000 }));
    const c = g.counters();
    const fwdC = c.find((x) => x.name === 'forward')!;
    expect(fwdC.rules[0]).toMatchObject({ packets: 2, bytes: 140 });
    expect(fwdC.rules[2]).toMatchObject({ packets: 1, bytes: 1000 });
    expect(fwdC).toMatchObject({ policy: 'drop', policyPackets: 1, policyBytes: 40 });
    const ssh = c.find((x) => x.name === 'ssh')!;
    expect(ssh.policy).toBeNull();
    expect(ssh.rules.map((r) => r.packets)).toEqual([1, 1, 0, 0]);
  });
});

describe('targets', () => {
  it('REJECT answers: default port-unreachable, named kinds', () => {
    const f = forwardOf(['{ match: { proto: udp }, target: REJECT }', '{ target: { reject: icmp-admin-prohibited } }']);
    expect(fwd(f, pkt({ proto: 'udp' }))).toBe(REJECT);
    expect(out.rejectKind).toBe(RejectKind.PORT_UNREACHABLE);
    expect(fwd(f, pkt({ proto: 'tcp' }))).toBe(REJECT);
    expect(out.rejectKind).toBe(RejectKind.ADMIN_PROHIBITED);
  });
  it('MARK set/or/and/xor and the mark match sees the new mark', () => {
    const f = forwardOf([
      '{ target: { mark: { set: "0x10/0xf0" } } }',
      '{ target: { mark: { or: 0x1 } } }',
      '{ target: { mark: { xor: 0x100 } } }',
      '{ target: { mark: { and: 0xffff0fff } } }',
      '{ match: { mark: "0x111/0xfff" }, target: ACCEPT }',
    ]);
    expect(fwd(f, pkt(), { m: meta({ mark: 0xf0f0 }) })).toBe(ACCEPT);
    expect(out.mark).toBe(0x0111);
    expect(out.markChanged).toBe(true);
  });
  it('CONNMARK set, save and restore', () => {
    const f = forwardOf([
      '{ match: { proto: tcp }, target: { connmark: { set: "0x5/0xf" } } }',
      '{ match: { proto: udp }, target: { connmark: { save: true } } }',
      '{ match: { proto: icmp }, target: { connmark: { restore: "0xff" } } }',
      '{ target: ACCEPT }',
    ]);
    fwd(f, pkt({ proto: 'tcp' }), { connmark: 0xa0 });
    expect([out.connmark, out.connmarkChanged, out.markChanged]).toEqual([0xa5, true, false]);
    fwd(f, pkt({ proto: 'udp' }), { m: meta({ mark: 0x42 }) });
    expect([out.connmark, out.connmarkChanged]).toEqual([0x42, true]);
    fwd(f, pkt({ proto: 'icmp' }), { connmark: 0x1234, m: meta({ mark: 0xff000000 }) });
    expect([out.mark, out.markChanged, out.connmarkChanged]).toEqual([0xff000034, true, false]);
  });
  it('NOTRACK in raw sets notrack and continues; raw can drop early', () => {
    const f = filterOf(`chains:
  raw:
    policy: accept
    rules:
      - { match: { proto: udp, dport: 123 }, target: NOTRACK }
      - { match: { proto: udp, dport: 124 }, target: DROP }
  forward: { policy: accept }`);
    const r = new FilterResult();
    expect(f.evalRaw(pkt({ proto: 'udp', dport: 123 }), meta(), r)).toBe(ACCEPT);
    expect(r.notrack).toBe(true);
    expect(f.evalRaw(pkt({ proto: 'udp', dport: 125 }), meta(), r)).toBe(ACCEPT);
    expect(r.notrack).toBe(false);
    expect(f.evalRaw(pkt({ proto: 'udp', dport: 124 }), meta(), r)).toBe(DROP);
  });
});

describe('LOG', () => {
  it('emits structured records, rate-limited per rule, with the suppressed count', () => {
    const logs: LogRecord[] = [];
    const f = forwardOf([
      '{ comment: "watch ssh", match: { proto: tcp, dport: 22 }, target: { log: { prefix: "ssh: ", level: info, rate: "1/second", burst: 2 } } }',
      '{ match: { proto: tcp, dport: 22 }, target: ACCEPT }',
    ], '', {}, { logSink: { log: (r) => logs.push(r) } });
    const t = 1_000_000;
    for (let i = 0; i < 5; i++) expect(fwd(f, pkt({ dport: 22 }), { m: meta({ now: t }) })).toBe(ACCEPT);
    expect(logs).toHaveLength(2);
    expect(logs[0]).toMatchObject({
      prefix: 'ssh: ', level: 'info', chain: 'forward', rule: 0, comment: 'watch ssh', proto: 'tcp',
      src: '10.1.0.5', dst: '10.2.0.1', sport: 40000, dport: 22, ctstate: 'NEW', suppressed: 0, family: 4,
    });
    fwd(f, pkt({ dport: 22, src: 'fd00::5', dst: 'fd00::1' }), { m: meta({ now: t + 1000 }) });
    expect(logs).toHaveLength(3);
    expect(logs[2]).toMatchObject({ suppressed: 3, src: 'fd00::5', family: 6 });
    // The LOG rule still counts every packet it saw.
    expect(f.counters()[1].rules[0].packets).toBe(6);
  });
});

describe('TRACE', () => {
  it('reports every rule a selected packet passes, and the verdict', () => {
    const events: TraceEvent[] = [];
    const f = new Filter(compileRuleset(parseRuleset(chains)), { traceSink: { trace: (e) => events.push(e) } });
    f.setTrace({ proto: 'tcp', src: '10.0.0.2' });
    fwd(f, pkt({ src: '10.0.0.9', dport: 22 })); // not selected
    expect(events).toHaveLength(0);
    fwd(f, pkt({ src: '10.0.0.2', dport: 22 }));
    expect(events.map((e) => [e.kind, e.chain, e.rule, e.matched, e.target])).toEqual([
      ['packet', 'forward', -1, false, ''],
      ['rule', 'forward', 0, true, 'JUMP ssh'],
      ['rule', 'ssh', 0, false, ''],
      ['rule', 'ssh', 1, true, 'RETURN'],
      ['rule', 'forward', 1, false, ''],
      ['rule', 'forward', 2, false, ''],
      ['verdict', 'forward', -1, false, 'policy DROP'],
    ]);
    expect(events[0].packet).toBe('tcp 10.0.0.2:40000 -> 10.2.0.1:22 in=1 out=2 len=60');
    expect(events.at(-1)!.verdict).toBe('DROP');
    f.setTrace(null);
    fwd(f, pkt({ src: '10.0.0.2', dport: 22 }));
    expect(events).toHaveLength(7);
  });
  it('refuses a bad selector with a RulesetError and keeps the old one', () => {
    const f = filterOf(chains);
    f.setTrace({ proto: 'udp' });
    expect(() => f.setTrace({ proto: 'tcp', dport: 'http' })).toThrow(RulesetError);
    expect(() => f.setTrace({ src: '@nosuchset' })).toThrow(/unknown set/);
    expect(f.traceSelector).toEqual({ proto: 'udp' });
  });
});

describe('replace', () => {
  it('swaps atomically with fresh counters; a failed load leaves the running ruleset untouched', () => {
    const f = forwardOf(['{ match: { proto: tcp }, target: ACCEPT }']);
    fwd(f, pkt());
    const before = f.ruleset;
    expect(() => {
      const doc = parseRuleset('chains:\n  forward:\n    policy: accept\n    rules:\n      - { match: { proto: tcp, dport: 99999 }, target: DROP }');
      f.replace(compileRuleset(doc));
    }).toThrow(RulesetError);
    expect(f.ruleset).toBe(before);
    expect(f.counters()[1].rules[0].packets).toBe(1);
    expect(fwd(f, pkt())).toBe(ACCEPT);
    f.replace(compileRuleset(parseRuleset('chains:\n  forward:\n    policy: accept\n    rules:\n      - { match: { proto: tcp }, target: DROP }')));
    expect(f.counters()[1].rules[0].packets).toBe(0);
    expect(fwd(f, pkt())).toBe(DROP);
    expect(fwd(f, pkt({ proto: 'udp' }), { state: CtState.ESTABLISHED })).toBe(ACCEPT);
  });
  it('refuses a connlimit ruleset when the filter has no count source', () => {
    const f = forwardOf(['{ target: ACCEPT }']);
    const rs = compileRuleset(parseRuleset('chains:\n  forward:\n    rules:\n      - { match: { connlimit: { above: 1 } }, target: DROP }'));
    expect(() => f.replace(rs)).toThrow(/\/chains\/forward\/rules\/0\/match\/connlimit/);
    expect(fwd(f, pkt())).toBe(ACCEPT);
  });
});

/**
 * Per-class rule lists (dispatch.ts) must not change a verdict: a filter walking them decides, counts,
 * marks and logs exactly as one walking every rule. A traced packet walks every rule (the FULL
 * lists), so the reference is the same ruleset with TRACE on for all packets.
 */
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { PacketFields } from '../../../src/node/packet/fields.js';
import { CtState } from '../../../src/node/conntrack/state.js';
import { Lists, packetClass } from '../../../src/node/filter/dispatch.js';
import {
  compileRuleset, Filter, FilterResult, parseRuleset, type LogRecord, type PacketMeta, type RulesetDoc,
} from '../../../src/node/filter/index.js';
import { ifnames, pkt } from './helpers.js';

// Negated protocol and ct state, "other" protocols, family-fixed rules, jumps and RETURN from
// lists of different classes, non-final targets (MARK, CONNMARK, LOG) between them.
const EDGES = `
sets:
  nets: { type: net, elements: [10.1.0.0/16, "fd00:1::/48"] }
  hp:   { type: ip+port, elements: ["10.2.0.1,tcp:80", "10.2.0.1,udp:53", "fd00:2::1,tcp:443"] }
chains:
  raw:
    policy: accept
    rules:
      - { match: { not: { proto: tcp } , mark: "0x0/0x100" }, target: { mark: { or: 0x100 } } }
      - { match: { proto: 47 }, target: NOTRACK }
      - { match: { not: { proto: 47 }, src: "fd00:9::/32" }, target: DROP }
      - { match: { proto: udp, dport: 9 }, target: { jump: rawsub } }
      - { match: { proto: tcp, tcpFlags: "SYN,FIN SYN,FIN" }, target: DROP }
  rawsub:
    rules:
      - { match: { proto: icmp }, target: DROP }
      - { match: { src: 10.9.0.0/16 }, target: RETURN }
      - { target: { mark: { xor: 0x1 } } }
  forward:
    policy: drop
    rules:
      - { match: { not: { ctstate: [NEW, INVALID] }, proto: tcp, dport: 7 }, target: { connmark: { set: "0x5/0xf" } } }
      - { match: { ctstate: ESTABLISHED }, target: { jump: est } }
      - { match: { ctstate: [RELATED, UNTRACKED], not: { proto: udp } }, target: ACCEPT }
      - { match: { ctstate: INVALID }, target: { log: { prefix: "inv: ", rate: "1000/second", burst: 1000 } } }
      - { match: { ctstate: INVALID }, target: DROP }
      - { match: { proto: icmp, icmpType: echo-request }, target: { jump: pings } }
      - { match: { proto: icmpv6, icmpType: echo-request }, target: { jump: pings } }
      - { match: { proto: 50 }, target: ACCEPT }
      - { match: { not: { proto: 50 }, src: 10.3.0.0/16 }, target: ACCEPT }
      - { match: { src: "@nets", proto: tcp, syn: true, dport: "1-1023" }, target: { jump: web } }
      - { match: { proto: tcp, set: { name: hp, flags: [dst, dst] } }, target: ACCEPT }
      - { match: { proto: udp, set: { name: hp, flags: [dst, dst] } }, target: ACCEPT }
      - { match: { dst: "fd00:2::/48", not: { proto: icmpv6 } }, target: { reject: icmp6-adm-prohibited } }
      - { match: { statistic: { mode: nth, every: 3 } }, target: { mark: { set: "0x7/0xf" } } }
      - { match: { mark: "0x7/0xf", proto: udp }, target: ACCEPT }
      - { match: { limit: { rate: "3/second", burst: 3 } }, target: { reject: icmp-host-prohibited } }
      - { match: { connlimit: { upto: 2, srcPrefix: 24 }, proto: tcp }, target: ACCEPT }
  est:
    rules:
      - { match: { proto: tcp, sport: 22 }, target: RETURN }
      - { match: { proto: udp }, target: ACCEPT }
      - { match: { not: { proto: tcp } }, target: DROP }
      - { match: { connmark: "0x5/0xf" }, target: { connmark: { save: true } } }
      - { match: { proto: tcp }, target: ACCEPT }
  pings:
    rules:
      - { match: { proto: icmp, icmpType: "echo-request", length: "0-100" }, target: ACCEPT }
      - { match: { proto: icmpv6 }, target: RETURN }
      - { target: DROP }
  web:
    rules:
      - { match: { proto: tcp, dport: [80, 443] }, target: ACCEPT }
      - { match: { hashlimit: { rate: "2/second", burst: 2, srcPrefix: 32 } }, target: ACCEPT }
      - { match: { proto: tcp }, target: { reject: tcp-reset } }
`;

const ADDR4 = ['10.1.0.5', '10.1.2.3', '10.2.0.1', '10.9.0.1', '10.3.0.10', '198.51.100.7', '127.0.0.1', '10.2.0.123'];
const ADDR6 = ['fd00:1::5', 'fd00:2::1', 'fd00:9::1', 'fd00:3::20', '2001:db8:bad::1', '::1'];
const PROTOS = ['tcp', 'udp', 'icmp', 'icmpv6', 47, 50, 51, 132, 0] as const;
const PORTS = [7, 9, 22, 25, 53, 80, 123, 443, 3389, 8080, 40000];
const STATES = [CtState.NEW, CtState.ESTABLISHED, CtState.RELATED, CtState.INVALID, CtState.UNTRACKED];

const packetArb = fc.record({
  v6: fc.boolean(),
  src: fc.nat(), dst: fc.nat(),
  proto: fc.constantFrom(...PROTOS),
  sport: fc.constantFrom(...PORTS), dport: fc.constantFrom(...PORTS),
  flags: fc.integer({ min: 0, max: 0xff }),
  icmpType: fc.constantFrom(0, 3, 8, 11, 128, 129),
  length: fc.constantFrom(40, 84, 1500),
  laterFragment: fc.boolean(),
  state: fc.constantFrom(...STATES),
  connmark: fc.constantFrom(0, 5, 0x15),
  mark: fc.constantFrom(0, 0x7, 0x100),
  inIf: fc.integer({ min: 0, max: 4 }),
  dtMs: fc.constantFrom(0, 1, 400),
});
type PacketCase = typeof packetArb extends fc.Arbitrary<infer T> ? T : never;

function fieldsOf(c: PacketCase): PacketFields {
  const pool = c.v6 ? ADDR6 : ADDR4;
  return pkt({
    src: pool[c.src % pool.length], dst: pool[c.dst % pool.length], proto: c.proto, sport: c.sport, dport: c.dport,
    flags: c.flags, icmpType: c.icmpType, length: c.length, laterFragment: c.laterFragment,
  });
}

/** Two filters on two compiles of one ruleset; `traced` sends every packet through the FULL lists. */
function pair(doc: RulesetDoc) {
  const logs: LogRecord[][] = [[], []];
  const make = (k: number): Filter => {
    let seed = 12345;
    // Same deterministic sequence in both filters: statistic random draws must line up.
    const random = (): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    const rs = compileRuleset(doc, { interfaceName: ifnames, random });
    const f = new Filter(rs, {
      connCount: { countBySource: (_f, src) => src[0] % 4 },
      logSink: { log: (r) => logs[k].push(r) },
      traceSink: { trace: () => undefined },
    });
    if (k === 1) f.setTrace({});
    return f;
  };
  return { fast: make(0), traced: make(1), logs };
}

function run(f: Filter, p: PacketFields, c: PacketCase, m: PacketMeta, out: FilterResult): unknown[] {
  const raw = f.evalRaw(p, m, out);
  const r = [raw, out.rejectKind, out.mark, out.markChanged, out.notrack, out.chain, out.rule];
  if (raw !== 1) return r;
  const fwd = f.evalForward(p, { ...m, mark: out.mark }, { state: c.state, connmark: c.connmark }, out);
  return [...r, fwd, out.rejectKind, out.mark, out.markChanged, out.connmark, out.connmarkChanged, out.chain, out.rule];
}

function check(yaml: string, runs: number): void {
  const doc = parseRuleset(yaml);
  fc.assert(
    fc.property(fc.array(packetArb, { minLength: 1, maxLength: 60 }), (cases) => {
      const { fast, traced, logs } = pair(doc);
      const o1 = new FilterResult();
      const o2 = new FilterResult();
      let now = 1_700_000_000_000;
      for (const c of cases) {
        now += c.dtMs;
        const p = fieldsOf(c);
        const m = { inIf: c.inIf, outIf: 3, mark: c.mark, now };
        expect(run(fast, p, c, m, o1)).toEqual(run(traced, p, c, m, o2));
      }
      expect(fast.counters()).toEqual(traced.counters());
      expect(logs[0]).toEqual(logs[1]);
    }),
    { numRuns: runs },
  );
}

describe('per-class rule lists', () => {
  it('classify packets by family, protocol class and ct state, and send the rest to FULL', () => {
    const classes = new Set<number>();
    for (const family of [4, 6]) {
      for (const proto of [6, 17, 1, 58, 47]) {
        for (let ct = -1; ct <= 4; ct++) classes.add(packetClass(family, proto, ct));
      }
    }
    expect(classes.size).toBe(Lists.CLASSES);
    expect(Math.max(...classes)).toBe(Lists.CLASSES - 1);
    expect(packetClass(4, 47, 0)).toBe(packetClass(4, 132, 0));
    expect(packetClass(0, 6, 0)).toBe(Lists.FULL);
    expect(packetClass(4, 6, 5)).toBe(Lists.FULL);
    expect(packetClass(6, 6, -2)).toBe(Lists.FULL);
  });

  it('decide, count, mark and log as the full walk does (edge ruleset)', () => {
    check(EDGES, 300);
  });

  it('decide, count, mark and log as the full walk does (bench-100 and demo rulesets)', () => {
    check(readFileSync('test/fixtures/rules/bench-100.yaml', 'utf8'), 100);
    check(readFileSync('test/fixtures/rules/demo.yaml', 'utf8'), 100);
  });

  it('an unparsable packet (family 0) walks every rule', () => {
    const { fast, traced } = pair(parseRuleset(EDGES));
    const p = { ...pkt({ proto: 'udp', dport: 9 }), family: 0 };
    const c = { state: CtState.INVALID, connmark: 0 } as PacketCase;
    const m = { inIf: 1, outIf: 3, mark: 0, now: 1_700_000_000_000 };
    expect(run(fast, p, c, m, new FilterResult())).toEqual(run(traced, p, c, m, new FilterResult()));
    expect(fast.counters()).toEqual(traced.counters());
  });
});

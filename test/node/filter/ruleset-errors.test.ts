import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  compileRuleset, loadRulesetFile, parseRuleset, RulesetError, RulesetFileError,
} from '../../../src/node/filter/index.js';

function errorsOf(yaml: string): { path: string; message: string; line?: number }[] {
  try {
    compileRuleset(parseRuleset(yaml));
  } catch (e) {
    expect(e).toBeInstanceOf(RulesetError);
    return (e as RulesetError).errors;
  }
  throw new Error('ruleset was accepted');
}

const BAD = `sets:
  lan: { type: net, elements: [10.0.0.0/8, 10.0.0.0/33, "fd00::/8"] }
  web: { type: ip+port, elements: ["192.0.2.10,tcp:80", "192.0.2.10:80"] }
  odd: { type: bitmap, elements: [] }
chains:
  raw:
    policy: accept
    rules:
      - { match: { ctstate: NEW }, target: NOTRACK }
      - { match: { proto: tcp }, target: { reject: tcp-reset } }
  forward:
    policy: drop
    rules:
      - { match: { src: 10.0.0.300 }, target: ACCEPT }
      - { match: { proto: tcp, dport: "2000-1000" }, target: ACCEPT }
      - { match: { dport: 80 }, target: ACCEPT }
      - { match: { proto: tcp, dport: 80 }, target: { jump: nowhere } }
      - { match: { src: "@nosuch" }, target: ACCEPT }
      - { target: NOTRACK }
      - { match: { proto: udp }, target: { reject: tcp-reset } }
      - { match: { bogus: 1 }, target: ACCEPT }
      - { match: { src: 10.0.0.0/8, dst: "fd00::1" }, target: ACCEPT }
      - { target: { log: { level: loud } } }
      - { target: { jump: a } }
      - { match: { limit: { rate: "fast" } }, target: ACCEPT }
  a:
    policy: drop
    rules: [ { target: { jump: b } } ]
  b:
    rules: [ { target: { jump: a } } ]
`;

describe('a bad ruleset is refused whole, with every error and its path', () => {
  const errs = errorsOf(BAD);
  const at = (path: string) => errs.filter((e) => e.path === path).map((e) => e.message).join(' | ');
  it.each([
    ['/sets/lan/elements/1', /prefix/],
    ['/sets/web/elements/1', /port part|ip\+port/],
    ['/sets/odd/type', /"ip", "net", "ip\+port"/],
    ['/chains/raw/rules/0/match/ctstate', /not available in the raw chain/],
    ['/chains/raw/rules/1/target', /REJECT is not allowed in the raw chain/],
    ['/chains/forward/rules/0/match/src', /not an IP address/],
    ['/chains/forward/rules/1/match/dport', /reversed/],
    ['/chains/forward/rules/2/match/dport', /needs "proto: tcp"/],
    ['/chains/forward/rules/3/target/jump', /unknown chain "nowhere"/],
    ['/chains/forward/rules/4/match/src', /unknown set "nosuch"/],
    ['/chains/forward/rules/5/target', /NOTRACK only works in the raw chain/],
    ['/chains/forward/rules/6/target/reject', /tcp-reset needs "proto: tcp"/],
    ['/chains/forward/rules/7/match/bogus', /Unexpected property/],
    ['/chains/forward/rules/8/match/dst', /mixes IPv4 and IPv6/],
    ['/chains/forward/rules/9/target/log/level', /"warning"/],
    ['/chains/forward/rules/11/match/limit/rate', /not a rate/],
    ['/chains/a/policy', /only base chains/],
  ])('%s', (path, why) => {
    expect(at(path)).toMatch(why);
  });
  it('reports the jump loop', () => {
    expect(errs.some((e) => /jump loop: a -> b -> a/.test(e.message))).toBe(true);
  });
  it('gives YAML line numbers and lists every error in the message', () => {
    expect(errs.find((e) => e.path === '/chains/forward/rules/1/match/dport')?.line).toBe(15);
    try {
      parseRuleset(BAD, 'bad.yaml');
    } catch (e) {
      const msg = (e as RulesetError).message;
      expect(msg).toMatch(/^bad.yaml: ruleset refused, \d+ errors/);
      expect(msg).toContain('/chains/forward/rules/1/match/dport (line 15, column');
      expect(msg.split('\n').length).toBe((e as RulesetError).errors.length + 1);
      expect((e as RulesetError).code).toBe('RULESET_INVALID');
    }
  });
  it('reports YAML syntax errors with line and column', () => {
    const e = errorsOf('chains:\n  forward: { policy: drop\n  x: [\n');
    expect(e[0].message).toMatch(/YAML syntax/);
    expect(e[0]).toHaveProperty('line');
    expect(errorsOf('chains:\n  forward: {}\n  forward: {}\n')[0].message).toMatch(/unique/);
  });
  it('needs a forward chain and refuses jumps to base chains', () => {
    expect(errorsOf('chains: {}')[0]).toMatchObject({ path: '/chains', message: /no "forward" chain/ });
    expect(errorsOf('chains:\n  raw: {}\n  forward:\n    rules: [{ target: { jump: raw } }]')[0].message)
      .toMatch(/cannot jump to base chain/);
  });
  it('refuses a ruleset that cannot be read', () => {
    expect(() => loadRulesetFile('/nonexistent/rules.yaml')).toThrow(RulesetFileError);
  });
  it('loads the fixtures', () => {
    const dir = mkdtempSync(join(tmpdir(), 'twinwall-filter-'));
    writeFileSync(join(dir, 'r.yaml'), 'chains:\n  forward: { policy: accept }\n');
    expect(loadRulesetFile(join(dir, 'r.yaml')).chains.forward.policy).toBe('accept');
    for (const f of ['bench-100.yaml', 'demo.yaml']) {
      const rs = compileRuleset(loadRulesetFile(`test/fixtures/rules/${f}`));
      expect(rs.rules.length).toBeGreaterThan(0);
    }
    expect(compileRuleset(loadRulesetFile('test/fixtures/rules/bench-100.yaml')).rules.length).toBe(100);
  });
});

describe('property: random rule documents never throw anything but RulesetError', () => {
  const scalar = fc.oneof(
    fc.constantFrom('tcp', 'udp', 'icmp', '10.0.0.0/8', 'fd00::/8', '80', '1-2', 'NEW', 'eth+', '@s', '@x',
      'SYN,ACK SYN', '5/second', '08:00', 'Mon', 'echo-request', '0x1/0xff', 'ACCEPT', 'web', '', '!'),
    fc.integer({ min: -5, max: 70000 }), fc.boolean(), fc.double(), fc.string({ maxLength: 6 }),
  );
  const value = fc.oneof(scalar, fc.array(scalar, { maxLength: 3 }));
  const keys = ['ctstate', 'in', 'out', 'src', 'dst', 'proto', 'sport', 'dport', 'tcpFlags', 'syn', 'icmpType',
    'mark', 'connmark', 'length', 'zzz'];
  const obj = (ks: string[], v: fc.Arbitrary<unknown>) =>
    fc.dictionary(fc.constantFrom(...ks), v, { maxKeys: 4 });
  const match = fc.record({
    ...Object.fromEntries(keys.map((k) => [k, value])),
    set: fc.record({ name: fc.constantFrom('s', 'p', 'x'), flags: fc.array(fc.constantFrom('src', 'dst', 'x'), { maxLength: 3 }) }),
    statistic: obj(['mode', 'every', 'packet', 'probability'], fc.oneof(fc.constantFrom('nth', 'random'), fc.integer({ min: -1, max: 5 }), fc.double())),
    time: obj(['start', 'stop', 'days'], value),
    limit: obj(['rate', 'burst'], value),
    hashlimit: obj(['rate', 'burst', 'above', 'srcPrefix', 'size'], value),
    connlimit: obj(['above', 'upto', 'srcPrefix'], value),
    not: obj(keys, value),
  }, { requiredKeys: [] });
  const target = fc.oneof(
    fc.constantFrom('ACCEPT', 'DROP', 'REJECT', 'NOTRACK', 'RETURN', 'JUMP', 'nope'),
    fc.record({ reject: fc.constantFrom('tcp-reset', 'icmp-port-unreachable', 'x') }),
    fc.record({ log: obj(['prefix', 'level', 'rate', 'burst'], value) }),
    fc.record({ mark: obj(['set', 'or', 'and', 'xor', 'q'], value) }),
    fc.record({ connmark: obj(['set', 'save', 'restore'], value) }),
    fc.record({ jump: fc.constantFrom('forward', 'raw', 'c1', 'c2', 'none') }),
    value,
  );
  const rule = fc.record({ comment: fc.string(), match, target }, { requiredKeys: ['target'] });
  const chain = fc.record({ policy: fc.constantFrom('accept', 'drop', 'maybe'), rules: fc.array(rule, { maxLength: 4 }) }, { requiredKeys: [] });
  const doc = fc.record({
    sets: fc.dictionary(fc.constantFrom('s', 'p'), fc.record({
      type: fc.constantFrom('ip', 'net', 'ip+port', 'x'),
      elements: fc.array(fc.oneof(fc.constantFrom('10.0.0.1', '10.0.0.0/8', '10.0.0.1,tcp:80', 'fd00::1', 'x'), fc.string()), { maxLength: 4 }),
    })),
    chains: fc.dictionary(fc.constantFrom('raw', 'forward', 'c1', 'c2', 'bad name'), chain, { maxKeys: 4 }),
  }, { requiredKeys: [] });

  it('compiles or refuses with RulesetError', () => {
    fc.assert(
      fc.property(doc, (d) => {
        try {
          compileRuleset(d);
        } catch (e) {
          if (!(e instanceof RulesetError)) throw e;
          expect(e.errors.length).toBeGreaterThan(0);
          for (const err of e.errors) expect(err.path).toMatch(/^(\/|$)/);
        }
      }),
      { numRuns: 1500 },
    );
  });
});

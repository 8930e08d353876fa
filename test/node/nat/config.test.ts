import { describe, expect, it } from 'vitest';
import { compileRuleset, parseRuleset, RulesetError, type RulesetIssue } from '../../../src/node/filter/index.js';

const BASE = `
chains:
  forward:
    policy: accept
`;

function errorsOf(text: string): RulesetIssue[] {
  try {
    parseRuleset(text);
  } catch (e) {
    expect(e).toBeInstanceOf(RulesetError);
    return (e as RulesetError).errors;
  }
  return [];
}

describe('nat: section of a ruleset', () => {
  it('compiles SNAT and DNAT rules', () => {
    const rs = compileRuleset(
      parseRuleset(`${BASE}
nat:
  snat:
    - { out: eth0, src: 10.0.0.0/8, to: 198.51.100.10, ports: 20000-29999 }
  dnat:
    - { in: eth0, dst: 198.51.100.10, proto: tcp, dport: 8080, to: "10.0.0.5:80" }
`),
    );
    expect(rs.nat?.snat[0]).toMatchObject({ to: 0xc633640a, portLo: 20000, portHi: 29999, path: '/nat/snat/0' });
    expect(rs.nat?.dnat[0]).toMatchObject({ to: 0x0a000005, toPort: 80 });
  });

  it('has no NAT without the section', () => {
    expect(compileRuleset(parseRuleset(BASE)).nat).toBeNull();
  });

  it('refuses the whole file with the path of every NAT error', () => {
    const errors = errorsOf(`${BASE}
nat:
  snat:
    - { to: 300.1.1.1 }
    - { to: 1.2.3.4, ports: 0-10, src: 10.0.0.0/33 }
    - { to: "2001:db8::1" }
    - { to: 1.2.3.4, color: red }
  dnat:
    - { to: "10.0.0.5:80" }
    - { proto: tcp, to: "10.0.0.5:99999" }
    - { proto: udp, to: nowhere }
`);
    const paths = errors.map((e) => e.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        '/nat/snat/0/to',
        '/nat/snat/1/ports',
        '/nat/snat/1/src',
        '/nat/snat/2/to',
        '/nat/snat/3/color',
        '/nat/dnat/0/proto',
        '/nat/dnat/1/to',
        '/nat/dnat/2/to',
      ]),
    );
  });

  it('reports shape errors first, with their path', () => {
    const errors = errorsOf(`${BASE}
nat:
  snat: [{ out: eth0 }]
  masq: []
`);
    expect(errors.map((e) => e.path)).toEqual(expect.arrayContaining(['/nat/snat/0/to', '/nat/masq']));
    expect(errors.every((e) => e.line !== undefined)).toBe(true);
  });
});

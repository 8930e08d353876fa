import { describe, expect, it } from 'vitest';
import { Engine, EngineResult } from '../../src/node/engine/index.js';
import { compileRuleset, parseRuleset } from '../../src/node/filter/index.js';
import { entryInfo } from '../../src/node/conntrack/index.js';
import { buildIcmpEcho, buildTcp, buildUdp, TcpFlag } from '../../src/node/packet/index.js';
import { ExemptRuleError, checkExemptRules, compileExemptRules, type ExemptRuleSpec } from '../../src/sync/index.js';

const ACCEPT_ALL = 'chains:\n  forward:\n    policy: accept\n';

/** An engine holding one entry per flow below, and a way to find each entry's slot. */
function table(): { engine: Engine; slot: (src: string, dport: number) => number } {
  let now = 1_000_000;
  const engine = new Engine({ conntrack: { maxEntries: 1024 }, ruleset: compileRuleset(parseRuleset(ACCEPT_ALL)), clock: () => now });
  const out = new EngineResult();
  const send = (pkt: Buffer): void => {
    now += 1;
    engine.process(pkt, 0, pkt.length, { inIf: 2, outIf: 3, mark: 0, now }, out);
  };
  send(buildTcp({ src: '10.1.0.5', dst: '10.2.0.9', sport: 40000, dport: 80, seq: 1, flags: TcpFlag.SYN }));
  send(buildTcp({ src: '192.168.9.4', dst: '10.2.0.9', sport: 40001, dport: 22, seq: 1, flags: TcpFlag.SYN }));
  // Picked up mid-stream (tcpLoose): created ESTABLISHED.
  send(buildTcp({ src: '10.1.0.8', dst: '10.2.0.9', sport: 40002, dport: 443, seq: 1, ack: 1, flags: TcpFlag.ACK }));
  send(buildUdp({ src: '10.1.0.6', dst: '10.2.0.53', sport: 5353, dport: 53, payloadLength: 20 }));
  send(buildIcmpEcho({ src: '10.1.0.7', dst: '192.0.2.1', id: 7, seq: 1 }));
  send(buildTcp({ src: '2001:db8::5', dst: '2001:db8:1::9', sport: 40003, dport: 443, seq: 1, flags: TcpFlag.SYN }));
  const t = engine.conntrack.table;
  expect(t.count).toBe(6);
  return {
    engine,
    slot(src, dport) {
      let found = -1;
      t.forEach((s) => {
        const info = entryInfo(t, s, now);
        if (info.original.src === src && info.original.dport === dport) found = s;
      });
      if (found < 0) throw new Error(`no entry from ${src} to port ${dport}`);
      return found;
    },
  };
}

/** Which of the six flows the rules exempt, by source address. */
function exempted(rules: ExemptRuleSpec[]): string[] {
  const { engine, slot } = table();
  const exempt = compileExemptRules(rules);
  const flows: [string, number][] = [
    ['10.1.0.5', 80], ['192.168.9.4', 22], ['10.1.0.8', 443], ['10.1.0.6', 53], ['10.1.0.7', 0], ['2001:db8::5', 443],
  ];
  return flows.filter(([src, dport]) => exempt(engine.conntrack.table, slot(src, dport))).map(([src]) => src);
}

describe('sync exemptions', () => {
  it('match on the original source and destination (CIDR or address), per family', () => {
    expect(exempted([{ src: '192.168.0.0/16' }])).toEqual(['192.168.9.4']);
    expect(exempted([{ dst: '10.2.0.53' }])).toEqual(['10.1.0.6']);
    expect(exempted([{ src: '10.1.0.0/24', dst: '10.2.0.0/24' }])).toEqual(['10.1.0.5', '10.1.0.8', '10.1.0.6']);
    expect(exempted([{ src: '2001:db8::/32' }])).toEqual(['2001:db8::5']);
    expect(exempted([{ src: '0.0.0.0/0' }])).toEqual(['10.1.0.5', '192.168.9.4', '10.1.0.8', '10.1.0.6', '10.1.0.7']);
  });

  it('match on protocol by name or number', () => {
    expect(exempted([{ proto: 'udp' }])).toEqual(['10.1.0.6']);
    expect(exempted([{ proto: 1 }])).toEqual(['10.1.0.7']);
    expect(exempted([{ proto: '17' }])).toEqual(['10.1.0.6']);
    expect(exempted([{ proto: 'tcp', dst: '2001:db8:1::/48' }])).toEqual(['2001:db8::5']);
  });

  it('match on the TCP state the entry was created in', () => {
    expect(exempted([{ proto: 'tcp', state: 'ESTABLISHED' }])).toEqual(['10.1.0.8']);
    expect(exempted([{ proto: 'tcp', state: 'SYN_SENT', src: '10.0.0.0/8' }])).toEqual(['10.1.0.5']);
  });

  it('exempt an entry matching any rule; no rules exempt nothing', () => {
    expect(exempted([{ proto: 'udp' }, { src: '192.168.9.4' }])).toEqual(['192.168.9.4', '10.1.0.6']);
    expect(exempted([])).toEqual([]);
  });

  it('refuse bad rules with the index and field of each problem', () => {
    const issues = checkExemptRules([
      { src: '10.0.0.300/8' },
      { proto: 'sctpx' },
      { state: 'ESTABLISHED' },
      { proto: 'udp', state: 'BOGUS' },
      { src: '10.0.0.0/8', dst: '2001:db8::/32' },
      { proto: 'icmp', dst: '2001:db8::1' },
      {},
      { proto: 300 },
    ]);
    expect(issues.map((i) => [i.index, i.field])).toEqual([
      [0, 'src'], [1, 'proto'], [2, 'state'], [3, 'state'], [4, 'dst'], [5, 'proto'], [6, ''], [7, 'proto'],
    ]);
    expect(issues[2].message).toContain('add proto: tcp');
    expect(issues[3].message).toContain('SYN_SENT');
    expect(issues[6].message).toContain('every entry');
    expect(checkExemptRules([{ proto: 'tcp', state: 'TIME_WAIT', src: '10.0.0.0/8' }])).toEqual([]);
    expect(() => compileExemptRules([{ proto: 'sctpx' }])).toThrow(ExemptRuleError);
    try {
      compileExemptRules([{ proto: 'sctpx' }]);
    } catch (e) {
      expect((e as ExemptRuleError).code).toBe('SYNC_EXEMPT_INVALID');
      expect((e as ExemptRuleError).issues[0]).toMatchObject({ index: 0, field: 'proto' });
    }
  });
});

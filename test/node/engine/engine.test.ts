import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Engine, EngineResult } from '../../../src/node/engine/engine.js';
import { DropReason } from '../../../src/node/engine/stats.js';
import { compileRuleset, parseRuleset, RulesetError, Verdict } from '../../../src/node/filter/index.js';
import { buildIcmpEcho, buildIcmpError, buildTcp, buildUdp } from '../../../src/node/packet/build.js';
import { PacketView } from '../../../src/node/packet/view.js';
import { InvalidReason, TcpFlag } from '../../../src/node/packet/fields.js';
import { CtState, TcpState } from '../../../src/node/conntrack/state.js';
import type { ConntrackEventSink } from '../../../src/node/conntrack/events.js';

const { SYN, ACK, RST, FIN } = TcpFlag;
const IN = 2;
const OUT = 3;
const names: Record<number, string> = { [IN]: 'inside0', [OUT]: 'outside0' };

const RULES = `
chains:
  raw:
    policy: accept
    rules:
      - match: { proto: udp, dport: 3780 }
        target: NOTRACK
      - match: { proto: udp, dport: 9 }
        target: DROP
  forward:
    policy: drop
    rules:
      - match: { ctstate: [ESTABLISHED, RELATED] }
        target: ACCEPT
      - match: { ctstate: INVALID }
        target: DROP
      - match: { ctstate: UNTRACKED }
        target: ACCEPT
      - match: { in: outside0 }
        target: DROP
      - match: { proto: tcp, dport: 80 }
        target: { connmark: { set: 7 } }
      - match: { proto: tcp, dport: [80, 443], ctstate: NEW }
        target: ACCEPT
      - match: { proto: udp, dport: 53 }
        target: { mark: { set: 5 } }
      - match: { proto: udp, dport: 53 }
        target: ACCEPT
      - match: { proto: icmp }
        target: ACCEPT
      - match: { proto: tcp }
        target: { reject: tcp-reset }
      - match: { proto: udp }
        target: { reject: icmp-port-unreachable }
`;

function makeEngine(rules = RULES, maxEntries = 10_000) {
  let now = 1_000_000;
  const engine = new Engine({
    conntrack: { maxEntries },
    ruleset: compileRuleset(parseRuleset(rules), { interfaceName: (i: number) => names[i] }),
    clock: () => now,
  });
  const out = new EngineResult();
  const send = (pkt: Uint8Array, inIf: number) => {
    now += 1;
    engine.process(pkt, 0, pkt.length, { inIf, outIf: inIf === IN ? OUT : IN, mark: 0, now }, out);
    return out;
  };
  return { engine, out, send, advance: (ms: number) => (now += ms) };
}

const C = '10.1.0.5';
const S = '10.2.0.9';

describe('engine', () => {
  it('passes an allowed TCP connection both ways and drops unsolicited inbound', () => {
    const { engine, send } = makeEngine();
    expect(send(buildTcp({ src: C, dst: S, sport: 40000, dport: 80, flags: SYN, seq: 1 }), IN).verdict).toBe(Verdict.ACCEPT);
    const r = send(buildTcp({ src: S, dst: C, sport: 80, dport: 40000, flags: SYN | ACK, seq: 100, ack: 2 }), OUT);
    expect(r.verdict).toBe(Verdict.ACCEPT);
    expect(r.ctState).toBe(CtState.ESTABLISHED);
    expect(send(buildTcp({ src: C, dst: S, sport: 40000, dport: 80, flags: ACK, seq: 2, ack: 101, payloadLength: 10 }), IN).verdict).toBe(Verdict.ACCEPT);
    const slot = r.slot;
    expect(engine.conntrack.table.tcp.stateOf(slot)).toBe(TcpState.ESTABLISHED);
    // CONNMARK set by the rule on the first packet is kept on the entry.
    expect(engine.conntrack.table.markOf(slot)).toBe(7);
    const inbound = send(buildTcp({ src: S, dst: C, sport: 5555, dport: 22, flags: SYN }), OUT);
    expect(inbound.verdict).toBe(Verdict.DROP);
    expect(inbound.dropReason).toBe(DropReason.RULESET);
    expect(engine.conntrack.table.count).toBe(1);
  });

  it('answers a REJECT with a TCP reset that matches the offending segment', () => {
    const { engine, send } = makeEngine();
    const r = send(buildTcp({ src: C, dst: S, sport: 40001, dport: 25, flags: SYN, seq: 1000 }), IN);
    expect(r.verdict).toBe(Verdict.DROP);
    expect(r.emit.length).toBe(1);
    const v = new PacketView();
    expect(v.parse(r.emit[0])).toBe(0);
    expect(v.tcpFlags & (RST | ACK)).toBe(RST | ACK);
    expect([v.sport, v.dport, v.tcpAck]).toEqual([25, 40001, 1001]);
    expect(engine.stats.rejects).toBe(1);
    expect(engine.conntrack.table.count).toBe(0);
  });

  it('answers a UDP REJECT with ICMP port unreachable quoting the packet', () => {
    const { send } = makeEngine();
    const r = send(buildUdp({ src: C, dst: S, sport: 5000, dport: 7777, payloadLength: 8 }), IN);
    expect(r.emit.length).toBe(1);
    const v = new PacketView();
    expect(v.parse(r.emit[0])).toBe(0);
    expect([v.icmpType, v.icmpCode, v.isIcmpError]).toEqual([3, 3, true]);
    expect(v.inner.dport).toBe(7777);
  });

  it('lets an ICMP error for a tracked flow through as RELATED', () => {
    const { send } = makeEngine();
    const q = buildUdp({ src: C, dst: S, sport: 5000, dport: 53 });
    expect(send(q, IN).verdict).toBe(Verdict.ACCEPT);
    const err = send(buildIcmpError({ src: S, dst: C, type: 3, code: 3, quote: q }), OUT);
    expect(err.ctState).toBe(CtState.RELATED);
    expect(err.verdict).toBe(Verdict.ACCEPT);
  });

  it('sets the packet mark from MARK and exempts NOTRACK traffic from conntrack', () => {
    const { engine, send } = makeEngine();
    const r = send(buildUdp({ src: C, dst: S, sport: 5001, dport: 53 }), IN);
    expect([r.markChanged, r.mark]).toEqual([true, 5]);
    const n = send(buildUdp({ src: C, dst: S, sport: 5002, dport: 3780 }), IN);
    expect(n.ctState).toBe(CtState.UNTRACKED);
    expect(n.verdict).toBe(Verdict.ACCEPT);
    expect(engine.conntrack.table.count).toBe(1);
    expect(send(buildUdp({ src: C, dst: S, sport: 5003, dport: 9 }), IN).verdict).toBe(Verdict.DROP);
  });

  it('drops a blind RST into an established connection and keeps the connection', () => {
    const { engine, send } = makeEngine();
    send(buildTcp({ src: C, dst: S, sport: 40002, dport: 443, flags: SYN, seq: 1 }), IN);
    const sa = send(buildTcp({ src: S, dst: C, sport: 443, dport: 40002, flags: SYN | ACK, seq: 100, ack: 2 }), OUT);
    send(buildTcp({ src: C, dst: S, sport: 40002, dport: 443, flags: ACK, seq: 2, ack: 101 }), IN);
    const rst = send(buildTcp({ src: S, dst: C, sport: 443, dport: 40002, flags: RST, seq: 99_999_999 }), OUT);
    expect(rst.verdict).toBe(Verdict.DROP);
    expect(rst.ctState).toBe(CtState.INVALID);
    expect(rst.invalidReason).toBe(InvalidReason.TCP_WINDOW);
    expect(engine.conntrack.table.tcp.stateOf(sa.slot)).toBe(TcpState.ESTABLISHED);
    expect(send(buildTcp({ src: C, dst: S, sport: 40002, dport: 443, flags: FIN | ACK, seq: 2, ack: 101 }), IN).verdict).toBe(Verdict.ACCEPT);
  });

  it('counts malformed packets by reason and keeps forwarding', () => {
    const { engine, send } = makeEngine();
    const good = buildTcp({ src: C, dst: S, sport: 1, dport: 80, flags: SYN });
    const r = send(good.subarray(0, 25), IN);
    expect([r.verdict, r.dropReason]).toEqual([Verdict.DROP, DropReason.MALFORMED]);
    send(buildTcp({ src: C, dst: S, sport: 2, dport: 80, flags: SYN | FIN }), IN);
    expect(engine.stats.invalid[InvalidReason.BAD_TCP_FLAGS]).toBe(1);
    expect(engine.stats.drops[DropReason.MALFORMED]).toBe(2);
    expect(send(good, IN).verdict).toBe(Verdict.ACCEPT);
  });

  it('keeps the running ruleset when a replacement is refused, and swaps a good one whole', () => {
    const { engine, send } = makeEngine();
    expect(() => compileRuleset(parseRuleset('chains: { forward: { policy: maybe, rules: [ { target: { jump: nowhere } } ] } }'))).toThrow(RulesetError);
    expect(send(buildIcmpEcho({ src: C, dst: S, id: 1, seq: 1 }), IN).verdict).toBe(Verdict.ACCEPT);
    engine.replaceRuleset(compileRuleset(parseRuleset('chains: { raw: { policy: accept, rules: [] }, forward: { policy: drop, rules: [] } }')));
    expect(send(buildIcmpEcho({ src: C, dst: S, id: 2, seq: 1 }), IN).verdict).toBe(Verdict.DROP);
  });

  it('reports table-full drops with their own reason', () => {
    const { engine, send } = makeEngine(RULES, 1024);
    // Fill the table with assured flows (nothing to evict).
    for (let i = 0; i < 1024; i++) {
      send(buildTcp({ src: C, dst: S, sport: 1024 + i, dport: 443, flags: SYN, seq: 1 }), IN);
      send(buildTcp({ src: S, dst: C, sport: 443, dport: 1024 + i, flags: SYN | ACK, seq: 10, ack: 2 }), OUT);
      send(buildTcp({ src: C, dst: S, sport: 1024 + i, dport: 443, flags: ACK, seq: 2, ack: 11 }), IN);
    }
    expect(engine.conntrack.table.count).toBe(1024);
    const r = send(buildTcp({ src: C, dst: S, sport: 9, dport: 80, flags: SYN }), IN);
    expect([r.verdict, r.dropReason, r.invalidReason]).toEqual([Verdict.DROP, DropReason.TABLE_FULL, InvalidReason.TABLE_FULL]);
  });

  it('emits exactly one new event per confirmed entry and one destroy at expiry', () => {
    const { engine, send, advance } = makeEngine();
    const ev = { n: 0, u: 0, d: 0 };
    const sink: ConntrackEventSink = { ctNew: () => void ev.n++, ctUpdate: () => void ev.u++, ctDestroy: () => void ev.d++ };
    engine.setEventSink(sink);
    send(buildUdp({ src: C, dst: S, sport: 7000, dport: 53 }), IN);
    send(buildUdp({ src: S, dst: C, sport: 53, dport: 7000 }), OUT);
    send(buildUdp({ src: C, dst: S, sport: 7001, dport: 7777 }), IN); // rejected: no entry, no event
    expect(ev).toEqual({ n: 1, u: 1, d: 0 });
    advance(121_000);
    engine.tick();
    expect(ev.d).toBe(1);
    expect(engine.conntrack.table.count).toBe(0);
  });

  it('never throws and never corrupts the table on random and mutated packets', () => {
    const { engine, send } = makeEngine(RULES, 2048);
    const seeds = [
      buildTcp({ src: C, dst: S, sport: 1000, dport: 80, flags: SYN, seq: 5, wscale: 7, mss: 1460, sackPermitted: true }),
      buildTcp({ src: S, dst: C, sport: 80, dport: 1000, flags: SYN | ACK, seq: 9, ack: 6 }),
      buildTcp({ src: 'fd00::1', dst: 'fd00::2', sport: 1, dport: 443, flags: ACK, seq: 5, ack: 1, payloadLength: 20 }),
      buildUdp({ src: C, dst: S, sport: 53, dport: 53 }),
      buildIcmpEcho({ src: 'fd00::1', dst: 'fd00::2', id: 3, seq: 4 }),
      buildIcmpError({ src: S, dst: C, type: 3, code: 1, quote: buildUdp({ src: C, dst: S, sport: 53, dport: 53 }) }),
    ];
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 120 }),
          fc.tuple(fc.constantFrom(...seeds), fc.array(fc.tuple(fc.nat(200), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }), fc.nat(200)).map(
            ([seed, flips, cut]) => {
              const b = Buffer.from(seed);
              for (const [at, v] of flips) if (at < b.length) b[at] = v;
              return b.subarray(0, Math.max(1, Math.min(b.length, cut)));
            },
          ),
        ),
        fc.boolean(),
        (pkt, inside) => {
          const r = send(pkt, inside ? IN : OUT);
          expect([Verdict.ACCEPT, Verdict.DROP]).toContain(r.verdict);
        },
      ),
      { numRuns: 3000 },
    );
    expect(engine.conntrack.table.verify()).toEqual([]);
  });
});

describe('engine batches', () => {
  it('gives each packet of a batch the same result as one-by-one processing', async () => {
    const { PacketBatch } = await import('../../../src/node/engine/engine.js');
    const a = makeEngine();
    const b = makeEngine();
    const pkts: [Buffer, number][] = [];
    for (let i = 0; i < 20; i++) {
      pkts.push([buildTcp({ src: C, dst: S, sport: 30000 + i, dport: i % 3 === 0 ? 25 : 80, flags: SYN, seq: 1 }), IN]);
      pkts.push([buildTcp({ src: S, dst: C, sport: 80, dport: 30000 + i, flags: SYN | ACK, seq: 10, ack: 2 }), OUT]);
      pkts.push([buildTcp({ src: C, dst: S, sport: 30000 + i, dport: 80, flags: ACK, seq: 2, ack: 11 }), IN]);
      pkts.push([buildUdp({ src: C, dst: S, sport: 40000 + i, dport: 53 }), IN]);
      pkts.push([Buffer.from('junk'), IN]);
    }
    const single = pkts.map(([p, inIf]) => {
      const r = b.send(p, inIf);
      return [r.verdict, r.ctState, r.invalidReason, r.emit.length].join('/');
    });
    const batch = new PacketBatch(16);
    const results = Array.from({ length: 16 }, () => new EngineResult());
    const batched: string[] = [];
    for (let k = 0; k < pkts.length; k += 16) {
      batch.count = 0;
      for (const [p, inIf] of pkts.slice(k, k + 16)) batch.add(p, 0, p.length, inIf, inIf === IN ? OUT : IN, 0);
      a.engine.processBatch(batch, { inIf: 0, outIf: 0, mark: 0, now: 1_000_000 + k }, results);
      for (let j = 0; j < batch.count; j++) batched.push([results[j].verdict, results[j].ctState, results[j].invalidReason, results[j].emit.length].join('/'));
    }
    expect(batched).toEqual(single);
    expect(a.engine.conntrack.table.count).toBe(b.engine.conntrack.table.count);
    expect(a.engine.conntrack.table.verify()).toEqual([]);
  });
});

describe('engine output interface', () => {
  it('asks the route lookup for the output interface when the metadata has none, so out: rules match', () => {
    const rules = 'chains: { forward: { policy: drop, rules: [ { match: { out: outside0 }, target: ACCEPT } ] } }';
    const engine = new Engine({
      conntrack: { maxEntries: 100 },
      ruleset: compileRuleset(parseRuleset(rules), { interfaceName: (i: number) => names[i] }),
    });
    const out = new EngineResult();
    const pkt = buildUdp({ src: C, dst: S, sport: 1000, dport: 53 });
    const meta = { inIf: IN, outIf: 0, mark: 0, now: 1000 };
    expect(engine.process(pkt, 0, pkt.length, meta, out)).toBe(Verdict.DROP);
    const asked: string[] = [];
    engine.setRouteLookup({
      outIf: (family, dst) => {
        asked.push(`${family}:${dst[0].toString(16)}`);
        return OUT;
      },
    });
    expect(engine.process(pkt, 0, pkt.length, meta, out)).toBe(Verdict.ACCEPT);
    expect(asked).toEqual(['4:a020009']);
    // Metadata that has the output interface is trusted as it is.
    asked.length = 0;
    const p2 = buildUdp({ src: C, dst: S, sport: 1001, dport: 53 });
    expect(engine.process(p2, 0, p2.length, { ...meta, outIf: IN }, out)).toBe(Verdict.DROP);
    expect(asked).toEqual([]);
  });
});

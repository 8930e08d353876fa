import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Engine, EngineResult, DropReason } from '../../../src/node/engine/index.js';
import { compileRuleset, parseRuleset, Verdict } from '../../../src/node/filter/index.js';
import { buildIcmpEcho, buildIcmpError, buildTcp, buildUdp } from '../../../src/node/packet/build.js';
import { computeL4ChecksumRaw, internetChecksum } from '../../../src/node/packet/checksum.js';
import { PacketView } from '../../../src/node/packet/view.js';
import { formatAddress } from '../../../src/node/packet/address.js';
import { TcpFlag } from '../../../src/node/packet/fields.js';
import { CtState, CtStatus, ENTRY_RECORD_WORDS } from '../../../src/node/conntrack/index.js';
import type { NatLogRecord } from '../../../src/node/nat/index.js';

const { SYN, ACK } = TcpFlag;
const IN = 2;
const OUT = 3;
const names: Record<number, string> = { [IN]: 'inside0', [OUT]: 'outside0' };

const C = '10.0.0.5';
const D = '10.0.0.6';
const WEB = '10.0.0.80';
const V = '198.51.100.10';
const S = '203.0.113.7';
const T = '203.0.113.8';
const X = '192.0.2.50';
const V_WORD = 0xc633640a;

const rules = (ports = '1024-65535') => `
chains:
  forward:
    policy: drop
    rules:
      - match: { ctstate: [ESTABLISHED, RELATED] }
        target: ACCEPT
      - match: { in: inside0, ctstate: NEW }
        target: ACCEPT
      # Forward rules see the inside server of a port forward, as in iptables' FORWARD chain.
      - match: { in: outside0, dst: ${WEB}, proto: tcp, dport: 80, ctstate: NEW }
        target: ACCEPT
      - match: { in: outside0, proto: tcp, dport: 22 }
        target: { reject: tcp-reset }
nat:
  snat:
    - { out: outside0, src: 10.0.0.0/8, to: ${V}, ports: ${ports} }
  dnat:
    - { in: outside0, dst: ${V}, proto: tcp, dport: 8080, to: "${WEB}:80" }
    - { in: outside0, dst: ${V}, proto: tcp, dport: 2222, to: "${WEB}:22" }
`;

function setup(ports?: string) {
  let now = 1_000_000;
  const logs: NatLogRecord[] = [];
  const engine = new Engine({
    conntrack: { maxEntries: 10_000 },
    ruleset: compileRuleset(parseRuleset(rules(ports)), { interfaceName: (i: number) => names[i] }),
    clock: () => now,
    natLog: (r) => logs.push(r),
  });
  const out = new EngineResult();
  /** Send a packet in from interface `inIf` (out the other one); the bytes are rewritten in place. */
  const send = (pkt: Uint8Array, inIf: number, outIf = inIf === IN ? OUT : IN) => {
    now += 1;
    engine.process(pkt, 0, pkt.length, { inIf, outIf, mark: 0, now }, out);
    return out;
  };
  return { engine, send, logs, advance: (ms: number) => (now += ms) };
}

/** Parse with every checksum verified; fails the test when one is wrong. */
function checked(buf: Uint8Array): PacketView {
  const v = new PacketView();
  v.verifyIpChecksum = true;
  v.verifyL4Checksum = true;
  expect(v.parse(buf)).toBe(0);
  return v;
}

const addr = (w: Uint32Array) => formatAddress(4, w);

describe('engine with NAT', () => {
  it('SNATs a TCP connection to the outside address, keeping the port, and rewrites replies back', () => {
    const { engine, send } = setup();
    const syn = buildTcp({ src: C, dst: S, sport: 40000, dport: 443, flags: SYN, seq: 1 });
    const r = send(syn, IN);
    expect([r.verdict, r.modified]).toEqual([Verdict.ACCEPT, true]);
    let v = checked(syn);
    expect([addr(v.src), v.sport, addr(v.dst), v.dport]).toEqual([V, 40000, S, 443]);
    const slot = r.slot;
    expect(engine.conntrack.table.statusOf(slot) & CtStatus.SRC_NAT).toBe(CtStatus.SRC_NAT);

    const synack = buildTcp({ src: S, dst: V, sport: 443, dport: 40000, flags: SYN | ACK, seq: 100, ack: 2 });
    const r2 = send(synack, OUT);
    expect([r2.verdict, r2.ctState, r2.modified, r2.slot]).toEqual([Verdict.ACCEPT, CtState.ESTABLISHED, true, slot]);
    v = checked(synack);
    expect([addr(v.src), v.sport, addr(v.dst), v.dport]).toEqual([S, 443, C, 40000]);

    const ack = buildTcp({ src: C, dst: S, sport: 40000, dport: 443, flags: ACK, seq: 2, ack: 101, payload: 'hello' });
    expect(send(ack, IN).modified).toBe(true);
    expect(addr(checked(ack).src)).toBe(V);
    expect(engine.nat.poolStats()).toEqual([{ address: V, proto: 6, portsInUse: 1, allocations: 1, exhausted: 0 }]);
  });

  it('gives a second inside host with the same port the next free one; one endpoint keeps its port for every destination', () => {
    const { engine, send } = setup();
    const a = buildTcp({ src: C, dst: S, sport: 40000, dport: 443, flags: SYN });
    const b = buildTcp({ src: D, dst: S, sport: 40000, dport: 443, flags: SYN });
    const c = buildTcp({ src: C, dst: T, sport: 40000, dport: 80, flags: SYN });
    send(a, IN);
    send(b, IN);
    send(c, IN);
    expect([checked(a).sport, checked(b).sport, checked(c).sport]).toEqual([40000, 40001, 40000]);
    const pool = engine.nat.pool(V_WORD, 6);
    expect([pool.inUse, pool.refsOf(40000), pool.refsOf(40001)]).toEqual([2, 2, 1]);
    // Replies to each find their own inside host.
    const ra = buildTcp({ src: S, dst: V, sport: 443, dport: 40000, flags: SYN | ACK, ack: 1 });
    const rb = buildTcp({ src: S, dst: V, sport: 443, dport: 40001, flags: SYN | ACK, ack: 1 });
    send(ra, OUT);
    send(rb, OUT);
    expect([addr(checked(ra).dst), checked(ra).dport, addr(checked(rb).dst), checked(rb).dport]).toEqual([C, 40000, D, 40000]);
    expect(engine.conntrack.table.verify()).toEqual([]);
  });

  it('SNATs UDP and its replies', () => {
    const { send } = setup();
    const q = buildUdp({ src: C, dst: S, sport: 5353, dport: 53, payload: 'query' });
    send(q, IN);
    expect([addr(checked(q).src), checked(q).sport]).toEqual([V, 5353]);
    const a = buildUdp({ src: S, dst: V, sport: 53, dport: 5353, payload: 'answer' });
    const r = send(a, OUT);
    expect([r.verdict, r.ctState]).toEqual([Verdict.ACCEPT, CtState.ESTABLISHED]);
    expect([addr(checked(a).dst), checked(a).dport]).toEqual([C, 5353]);
  });

  it('maps ICMP echo ids: kept when free, the next one for a second host, back on the reply', () => {
    const { send } = setup();
    const p1 = buildIcmpEcho({ src: C, dst: S, id: 77, seq: 1 });
    const p2 = buildIcmpEcho({ src: D, dst: S, id: 77, seq: 1 });
    send(p1, IN);
    send(p2, IN);
    expect([addr(checked(p1).src), checked(p1).icmpId, addr(checked(p2).src), checked(p2).icmpId]).toEqual([V, 77, V, 78]);
    const reply = buildIcmpEcho({ src: S, dst: V, id: 78, seq: 1, reply: true });
    const r = send(reply, OUT);
    expect([r.verdict, r.ctState, r.modified]).toEqual([Verdict.ACCEPT, CtState.ESTABLISHED, true]);
    const v = checked(reply);
    expect([addr(v.dst), v.icmpId]).toEqual([D, 77]);
  });

  it('forwards a port to an inside server both ways (DNAT)', () => {
    const { engine, send } = setup();
    const syn = buildTcp({ src: X, dst: V, sport: 5555, dport: 8080, flags: SYN, seq: 1 });
    const r = send(syn, OUT);
    expect([r.verdict, r.modified]).toEqual([Verdict.ACCEPT, true]);
    let v = checked(syn);
    expect([addr(v.src), v.sport, addr(v.dst), v.dport]).toEqual([X, 5555, WEB, 80]);
    expect(engine.conntrack.table.statusOf(r.slot) & (CtStatus.DST_NAT | CtStatus.SRC_NAT)).toBe(CtStatus.DST_NAT);
    const synack = buildTcp({ src: WEB, dst: X, sport: 80, dport: 5555, flags: SYN | ACK, seq: 9, ack: 2 });
    const r2 = send(synack, IN);
    expect([r2.verdict, r2.ctState, r2.modified]).toEqual([Verdict.ACCEPT, CtState.ESTABLISHED, true]);
    v = checked(synack);
    expect([addr(v.src), v.sport, addr(v.dst), v.dport]).toEqual([V, 8080, X, 5555]);
    // Without a forward, the outside address stays closed.
    const other = buildTcp({ src: X, dst: V, sport: 5556, dport: 22, flags: SYN });
    expect(send(other, OUT).dropReason).toBe(DropReason.RULESET);
  });

  it('passes an ICMP port unreachable for a NATed UDP flow as RELATED, its quote rewritten', () => {
    const { send } = setup();
    const q = buildUdp({ src: C, dst: S, sport: 6000, dport: 9999, payload: 'ping' });
    send(q, IN);
    const err = buildIcmpError({ src: S, dst: V, type: 3, code: 3, quote: q });
    const r = send(err, OUT);
    expect([r.verdict, r.ctState, r.modified]).toEqual([Verdict.ACCEPT, CtState.RELATED, true]);
    const v = checked(err); // outer IP and ICMP checksums
    expect(addr(v.dst)).toBe(C);
    const inner = v.inner;
    expect([addr(inner.src), inner.sport, addr(inner.dst), inner.dport]).toEqual([C, 6000, S, 9999]);
    const b = inner.buffer;
    expect(internetChecksum(b, inner.l3Offset, inner.l4Offset)).toBe(0);
    const udpCk = (b[inner.l4Offset + 6] << 8) | b[inner.l4Offset + 7];
    expect(computeL4ChecksumRaw(b, inner.l3Offset, 4, 17, inner.l4Offset, inner.ipEnd)).toBe(udpCk);
  });

  it('answers a REJECTed port forward from the outside address, as the packet arrived', () => {
    const { engine, send } = setup();
    const syn = buildTcp({ src: X, dst: V, sport: 5000, dport: 2222, flags: SYN, seq: 7 });
    const r = send(syn, OUT);
    expect([r.verdict, r.dropReason, r.emit.length]).toEqual([Verdict.DROP, DropReason.RULESET, 1]);
    const rst = checked(r.emit[0]);
    expect([addr(rst.src), rst.sport, addr(rst.dst), rst.dport, rst.tcpAck]).toEqual([V, 2222, X, 5000, 8]);
    expect(engine.conntrack.table.count).toBe(0);
  });

  it('keeps rewriting live NAT entries after a reload without NAT, and maps no new ones', () => {
    const { engine, send } = setup();
    const q = buildUdp({ src: C, dst: S, sport: 5353, dport: 53 });
    send(q, IN);
    engine.replaceRuleset(
      compileRuleset(parseRuleset('chains:\n  forward:\n    policy: accept\n'), { interfaceName: (i: number) => names[i] }),
    );
    const a = buildUdp({ src: S, dst: V, sport: 53, dport: 5353 });
    expect(send(a, OUT).modified).toBe(true);
    expect(addr(checked(a).dst)).toBe(C);
    const fresh = buildUdp({ src: D, dst: S, sport: 1, dport: 53 });
    expect(send(fresh, IN).modified).toBe(false);
    // Ports still come back when the old entries go.
    engine.conntrack.table.flush();
    expect(engine.nat.pool(V_WORD, 17).inUse).toBe(0);
  });

  it('takes the outside port of a replicated entry, so a new inside endpoint never gets it', () => {
    const { engine, send } = setup();
    // The peer's entry: 10.0.0.9:6000 -> S:53 mapped to V:6000, inserted as sync would.
    const t = engine.conntrack.table;
    const proto = 17;
    const rec = new Uint32Array(ENTRY_RECORD_WORDS);
    rec.set([0x0a000009, 0, 0, 0, 0xcb007107, 0, 0, 0, (6000 << 16) | 53, (4 << 8) | proto], 0);
    rec.set([0xcb007107, 0, 0, 0, V_WORD, 0, 0, 0, (53 << 16) | 6000, (4 << 8) | proto], 10);
    rec[20] = CtStatus.SRC_NAT;
    rec[23] = 60_000;
    t.importEntry(rec, 0, 1_000_000, CtStatus.REPLICATED);
    expect(engine.nat.pool(V_WORD, proto).isFree(6000)).toBe(false);
    const mine = buildUdp({ src: C, dst: S, sport: 6000, dport: 53 });
    send(mine, IN);
    expect(checked(mine).sport).toBe(6001);
    // Its reply reaches the peer's inside host through the replicated entry.
    const reply = buildUdp({ src: S, dst: V, sport: 53, dport: 6000 });
    send(reply, OUT);
    expect(addr(checked(reply).dst)).toBe('10.0.0.9');
    t.flush();
    expect(engine.nat.pool(V_WORD, proto).inUse).toBe(0);
  });

  it('leaves flows without NAT untouched', () => {
    const { send } = setup();
    // Inside to inside: accepted, but out of the SNAT rule's reach (out: outside0).
    const p = buildUdp({ src: C, dst: '10.9.0.1', sport: 1, dport: 2 });
    const copy = Buffer.from(p);
    const out = send(p, IN, IN);
    expect([out.verdict, out.modified]).toEqual([Verdict.ACCEPT, false]);
    expect(Buffer.compare(copy, p)).toBe(0);
    const back = buildUdp({ src: '10.9.0.1', dst: C, sport: 2, dport: 1 });
    expect([send(back, IN, IN).ctState, out.modified]).toEqual([CtState.ESTABLISHED, false]);
  });

  it('drops new connections when the port range is exhausted, logs once a second, and frees ports on destroy', () => {
    const { engine, send, logs, advance } = setup('2000-2001');
    const ok1 = buildUdp({ src: C, dst: S, sport: 7000, dport: 53 });
    const ok2 = buildUdp({ src: D, dst: S, sport: 7000, dport: 53 });
    send(ok1, IN);
    send(ok2, IN);
    expect([checked(ok1).sport, checked(ok2).sport]).toEqual([2000, 2001]);
    for (let i = 0; i < 3; i++) {
      const r = send(buildUdp({ src: '10.0.0.7', dst: S, sport: 7000 + i, dport: 53 }), IN);
      expect([r.verdict, r.dropReason]).toEqual([Verdict.DROP, DropReason.NAT_EXHAUSTED]);
    }
    expect(engine.stats.drops[DropReason.NAT_EXHAUSTED]).toBe(3);
    expect(engine.nat.exhaustedDrops).toBe(3);
    expect(logs.length).toBe(1);
    expect(logs[0]).toMatchObject({ event: 'nat_ports_exhausted', address: V, proto: 17, rule: '/nat/snat/0' });
    expect(engine.conntrack.table.count).toBe(2);
    // Both entries time out (UDP unreplied 30 s): their ports come back.
    advance(31_000);
    engine.tick();
    expect(engine.conntrack.table.count).toBe(0);
    expect(engine.nat.pool(V_WORD, 17).inUse).toBe(0);
    const again = buildUdp({ src: '10.0.0.7', dst: S, sport: 7000, dport: 53 });
    expect(send(again, IN).verdict).toBe(Verdict.ACCEPT);
    expect(checked(again).sport).toBe(2000);
    advance(2000);
    send(buildUdp({ src: '10.0.0.8', dst: S, sport: 1, dport: 53 }), IN);
    send(buildUdp({ src: '10.0.0.9', dst: S, sport: 1, dport: 53 }), IN);
    expect(logs.length).toBe(2);
    expect(logs[1].drops).toBe(3); // the two suppressed since the first record, and this one
  });

  it('keeps the event sink set through setEventSink and frees ports on flush', () => {
    const { engine, send } = setup();
    const seen: number[] = [];
    engine.setEventSink({ ctNew: () => seen.push(1), ctUpdate: () => {}, ctDestroy: () => seen.push(-1) });
    send(buildTcp({ src: C, dst: S, sport: 1234, dport: 443, flags: SYN }), IN);
    expect(engine.nat.pool(V_WORD, 6).inUse).toBe(1);
    engine.conntrack.table.flush();
    expect(seen).toEqual([1, -1]);
    expect(engine.nat.pool(V_WORD, 6).inUse).toBe(0);
  });

  it('never throws nor corrupts the table on fuzzed packets with NAT on', () => {
    const { engine, send } = setup('1024-1100');
    const seeds = [
      buildTcp({ src: C, dst: S, sport: 40000, dport: 443, flags: SYN }),
      buildUdp({ src: C, dst: S, sport: 5000, dport: 53, payload: 'x' }),
      buildIcmpEcho({ src: C, dst: S, id: 1, seq: 1 }),
      buildTcp({ src: X, dst: V, sport: 5555, dport: 8080, flags: SYN }),
      buildIcmpError({ src: S, dst: V, type: 3, code: 3, quote: buildUdp({ src: V, dst: S, sport: 5000, dport: 53 }) }),
    ];
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: seeds.length - 1 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
        fc.boolean(),
        (which, flips, inside) => {
          const p = Buffer.from(seeds[which]);
          for (const [at, byte] of flips) p[at % p.length] = byte;
          expect(() => send(p, inside ? IN : OUT)).not.toThrow();
        },
      ),
      { numRuns: 3000 },
    );
    expect(engine.conntrack.table.verify()).toEqual([]);
    engine.conntrack.table.flush();
    for (const s of engine.nat.poolStats()) expect(s.portsInUse).toBe(0);
  });
});

describe('the example ruleset (deploy/examples/rules.yaml)', () => {
  it('SNATs the guest network and forwards port 8080 to the inside web server', async () => {
    const { readFileSync } = await import('node:fs');
    const text = readFileSync(new URL('../../../deploy/examples/rules.yaml', import.meta.url), 'utf8');
    const engine = new Engine({
      conntrack: { maxEntries: 1000 },
      ruleset: compileRuleset(parseRuleset(text), { interfaceName: (i: number) => names[i] }),
      clock: () => 1000,
    });
    const out = new EngineResult();
    const guest = buildTcp({ src: '10.1.200.5', dst: '10.2.0.80', sport: 40000, dport: 443, flags: SYN });
    engine.process(guest, 0, guest.length, { inIf: IN, outIf: OUT, mark: 0, now: 1000 }, out);
    expect([out.verdict, out.modified, addr(checked(guest).src)]).toEqual([Verdict.ACCEPT, true, '10.2.0.1']);
    const lan = buildTcp({ src: '10.1.0.10', dst: '10.2.0.80', sport: 40000, dport: 443, flags: SYN });
    engine.process(lan, 0, lan.length, { inIf: IN, outIf: OUT, mark: 0, now: 1000 }, out);
    expect([out.verdict, out.modified]).toEqual([Verdict.ACCEPT, false]);
    const fwd = buildTcp({ src: '198.51.100.7', dst: '10.2.0.1', sport: 5000, dport: 8080, flags: SYN });
    engine.process(fwd, 0, fwd.length, { inIf: OUT, outIf: IN, mark: 0, now: 1000 }, out);
    const v = checked(fwd);
    expect([out.verdict, addr(v.dst), v.dport]).toEqual([Verdict.ACCEPT, '10.1.0.80', 80]);
  });
});

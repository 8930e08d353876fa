import { describe, expect, it } from 'vitest';
import { Conntrack, CtResult } from '../../../src/node/conntrack/conntrack.js';
import { CtState, TcpState } from '../../../src/node/conntrack/state.js';
import { CtStatus } from '../../../src/node/conntrack/table.js';
import { CtChange, DestroyReason, type ConntrackEventSink } from '../../../src/node/conntrack/events.js';
import { TUPLE_WORDS, formatTuple } from '../../../src/node/conntrack/tuple.js';
import { InvalidReason, Proto, TcpFlag } from '../../../src/node/packet/fields.js';
import { fakePacket } from './fake-packet.js';

const { SYN, ACK, FIN, RST } = TcpFlag;

class Recorder implements ConntrackEventSink {
  log: string[] = [];
  ctNew(t: Conntrack['table'], slot: number) {
    this.log.push(`new ${formatTuple(t.tuples, t.tupleOffset(slot, 0))}`);
  }
  ctUpdate(_t: Conntrack['table'], _slot: number, changes: number) {
    this.log.push(`update ${changes}`);
  }
  ctDestroy(t: Conntrack['table'], slot: number, reason: number) {
    this.log.push(`destroy ${reason} ${formatTuple(t.tuples, t.tupleOffset(slot, 0))}`);
  }
}

function track(ct: Conntrack, pkt: ReturnType<typeof fakePacket>, now: number, accept = true): CtResult {
  const r = new CtResult();
  ct.process(pkt, now, r);
  if (accept) ct.confirm(r);
  else ct.abort(r);
  return r;
}

const C = '10.1.0.5';
const S = '10.2.0.9';

describe('conntrack', () => {
  it('tracks a TCP handshake, data and FIN teardown with the kernel states', () => {
    const ct = new Conntrack({ maxEntries: 1000 });
    const rec = new Recorder();
    ct.table.sink = rec;
    const syn = track(ct, fakePacket({ src: C, dst: S, sport: 40000, dport: 80, flags: SYN, seq: 100 }), 0);
    expect(syn.state).toBe(CtState.NEW);
    expect(ct.table.count).toBe(1);
    expect(ct.table.tcp.stateOf(syn.slot)).toBe(TcpState.SYN_SENT);
    expect(rec.log[0]).toBe('new src=10.1.0.5 dst=10.2.0.9 sport=40000 dport=80');

    const synack = track(ct, fakePacket({ src: S, dst: C, sport: 80, dport: 40000, flags: SYN | ACK, seq: 5000, ack: 101 }), 1);
    expect(synack.state).toBe(CtState.ESTABLISHED);
    expect(synack.dir).toBe(1);
    expect(synack.slot).toBe(syn.slot);
    expect(ct.table.tcp.stateOf(syn.slot)).toBe(TcpState.SYN_RECV);

    const ack = track(ct, fakePacket({ src: C, dst: S, sport: 40000, dport: 80, flags: ACK, seq: 101, ack: 5001 }), 2);
    expect(ack.state).toBe(CtState.ESTABLISHED);
    expect(ct.table.tcp.stateOf(syn.slot)).toBe(TcpState.ESTABLISHED);
    expect(ct.table.statusOf(syn.slot) & CtStatus.ASSURED).toBe(CtStatus.ASSURED);

    track(ct, fakePacket({ src: C, dst: S, sport: 40000, dport: 80, flags: ACK, seq: 101, ack: 5001, payload: 500 }), 3);
    expect(ct.table.packetsOf(syn.slot, 0)).toBe(3);
    expect(ct.table.packetsOf(syn.slot, 1)).toBe(1);

    track(ct, fakePacket({ src: C, dst: S, sport: 40000, dport: 80, flags: FIN | ACK, seq: 601, ack: 5001 }), 4);
    expect(ct.table.tcp.stateOf(syn.slot)).toBe(TcpState.FIN_WAIT);
    track(ct, fakePacket({ src: S, dst: C, sport: 80, dport: 40000, flags: FIN | ACK, seq: 5001, ack: 602 }), 5);
    expect(ct.table.tcp.stateOf(syn.slot)).toBe(TcpState.LAST_ACK);
    track(ct, fakePacket({ src: C, dst: S, sport: 40000, dport: 80, flags: ACK, seq: 602, ack: 5002 }), 6);
    expect(ct.table.tcp.stateOf(syn.slot)).toBe(TcpState.TIME_WAIT);
    // TIME_WAIT lasts 120 s; the entry is gone after it.
    ct.advance(6 + 119_000);
    expect(ct.table.count).toBe(1);
    ct.advance(6 + 121_000);
    expect(ct.table.count).toBe(0);
    expect(rec.log.at(-1)).toBe(`destroy ${DestroyReason.TIMEOUT} src=10.1.0.5 dst=10.2.0.9 sport=40000 dport=80`);
    expect(rec.log.filter((l) => l.startsWith('update')).length).toBe(6);
  });

  it('does not keep an entry whose first packet was dropped', () => {
    const ct = new Conntrack({ maxEntries: 10 });
    const r = track(ct, fakePacket({ src: C, dst: S, sport: 1, dport: 2 }), 0, false);
    expect(r.state).toBe(CtState.NEW);
    expect(ct.table.count).toBe(0);
    const again = track(ct, fakePacket({ src: C, dst: S, sport: 1, dport: 2 }), 1);
    expect(again.state).toBe(CtState.NEW);
    expect(ct.table.count).toBe(1);
  });

  it('refuses to open TCP connections with RST, FIN or SYN/ACK', () => {
    const ct = new Conntrack({ maxEntries: 10 });
    for (const flags of [RST, RST | ACK, FIN | ACK, SYN | ACK]) {
      const r = track(ct, fakePacket({ src: C, dst: S, sport: 1, dport: 2, flags }), 0);
      expect(r.state).toBe(CtState.INVALID);
      expect(r.reason).toBe(InvalidReason.TCP_STATE);
    }
    expect(ct.table.count).toBe(0);
  });

  it('tracks UDP like Linux: unreplied timeout until a reply and 2 s of age, then stream timeout and assured', () => {
    const ct = new Conntrack({ maxEntries: 10 });
    const q = fakePacket({ src: C, dst: S, proto: Proto.UDP, sport: 5353, dport: 53 });
    const a = fakePacket({ src: S, dst: C, proto: Proto.UDP, sport: 53, dport: 5353 });
    const r = track(ct, q, 0);
    expect(r.state).toBe(CtState.NEW);
    expect(track(ct, q, 10).state).toBe(CtState.NEW);
    expect(ct.table.deadlineOf(r.slot)).toBe(10 + 30_000);
    // The first reply still gets the unreplied timeout (SEEN_REPLY is set after the protocol step).
    expect(track(ct, a, 20).state).toBe(CtState.ESTABLISHED);
    expect(ct.table.deadlineOf(r.slot)).toBe(20 + 30_000);
    expect(track(ct, q, 30).state).toBe(CtState.ESTABLISHED);
    expect(ct.table.deadlineOf(r.slot)).toBe(30 + 30_000);
    expect(ct.table.statusOf(r.slot) & CtStatus.ASSURED).toBe(0);
    track(ct, q, 2001);
    expect(ct.table.statusOf(r.slot) & CtStatus.ASSURED).toBe(CtStatus.ASSURED);
    expect(ct.table.deadlineOf(r.slot)).toBe(2001 + 120_000);
    ct.advance(2001 + 120_000 + 500);
    expect(ct.table.count).toBe(0);
  });

  it('tracks ICMP echo and refuses an echo reply without request', () => {
    const ct = new Conntrack({ maxEntries: 10 });
    const req = track(ct, fakePacket({ src: C, dst: S, proto: Proto.ICMP, icmpType: 8, icmpId: 77 }), 0);
    expect(req.state).toBe(CtState.NEW);
    const rep = track(ct, fakePacket({ src: S, dst: C, proto: Proto.ICMP, icmpType: 0, icmpId: 77 }), 1);
    expect(rep.state).toBe(CtState.ESTABLISHED);
    expect(rep.slot).toBe(req.slot);
    const stray = track(ct, fakePacket({ src: S, dst: C, proto: Proto.ICMP, icmpType: 0, icmpId: 78 }), 2);
    expect(stray.state).toBe(CtState.INVALID);
    expect(stray.reason).toBe(InvalidReason.ICMP_UNTRACKED);
    const v6 = track(ct, fakePacket({ src: 'fd00::1', dst: 'fd00::2', proto: Proto.ICMPV6, icmpType: 128, icmpId: 5 }), 3);
    expect(v6.state).toBe(CtState.NEW);
    const v6r = track(ct, fakePacket({ src: 'fd00::2', dst: 'fd00::1', proto: Proto.ICMPV6, icmpType: 129, icmpId: 5 }), 4);
    expect(v6r.state).toBe(CtState.ESTABLISHED);
  });

  it('classifies an ICMP error quoting a tracked flow as RELATED, others INVALID', () => {
    const ct = new Conntrack({ maxEntries: 10 });
    const udp = fakePacket({ src: C, dst: S, proto: Proto.UDP, sport: 4000, dport: 9999 });
    const flow = track(ct, udp, 0);
    const err = fakePacket({ src: S, dst: C, proto: Proto.ICMP, icmpType: 3, inner: udp });
    const r = track(ct, err, 1);
    expect(r.state).toBe(CtState.RELATED);
    expect(r.slot).toBe(flow.slot);
    expect(r.dir).toBe(1);
    const other = fakePacket({ src: C, dst: S, proto: Proto.UDP, sport: 4001, dport: 9999 });
    const r2 = track(ct, fakePacket({ src: S, dst: C, proto: Proto.ICMP, icmpType: 3, inner: other }), 2);
    expect(r2.state).toBe(CtState.INVALID);
    expect(r2.reason).toBe(InvalidReason.ICMP_UNTRACKED);
  });

  it('makes an expected connection RELATED and links its master', () => {
    const ct = new Conntrack({ maxEntries: 10 });
    const ctrl = track(ct, fakePacket({ src: C, dst: S, sport: 40000, dport: 21, flags: SYN }), 0);
    // Expect S:any -> C:50000 (active FTP data connection), any source port.
    const tuple = new Uint32Array(TUPLE_WORDS);
    const mask = new Uint32Array(TUPLE_WORDS);
    const data = fakePacket({ src: S, dst: C, sport: 20, dport: 50000, flags: SYN });
    tuple.set([data.src[0], 0, 0, 0, data.dst[0], 0, 0, 0, 50000, (4 << 8) | Proto.TCP]);
    mask.set([0xffffffff, 0, 0, 0, 0xffffffff, 0, 0, 0, 0xffff, 0xffff]);
    ct.expectations.add({ masterSlot: ctrl.slot, masterId: ct.table.id[ctrl.slot], tuple, mask, timeoutMs: 5000 }, 1);
    const r = track(ct, data, 2);
    expect(r.state).toBe(CtState.RELATED);
    expect(ct.table.master[r.slot]).toBe(ctrl.slot);
    expect(ct.expectations.count).toBe(0);
    // A second connection to the same port is NEW: the expectation was used.
    expect(track(ct, fakePacket({ src: S, dst: C, sport: 21, dport: 50000, flags: SYN }), 3).state).toBe(CtState.NEW);
  });

  it('expires expectations and forgets those of a vanished master', () => {
    const ct = new Conntrack({ maxEntries: 10 });
    const ctrl = track(ct, fakePacket({ src: C, dst: S, proto: Proto.UDP, sport: 1, dport: 69 }), 0);
    const tuple = new Uint32Array(TUPLE_WORDS);
    const mask = new Uint32Array(TUPLE_WORDS).fill(0);
    tuple[9] = (4 << 8) | Proto.UDP;
    mask[9] = 0xffff;
    ct.expectations.add({ masterSlot: ctrl.slot, masterId: ct.table.id[ctrl.slot], tuple, mask, timeoutMs: 100 }, 0);
    ct.expectations.sweep(200, ct.table.id);
    expect(ct.expectations.count).toBe(0);
    ct.expectations.add({ masterSlot: ctrl.slot, masterId: ct.table.id[ctrl.slot], tuple, mask, timeoutMs: 100_000 }, 0);
    ct.table.destroy(ctrl.slot, DestroyReason.DELETED);
    const r = track(ct, fakePacket({ src: S, dst: C, proto: Proto.UDP, sport: 9, dport: 9 }), 300);
    expect(r.state).toBe(CtState.NEW);
    expect(ct.expectations.count).toBe(0);
  });

  it('holds the table limit under a half-open flood and keeps assured flows (early drop)', () => {
    const max = 2000;
    const ct = new Conntrack({ maxEntries: max, initialCapacity: 1024 });
    // 200 established, assured flows first.
    const assured: number[] = [];
    for (let i = 0; i < 200; i++) {
      const sport = 10000 + i;
      const s = track(ct, fakePacket({ src: C, dst: S, sport, dport: 443, flags: SYN, seq: 1 }), 0);
      track(ct, fakePacket({ src: S, dst: C, sport: 443, dport: sport, flags: SYN | ACK, seq: 9, ack: 2 }), 0);
      track(ct, fakePacket({ src: C, dst: S, sport, dport: 443, flags: ACK, seq: 2, ack: 10 }), 0);
      expect(ct.table.statusOf(s.slot) & CtStatus.ASSURED).toBe(CtStatus.ASSURED);
      assured.push(ct.table.id[s.slot]);
    }
    // A flood of 20 000 SYNs from spoofed sources: ten times the table.
    let tableFull = 0;
    for (let i = 0; i < 20_000; i++) {
      const src = `203.0.${(i >> 8) & 255}.${i & 255}`;
      const r = track(ct, fakePacket({ src, dst: S, sport: 1024 + (i % 50000), dport: 80, flags: SYN }), 1);
      if (r.state === CtState.INVALID) tableFull++;
      expect(ct.table.count).toBeLessThanOrEqual(max);
    }
    expect(ct.table.count).toBe(max);
    expect(ct.table.earlyDrops).toBeGreaterThan(17_000);
    expect(tableFull).toBe(0);
    // Every assured flow survived and is still found by its tuple.
    const alive = new Set<number>();
    ct.table.forEach((s) => {
      alive.add(ct.table.id[s]);
    });
    for (const id of assured) expect(alive.has(id)).toBe(true);
    const r = track(ct, fakePacket({ src: C, dst: S, sport: 10007, dport: 443, flags: ACK, seq: 2, ack: 10 }), 2);
    expect(r.state).toBe(CtState.ESTABLISHED);
  });

  it('refuses new connections when every entry is assured (table full)', () => {
    const ct = new Conntrack({ maxEntries: 1024, initialCapacity: 1024 });
    for (let i = 0; i < 1024; i++) {
      const sport = 1000 + i;
      track(ct, fakePacket({ src: C, dst: S, sport, dport: 443, flags: SYN, seq: 1 }), 0);
      track(ct, fakePacket({ src: S, dst: C, sport: 443, dport: sport, flags: SYN | ACK, seq: 9, ack: 2 }), 0);
      track(ct, fakePacket({ src: C, dst: S, sport, dport: 443, flags: ACK, seq: 2, ack: 10 }), 0);
    }
    const r = track(ct, fakePacket({ src: C, dst: S, sport: 5, dport: 80, flags: SYN }), 1);
    expect(r.state).toBe(CtState.INVALID);
    expect(r.reason).toBe(InvalidReason.TABLE_FULL);
    expect(ct.table.count).toBe(1024);
  });

  it('grows its arrays and still finds every entry', () => {
    const ct = new Conntrack({ maxEntries: 100_000, initialCapacity: 1024 });
    for (let i = 0; i < 5000; i++) track(ct, fakePacket({ src: C, dst: S, proto: Proto.UDP, sport: i + 1, dport: 53 }), 0);
    expect(ct.table.capacity).toBeGreaterThanOrEqual(5000);
    for (let i = 0; i < 5000; i++) {
      const r = track(ct, fakePacket({ src: S, dst: C, proto: Proto.UDP, sport: 53, dport: i + 1 }), 1);
      expect(r.state).toBe(CtState.ESTABLISHED);
    }
  });

  it('counts connections per source and prefix for connlimit', () => {
    const ct = new Conntrack({ maxEntries: 100 });
    for (let i = 0; i < 5; i++) track(ct, fakePacket({ src: '10.1.0.5', dst: S, proto: Proto.UDP, sport: i + 1, dport: 53 }), 0);
    const one = fakePacket({ src: '10.1.0.5', dst: S });
    expect(ct.table.countBySource(4, one.src, 32)).toBe(5);
    expect(ct.table.countBySource(4, one.src, 24)).toBe(5);
    track(ct, fakePacket({ src: '10.1.0.6', dst: S, proto: Proto.UDP, sport: 1, dport: 53 }), 0);
    expect(ct.table.countBySource(4, one.src, 32)).toBe(5);
    expect(ct.table.countBySource(4, one.src, 24)).toBe(6);
    ct.table.flush();
    expect(ct.table.countBySource(4, one.src, 24)).toBe(0);
  });

  it('reports what changed in each update event', () => {
    const ct = new Conntrack({ maxEntries: 10 });
    const changes: number[] = [];
    ct.table.sink = { ctNew() {}, ctUpdate: (_t, _s, c) => changes.push(c), ctDestroy() {} };
    const q = fakePacket({ src: C, dst: S, proto: Proto.UDP, sport: 5, dport: 53 });
    track(ct, q, 0);
    track(ct, fakePacket({ src: S, dst: C, proto: Proto.UDP, sport: 53, dport: 5 }), 1);
    track(ct, q, 2);
    expect(changes[0] & CtChange.STATE).toBe(CtChange.STATE);
    expect(changes[1] & CtChange.STATE).toBe(0);
    expect(changes[1] & CtChange.COUNTERS).toBe(CtChange.COUNTERS);
  });
});

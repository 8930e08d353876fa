import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Engine, EngineResult } from '../../../src/node/engine/index.js';
import { compileRuleset, parseRuleset, Verdict } from '../../../src/node/filter/index.js';
import { buildIcmpEcho, buildTcp, buildUdp } from '../../../src/node/packet/build.js';
import { TcpFlag } from '../../../src/node/packet/fields.js';
import {
  ConntrackTable, CtState, CtStatus, ENTRY_RECORD_BYTES, ENTRY_RECORD_WORDS, EntryRecordError, ImportResult,
  checkEntryRecord, entryInfo, recordFromBytes, recordToBytes, type ConntrackEventSink,
} from '../../../src/node/conntrack/index.js';

const { SYN, ACK, FIN } = TcpFlag;
const IN = 2;
const OUT = 3;
const names: Record<number, string> = { [IN]: 'inside0', [OUT]: 'outside0' };
const C = '10.0.0.5';
const S = '203.0.113.7';
const V = '198.51.100.10';

const RULES = `
chains:
  forward:
    policy: drop
    rules:
      - match: { ctstate: [ESTABLISHED, RELATED] }
        target: ACCEPT
      - match: { in: inside0, ctstate: NEW }
        target: ACCEPT
nat:
  snat:
    - { out: outside0, src: 10.0.0.0/8, to: ${V} }
`;

function node(start: number) {
  let now = start;
  const engine = new Engine({
    conntrack: { maxEntries: 1000 },
    ruleset: compileRuleset(parseRuleset(RULES), { interfaceName: (i: number) => names[i] }),
    clock: () => now,
  });
  const out = new EngineResult();
  const send = (pkt: Uint8Array, inIf: number) => {
    now += 1;
    engine.process(pkt, 0, pkt.length, { inIf, outIf: inIf === IN ? OUT : IN, mark: 0, now }, out);
    return { verdict: out.verdict, ctState: out.ctState, slot: out.slot };
  };
  return { engine, send, now: () => now, advance: (ms: number) => (now += ms) };
}

/** A TCP connection with data both ways, a UDP exchange and a ping, all SNATed. */
function traffic(n: ReturnType<typeof node>): void {
  n.send(buildTcp({ src: C, dst: S, sport: 40000, dport: 443, flags: SYN, seq: 1000, mss: 1460, wscale: 7, sackPermitted: true }), IN);
  n.send(buildTcp({ src: S, dst: V, sport: 443, dport: 40000, flags: SYN | ACK, seq: 5000, ack: 1001, mss: 1460, wscale: 8, sackPermitted: true }), OUT);
  n.send(buildTcp({ src: C, dst: S, sport: 40000, dport: 443, flags: ACK, seq: 1001, ack: 5001, payload: 'GET / HTTP/1.0\r\n\r\n' }), IN);
  n.send(buildTcp({ src: S, dst: V, sport: 443, dport: 40000, flags: ACK, seq: 5001, ack: 1019, payloadLength: 1200 }), OUT);
  n.send(buildUdp({ src: C, dst: S, sport: 5353, dport: 53, payload: 'q' }), IN);
  n.send(buildUdp({ src: S, dst: V, sport: 53, dport: 5353, payload: 'a' }), OUT);
  n.send(buildIcmpEcho({ src: C, dst: S, id: 77, seq: 1 }), IN);
}

function exportAll(t: ConntrackTable, now: number): Uint32Array[] {
  const recs: Uint32Array[] = [];
  t.forEach((slot) => {
    const w = new Uint32Array(ENTRY_RECORD_WORDS);
    t.exportEntry(slot, now, w, 0);
    recs.push(w);
  });
  return recs;
}

/** What must survive a move, minus the local id. */
function comparable(t: ConntrackTable, slot: number, now: number) {
  const { id: _id, ...rest } = entryInfo(t, slot, now);
  const tcp = new Uint32Array(15);
  t.tcp.exportEntry(slot, tcp, 0);
  return { ...rest, tcp: [...tcp] };
}

describe('conntrack entry records', () => {
  it('move every entry whole into another table on another clock: tuples, NAT, state, window data, counters, timeouts', () => {
    const a = node(1_000_000);
    traffic(a);
    const b = node(50_000_000);
    const recs = exportAll(a.engine.conntrack.table, a.now());
    expect(recs).toHaveLength(3);
    for (const r of recs) expect(b.engine.conntrack.table.importEntry(r, 0, b.now())).toBe(ImportResult.CREATED);
    const ta = a.engine.conntrack.table;
    const tb = b.engine.conntrack.table;
    expect(tb.count).toBe(3);
    expect(tb.verify()).toEqual([]);
    const pa: unknown[] = [];
    const pb: unknown[] = [];
    ta.forEach((s) => pa.push(comparable(ta, s, a.now())));
    tb.forEach((s) => pb.push(comparable(tb, s, b.now())));
    expect(pb).toEqual(pa);
    // NAT: the outside ports are counted in the new node's pools.
    expect(b.engine.nat.poolStats().map((p) => [p.proto, p.portsInUse]).sort()).toEqual([[1, 1], [17, 1], [6, 1]].sort());
  });

  it('lets the TCP connection go on through the new table, window checks included', () => {
    const a = node(1_000_000);
    traffic(a);
    const b = node(7);
    for (const r of exportAll(a.engine.conntrack.table, a.now())) b.engine.conntrack.table.importEntry(r, 0, b.now());
    const next = b.send(buildTcp({ src: C, dst: S, sport: 40000, dport: 443, flags: ACK, seq: 1019, ack: 6201, payload: 'more' }), IN);
    expect([next.verdict, next.ctState]).toEqual([Verdict.ACCEPT, CtState.ESTABLISHED]);
    const reply = b.send(buildTcp({ src: S, dst: V, sport: 443, dport: 40000, flags: ACK, seq: 6201, ack: 1023 }), OUT);
    expect([reply.verdict, reply.ctState]).toEqual([Verdict.ACCEPT, CtState.ESTABLISHED]);
    // A segment far outside the copied window is still refused: the window data came along.
    const wild = b.send(buildTcp({ src: S, dst: V, sport: 443, dport: 40000, flags: ACK, seq: 6201 + 0x40000000, ack: 1023, payload: 'x' }), OUT);
    expect(wild.ctState).toBe(CtState.INVALID);
    // Teardown works and frees the NAT port.
    b.send(buildTcp({ src: C, dst: S, sport: 40000, dport: 443, flags: FIN | ACK, seq: 1023, ack: 6201 }), IN);
    b.engine.conntrack.table.flush();
    expect(b.engine.nat.poolStats().every((p) => p.portsInUse === 0)).toBe(true);
  });

  it('overwrites the entry with the same original tuple in place and reports it as an update', () => {
    const a = node(1_000_000);
    traffic(a);
    const ta = a.engine.conntrack.table;
    const recs = exportAll(ta, a.now());
    const events: string[] = [];
    const sink: ConntrackEventSink = {
      ctNew: () => events.push('new'),
      ctUpdate: () => events.push('update'),
      ctDestroy: () => events.push('destroy'),
    };
    a.engine.setEventSink(sink);
    recs[0][21] = 0xbeef; // mark
    expect(ta.importEntry(recs[0], 0, a.now())).toBe(ImportResult.UPDATED);
    expect(ta.markOf(ta.importedSlot)).toBe(0xbeef);
    expect([ta.count, events]).toEqual([3, ['update']]);
    expect(ta.verify()).toEqual([]);
    // The NAT port is still held once.
    expect(a.engine.nat.poolStats().find((p) => p.proto === 6)?.portsInUse).toBe(1);
  });

  it('destroys a local entry that holds the imported reply tuple (the record is the newer truth)', () => {
    const t = new ConntrackTable({ maxEntries: 10 });
    const a = node(0);
    traffic(a);
    const [rec] = exportAll(a.engine.conntrack.table, a.now());
    expect(t.importEntry(rec, 0, 0)).toBe(ImportResult.CREATED);
    // Same reply tuple, another original tuple (another inside host mapped to the same port).
    const other = rec.slice();
    other[0] = 0x0a000063;
    expect(t.importEntry(other, 0, 0)).toBe(ImportResult.CREATED);
    expect([t.count, t.importClashes]).toEqual([1, 1]);
    expect(t.verify()).toEqual([]);
  });

  it('reports a full table and changes nothing', () => {
    const a = node(0);
    traffic(a);
    const recs = exportAll(a.engine.conntrack.table, a.now());
    const t = new ConntrackTable({ maxEntries: 2 });
    // ASSURED entries are never early-dropped.
    for (const r of recs) r[20] |= CtStatus.ASSURED;
    expect(t.importEntry(recs[0], 0, 0)).toBe(ImportResult.CREATED);
    expect(t.importEntry(recs[1], 0, 0)).toBe(ImportResult.CREATED);
    expect(t.importEntry(recs[2], 0, 0)).toBe(ImportResult.TABLE_FULL);
    expect([t.count, t.importedSlot, t.verify()]).toEqual([2, -1, []]);
  });

  it('imports across a growth of the table (regression: records written into the old array)', () => {
    const a = node(0);
    traffic(a);
    const [, udp] = exportAll(a.engine.conntrack.table, a.now());
    const t = new ConntrackTable({ maxEntries: 5000, initialCapacity: 1024 });
    for (let i = 0; i < 3000; i++) {
      const r = udp.slice();
      r[8] = ((1024 + i) << 16) | 53; // another source port: another flow
      r[18] = (53 << 16) | (1024 + i);
      expect(t.importEntry(r, 0, 0)).toBe(ImportResult.CREATED);
    }
    expect(t.capacity).toBeGreaterThan(1024);
    expect([t.count, t.verify()]).toEqual([3000, []]);
    let zero = 0;
    t.forEach((s) => void (zero += t.tuples[t.tupleOffset(s, 0) + 9] === 0 ? 1 : 0));
    expect(zero).toBe(0);
  });

  it('imports a UDP entry with no TCP state, into a slot a TCP entry left as into a never used one, across growth', () => {
    const a = node(0);
    traffic(a);
    const [tcp, udp] = exportAll(a.engine.conntrack.table, a.now());
    expect(tcp[9] & 0xff).toBe(6);
    const t = new ConntrackTable({ maxEntries: 5000, initialCapacity: 1024 });
    const flow = (r: Uint32Array, i: number): Uint32Array => {
      const x = r.slice();
      x[8] = ((1024 + i) << 16) | (x[8] & 0xffff);
      x[18] = ((x[18] >>> 16) << 16) | (1024 + i);
      return x;
    };
    // TCP entries in the first 1500 slots, all destroyed: their slots go back to the free list.
    for (let i = 0; i < 1500; i++) expect(t.importEntry(flow(tcp, i), 0, 0)).toBe(ImportResult.CREATED);
    t.flush();
    // UDP entries: 1500 into those slots, then 1500 into slots never used (some past a growth).
    for (let i = 0; i < 3000; i++) expect(t.importEntry(flow(udp, i), 0, 0)).toBe(ImportResult.CREATED);
    expect([t.count, t.verify()]).toEqual([3000, []]);
    const words = new Uint32Array(15);
    let withTcp = 0;
    t.forEach((s) => {
      t.tcp.exportEntry(s, words, 0);
      if (words.some((x) => x !== 0) || t.tcp.stateOf(s) !== 0) withTcp++;
    });
    expect(withTcp).toBe(0);
  });

  it('fills a prefaulted table without the page faults of first touch (a resync into a preallocated table)', () => {
    const a = node(0);
    traffic(a);
    const [, udp] = exportAll(a.engine.conntrack.table, a.now());
    const n = 100_000;
    const recs = new Uint32Array(n * ENTRY_RECORD_WORDS);
    for (let i = 0; i < n; i++) {
      recs.set(udp, i * ENTRY_RECORD_WORDS);
      recs[i * ENTRY_RECORD_WORDS] = (10 << 24) | i; // another source address: another flow
      recs[i * ENTRY_RECORD_WORDS + 14] = (10 << 24) | i;
    }
    const faults = (prefault: boolean): number => {
      const t = new ConntrackTable({ maxEntries: n, initialCapacity: n, prefault });
      const before = process.resourceUsage().minorPageFault;
      for (let i = 0; i < n; i++) t.importEntry(recs, i * ENTRY_RECORD_WORDS, 0);
      const f = process.resourceUsage().minorPageFault - before;
      expect([t.count, t.verify()]).toEqual([n, []]);
      return f;
    };
    // The records alone span n * 192 / 4096 = 4688 pages; first touch faults on each.
    const pages = (n * 192) / 4096;
    expect(faults(false)).toBeGreaterThan(pages / 2);
    expect(faults(true)).toBeLessThan(pages / 4);
  });

  it('round-trips through little-endian bytes', () => {
    const a = node(0);
    traffic(a);
    for (const r of exportAll(a.engine.conntrack.table, a.now())) {
      const b = new Uint8Array(ENTRY_RECORD_BYTES + 3);
      recordToBytes(r, 0, b, 3);
      const back = new Uint32Array(ENTRY_RECORD_WORDS);
      recordFromBytes(b, 3, back, 0);
      expect([...back]).toEqual([...r]);
      expect(b[3 + 21 * 4]).toBe(r[21] & 0xff);
    }
  });

  it('refuses impossible records with a reason, before touching the table', () => {
    const a = node(0);
    traffic(a);
    const [tcp, udp] = exportAll(a.engine.conntrack.table, a.now());
    const cases: [string, (w: Uint32Array) => void, RegExp][] = [
      ['family', (w) => (w[9] = (5 << 8) | 6), /family 5/],
      ['ipv4 high words', (w) => (w[2] = 1), /IPv4 address/],
      ['proto mismatch', (w) => (w[19] = (4 << 8) | 17), /differ/],
      ['status', (w) => (w[20] |= 0x8000), /status/],
      ['timeout', (w) => (w[23] = 0xffffffff), /10 days/],
      ['tcp state', (w) => (w[33] = 200), /TCP data/],
    ];
    // The same faults in a record that is not TCP (checked by a shorter path first).
    const udpCases: [string, (w: Uint32Array) => void, RegExp][] = [
      ['family', (w) => (w[19] = (7 << 8) | 17), /family 7/],
      ['ipv4 high words', (w) => (w[15] = 1), /IPv4 address/],
      ['proto mismatch', (w) => (w[19] = (4 << 8) | 6), /differ/],
      ['status', (w) => (w[20] |= 0x8000), /status/],
      ['timeout', (w) => (w[23] = 10 * 24 * 3600 * 1000 + 1), /10 days/],
      ['counter above 2^53', (w) => (w[25] = 0x200000), /counter/],
      ['counter high bit', (w) => (w[31] = 0x80000000), /counter/],
      ['ports without a protocol', (w) => ((w[9] = 4 << 8), (w[19] = 4 << 8)), /protocol 0 with ports/],
    ];
    const t = new ConntrackTable({ maxEntries: 10 });
    for (const [base, list] of [[tcp, cases], [udp, udpCases]] as const) {
      for (const [, mutate, why] of list) {
        const w = base.slice();
        mutate(w);
        expect(checkEntryRecord(w, 0)).toMatch(why);
        expect(() => t.importEntry(w, 0, 0)).toThrow(EntryRecordError);
      }
    }
    expect(checkEntryRecord(udp, 0)).toBeNull();
    const u = udp.slice();
    u[40] = 1;
    expect(checkEntryRecord(u, 0)).toMatch(/not TCP/);
    expect(checkEntryRecord(tcp.subarray(0, 47), 0)).toMatch(/truncated/);
    expect(t.count).toBe(0);
  });

  it('never corrupts the table, whatever the words (fuzz)', () => {
    const a = node(0);
    traffic(a);
    const seeds = exportAll(a.engine.conntrack.table, a.now());
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: seeds.length - 1 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: ENTRY_RECORD_WORDS - 1 }), fc.integer({ min: 0, max: 0xffffffff })), { maxLength: 4 }),
        (which, flips) => {
          const t = new ConntrackTable({ maxEntries: 4 });
          for (const r of seeds) t.importEntry(r, 0, 0);
          const w = seeds[which].slice();
          for (const [i, v] of flips) w[i] = v;
          try {
            t.importEntry(w, 0, 0);
          } catch (e) {
            expect(e).toBeInstanceOf(EntryRecordError);
          }
          expect(t.verify()).toEqual([]);
        },
      ),
      { numRuns: 2000 },
    );
  });
});

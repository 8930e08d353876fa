/**
 * The conntrack table's hash index (open addressing, linear probing, deletion by shifting back)
 * against a model: any sequence of creates, destroys, NAT re-mappings and growth leaves every
 * live entry found by both tuples, every gone one not found, and the index consistent.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ConntrackTable, DestroyReason, ENTRY_RECORD_WORDS, REC_WORDS } from '../../../src/node/conntrack/index.js';
import { hashTuple } from '../../../src/node/conntrack/tuple.js';

/** A UDP record for flow k: 10.0.k/256.k%256:k -> 203.0.113.8:53, replied to address `nat`. */
function record(k: number, nat: number): Uint32Array {
  const w = new Uint32Array(ENTRY_RECORD_WORDS);
  w[0] = (10 << 24) | k;
  w[4] = 0xcb007108;
  w[8] = ((1024 + (k & 0x3fff)) << 16) | 53;
  w[9] = (4 << 8) | 17;
  w[10] = 0xcb007108;
  w[14] = nat === 0 ? w[0] : (198 << 24) | nat;
  w[18] = (53 << 16) | (1024 + (k & 0x3fff));
  w[19] = (4 << 8) | 17;
  w[23] = 30_000;
  return w;
}

type Op = { kind: 'create' | 'destroy'; k: number; nat: number };

const op = fc.record({ kind: fc.constantFrom<'create' | 'destroy'>('create', 'create', 'destroy'), k: fc.integer({ min: 0, max: 2999 }), nat: fc.integer({ min: 0, max: 3 }) });

function run(ops: Op[], seed: number): void {
  // Starts at 1024 slots and grows twice on the way to 3000 entries.
  const t = new ConntrackTable({ maxEntries: 4096, initialCapacity: 1024, seed });
  const live = new Map<number, Uint32Array>();
  for (const o of ops) {
    const cur = live.get(o.k);
    if (o.kind === 'create') {
      // A new entry, or the same flow re-imported with another NAT mapping (reply tuple moved).
      const w = record(o.k, o.nat);
      t.importEntry(w, 0, 0);
      live.set(o.k, w);
    } else if (cur !== undefined) {
      const node = t.lookup(cur, 0);
      expect(node).toBeGreaterThanOrEqual(0);
      t.destroy(node >> 1, DestroyReason.DELETED);
      live.delete(o.k);
    }
  }
  expect(t.verify()).toEqual([]);
  expect(t.count).toBe(live.size);
  for (let k = 0; k < 3000; k++) {
    const w = live.get(k);
    if (w === undefined) {
      expect(t.lookup(record(k, 0), 0)).toBe(-1);
      continue;
    }
    const node = t.lookup(w, 0);
    expect(node & 1).toBe(0);
    expect(t.lookup(w, 10)).toBe(node + 1);
    // The reply tuples of the mappings it no longer has are not found.
    for (let nat = 0; nat < 4; nat++) {
      const other = record(k, nat);
      if (other[14] !== w[14]) expect(t.lookup(other, 10)).toBe(-1);
    }
  }
}

describe('conntrack hash index', () => {
  it('finds exactly the live entries after any creates, destroys, re-mappings and growth (property)', () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 4000 }), fc.integer({ min: 0, max: 0xffffffff }), (ops, seed) => run(ops, seed)),
      { numRuns: 40 },
    );
  });

  it('stays consistent when imports clash with other entries and evict them at the limit (property)', () => {
    // Flows 0..599 into a table of 128: imports evict (early drop), and a record whose reply tuple
    // is another flow's original tuple destroys that flow first. Each such removal shifts nodes
    // between an import's lookups and its inserts, which must then not start where the lookups
    // ended (table.ts #insertFrom).
    const imp = fc.record({ k: fc.integer({ min: 0, max: 599 }), clashWith: fc.option(fc.integer({ min: 0, max: 599 }), { freq: 3 }) });
    let drops = 0;
    let clashes = 0;
    fc.assert(
      fc.property(fc.array(imp, { minLength: 800, maxLength: 1500 }), fc.integer({ min: 0, max: 0xffffffff }), (ops, seed) => {
        const t = new ConntrackTable({ maxEntries: 128, initialCapacity: 64, seed });
        for (const o of ops) {
          const w = record(o.k, 0);
          if (o.clashWith !== null && o.clashWith !== o.k) w.set(record(o.clashWith, 0).subarray(0, 10), 10);
          t.importEntry(w, 0, 0);
        }
        expect(t.verify()).toEqual([]);
        let n = 0;
        t.forEach((slot) => {
          n++;
          const r = slot * REC_WORDS;
          expect(t.lookup(t.tuples, r)).toBe(slot * 2);
          expect(t.lookup(t.tuples, r + 10)).toBe(slot * 2 + 1);
        });
        expect(n).toBe(t.count);
        drops += t.earlyDrops;
        clashes += t.importClashes;
      }),
      { numRuns: 60 },
    );
    // The runs did what they are for.
    expect(drops).toBeGreaterThan(1000);
    expect(clashes).toBeGreaterThan(1000);
  });

  it('survives filling to the limit and emptying again, in any order', () => {
    const t = new ConntrackTable({ maxEntries: 4096, initialCapacity: 4096, seed: 7 });
    const recs = Array.from({ length: 4096 }, (_, k) => record(k, k % 3));
    for (const w of recs) t.importEntry(w, 0, 0);
    expect([t.count, t.verify()]).toEqual([4096, []]);
    // Destroy in a scrambled order: every removal shifts the runs after it.
    for (let i = 0; i < 4096; i++) {
      const w = recs[(i * 2654435761) % 4096 >>> 0];
      const node = t.lookup(w, 0);
      expect(node).toBeGreaterThanOrEqual(0);
      t.destroy(node >> 1, DestroyReason.DELETED);
      if (i % 512 === 0) expect(t.verify()).toEqual([]);
    }
    expect([t.count, t.verify()]).toEqual([0, []]);
    for (const w of recs) expect(t.lookup(w, 0)).toBe(-1);
  });

  it('imports in batches (hashBatch, then importHashed with its hashes) exactly as one by one, re-mappings within a batch included', () => {
    const one = new ConntrackTable({ maxEntries: 4096, initialCapacity: 1024, seed: 11 });
    const batched = new ConntrackTable({ maxEntries: 4096, initialCapacity: 1024, seed: 11 });
    // Each flow twice, the second time with another NAT mapping, in batches of 35 records.
    const recs: Uint32Array[] = [];
    for (let k = 0; k < 1500; k++) recs.push(record(k, 0), record((k * 7) % 1500, 1 + (k % 3)));
    const W = ENTRY_RECORD_WORDS;
    const buf = new Uint32Array(35 * W);
    const hashes = new Int32Array(70);
    for (let i = 0; i < recs.length; i += 35) {
      const n = Math.min(35, recs.length - i);
      for (let j = 0; j < n; j++) buf.set(recs[i + j], j * W);
      batched.hashBatch(buf, 0, W, n, hashes);
      for (let j = 0; j < n; j++) {
        expect(hashes[2 * j]).toBe(hashTuple(buf, j * W, batched.seed) | 0);
        expect(hashes[2 * j + 1]).toBe(hashTuple(buf, j * W + 10, batched.seed) | 0);
        expect(batched.importHashed(buf, j * W, 0, 0, false, 0, hashes[2 * j], hashes[2 * j + 1])).toBe(one.importEntry(recs[i + j], 0, 0));
      }
    }
    expect([batched.count, batched.verify()]).toEqual([one.count, []]);
    for (let k = 0; k < 1500; k++) {
      const w = record(k, 0);
      const a = one.lookup(w, 0);
      const b = batched.lookup(w, 0);
      expect(b >= 0).toBe(a >= 0);
      if (a >= 0) {
        const rb = (b >> 1) * REC_WORDS;
        const ra = (a >> 1) * REC_WORDS;
        expect(Array.from(batched.tuples.subarray(rb, rb + 22))).toEqual(Array.from(one.tuples.subarray(ra, ra + 22)));
      }
    }
  });
});


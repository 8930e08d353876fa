import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ExpectationTable } from '../../../src/node/conntrack/expect.js';
import { TUPLE_WORDS } from '../../../src/node/conntrack/tuple.js';

/** A TCP/IPv4 tuple 10.0.0.a:sport -> 10.0.1.b:dport. */
function tuple(a: number, b: number, sport: number, dport: number): Uint32Array {
  const t = new Uint32Array(TUPLE_WORDS);
  t[0] = (0x0a000000 | a) >>> 0;
  t[4] = (0x0a000100 | b) >>> 0;
  t[8] = ((sport << 16) | dport) >>> 0;
  t[9] = (4 << 8) | 6;
  return t;
}

function mask(wildSport: boolean, wildDport: boolean): Uint32Array {
  const m = new Uint32Array(TUPLE_WORDS).fill(0xffffffff);
  m[8] = ((wildSport ? 0 : 0xffff0000) | (wildDport ? 0 : 0xffff)) >>> 0;
  return m;
}

describe('ExpectationTable', () => {
  it('property: matches exactly what a linear scan of the live expectations matches, through adds and removes (the per-port index never hides one)', () => {
    const ids = new Uint32Array(64).fill(1);
    const op = fc.oneof(
      fc.record({ kind: fc.constant('add' as const), a: fc.integer({ min: 1, max: 3 }), b: fc.integer({ min: 1, max: 3 }), sport: fc.integer({ min: 1, max: 3 }), dport: fc.integer({ min: 1, max: 4 }), ws: fc.boolean(), wd: fc.boolean() }),
      fc.record({ kind: fc.constant('remove' as const), i: fc.nat(20) }),
      fc.record({ kind: fc.constant('match' as const), a: fc.integer({ min: 1, max: 3 }), b: fc.integer({ min: 1, max: 3 }), sport: fc.integer({ min: 1, max: 3 }), dport: fc.integer({ min: 1, max: 4 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const t = new ExpectationTable(16, 64);
        const model = new Map<number, { t: Uint32Array; m: Uint32Array }>();
        for (const o of ops) {
          if (o.kind === 'add') {
            const tt = tuple(o.a, o.b, o.sport, o.dport);
            const mm = mask(o.ws, o.wd);
            try {
              const idx = t.add({ masterSlot: 0, masterId: 1, tuple: tt, mask: mm, timeoutMs: 1000 }, 0);
              model.set(idx, { t: tt.map((w, k) => (w & mm[k]) >>> 0), m: mm });
            } catch {
              expect(model.size).toBe(16);
            }
          } else if (o.kind === 'remove') {
            t.remove(o.i % 16);
            model.delete(o.i % 16);
          } else {
            const w = tuple(o.a, o.b, o.sport, o.dport);
            const got = t.match(w, 0, 1, ids);
            const hits = [...model.entries()].filter(([, e]) => e.t.every((v, k) => k === 9 ? w[9] === v : ((w[k] & e.m[k]) >>> 0) === v)).map(([i]) => i);
            if (hits.length === 0) expect(got).toBe(-1);
            else expect(hits).toContain(got);
          }
        }
        expect(t.count).toBe(model.size);
      }),
      { numRuns: 500 },
    );
  });
});

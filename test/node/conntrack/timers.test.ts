import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { TimerWheel } from '../../../src/node/conntrack/timers.js';

class Collect {
  expired: [number, number][] = [];
  expire(slot: number, now: number) {
    this.expired.push([slot, now]);
  }
}

describe('timer wheel', () => {
  it('expires a slot within one tick after its deadline, never before', () => {
    const w = new TimerWheel(16, 100, 64);
    const c = new Collect();
    w.insert(3, 1050);
    w.advance(1000, c);
    expect(c.expired).toEqual([]);
    w.advance(1049, c);
    expect(c.expired).toEqual([]);
    w.advance(1150, c);
    expect(c.expired).toEqual([[3, 1150]]);
    expect(w.linked).toBe(0);
  });

  it('follows a lazily refreshed deadline and deadlines beyond one revolution', () => {
    const w = new TimerWheel(16, 100, 64); // one revolution = 6.4 s
    const c = new Collect();
    w.insert(1, 500);
    w.insert(2, 100_000);
    w.update(1, 20_000); // refreshed by traffic: extended, not relinked
    for (let t = 0; t <= 19_900; t += 100) w.advance(t, c);
    expect(c.expired).toEqual([]);
    w.advance(20_100, c);
    expect(c.expired.map((e) => e[0])).toEqual([1]);
    w.advance(99_900, c);
    expect(c.expired.length).toBe(1);
    w.advance(100_200, c);
    expect(c.expired.map((e) => e[0])).toEqual([1, 2]);
  });

  it('never loses or early-expires a slot (random deadlines, refreshes and clock jumps)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 31 }), fc.integer({ min: 0, max: 50_000 })), { maxLength: 60 }),
        fc.array(fc.integer({ min: 1, max: 20_000 }), { minLength: 1, maxLength: 40 }),
        (ops, steps) => {
          const w = new TimerWheel(32, 250, 16);
          const c = new Collect();
          const live = new Map<number, number>();
          let now = 0;
          for (const [slot, d] of ops) {
            if (live.has(slot)) {
              // A refresh extends; a state change (or a sync update) may shorten it.
              w.update(slot, d);
              live.set(slot, d);
            } else {
              w.insert(slot, d);
              live.set(slot, d);
            }
          }
          for (const s of steps) {
            now += s;
            w.advance(now, c);
            for (const [slot, t] of c.expired) {
              expect(live.get(slot)).toBeLessThanOrEqual(t);
              live.delete(slot);
            }
            c.expired.length = 0;
            for (const [, d] of live) expect(d).toBeGreaterThan(now - 250);
          }
          expect(w.linked).toBe(live.size);
        },
      ),
    );
  });

  it('expires on time a deadline shortened below its bucket (ESTABLISHED -> CLOSE)', () => {
    const w = new TimerWheel(4, 250, 4096);
    const c = new Collect();
    w.advance(0, c);
    w.insert(0, 432_000_000); // 5 days
    w.advance(1000, c);
    w.update(0, 11_000); // RST: CLOSE, 10 s
    w.advance(10_999, c);
    expect(c.expired).toEqual([]);
    w.advance(11_250, c);
    expect(c.expired.map((e) => e[0])).toEqual([0]);
  });

  it('expires on time a deadline shortened before the wheel ever moved (a node that just started, taking its peer\'s table)', () => {
    const w = new TimerWheel(4, 250, 4096);
    const c = new Collect();
    const now = 1_795_459_000_000; // ms since 1970, as the engine's clock
    w.insert(0, now + 432_000_000); // the resync brought it ESTABLISHED (5 days)
    w.update(0, now + 5000); // an update: CLOSE now, 5 s left
    w.advance(now + 1000, c);
    expect(c.expired).toEqual([]);
    w.advance(now + 5250, c);
    expect(c.expired.map((e) => e[0])).toEqual([0]);
  });

  it('removes a slot so it never fires', () => {
    const w = new TimerWheel(4, 100, 8);
    const c = new Collect();
    w.insert(0, 100);
    w.insert(1, 100);
    w.remove(0);
    w.advance(1000, c);
    expect(c.expired.map((e) => e[0])).toEqual([1]);
  });
});

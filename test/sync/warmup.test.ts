/**
 * The sync warm-up (src/sync/warmup.ts): whole resyncs between two scratch nodes in this process,
 * so that the receive and dump paths are optimised before a real dump. What it must do: finish
 * its rounds, apply every entry of each, and leave nothing behind (no timers, no sockets).
 */
import { describe, expect, it } from 'vitest';
import { warmUpResync } from '../../src/sync/index.js';

describe('sync warm-up', () => {
  it('runs its resyncs to the end between scratch nodes, every entry applied each round', async () => {
    const r = await warmUpResync({ entries: 2048, rounds: 2 });
    expect(r.rounds).toBe(2);
    expect(r.applied).toBe(2 * 2048);
  });

  it('gives up at its time limit instead of holding a start up', async () => {
    const t0 = performance.now();
    const r = await warmUpResync({ entries: 200_000, rounds: 50, limitMs: 150 });
    expect(r.rounds).toBeLessThan(50);
    // The round under way when the limit passed is cut short; closing takes a moment.
    expect(performance.now() - t0).toBeLessThan(1500);
  });
});

import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { Writable } from 'node:stream';
import { SyncWatch } from '../../../src/node/daemon/sync-watch.js';
import type { SyncNode } from '../../../src/sync/index.js';

/** A SyncNode as far as SyncWatch reads it: the figures and the peer. */
function fakeSync(): { stats: Record<string, unknown> & { drops: Record<string, number> }; peer: Record<string, unknown> } {
  return {
    stats: { resyncsCompleted: 0, resyncsShort: 0, resyncSwept: 0, entriesTableFull: 0, entriesRefused: 0, authFailures: 0, drops: {} },
    peer: { id: 2, epoch: 1_700_000_000_000, lastContact: 0, synced: false },
  };
}

function capture(): { log: pino.Logger; lines: { level: number; msg: string }[] } {
  const lines: { level: number; msg: string }[] = [];
  const sink = new Writable({ write(chunk: Buffer, _e, cb) { lines.push(JSON.parse(chunk.toString()) as { level: number; msg: string }); cb(); } });
  return { log: pino({ level: 'info' }, sink), lines };
}

describe('SyncWatch (the node log of sync events)', () => {
  it('logs a complete resync at info, and one that ended short as a warning with what to change', async () => {
    const s = fakeSync();
    const { log, lines } = capture();
    const w = new SyncWatch(s as unknown as SyncNode, log, 0);
    w.poll(1);
    s.stats.resyncsCompleted = 1;
    w.poll(2);
    s.stats.resyncsCompleted = 2;
    s.stats.resyncsShort = 1;
    s.stats.entriesTableFull = 2000;
    w.poll(3);
    await new Promise((r) => setImmediate(r));
    const resyncs = lines.filter((l) => l.msg.startsWith('sync resync completed'));
    expect(resyncs.map((l) => l.level)).toEqual([30, 40]);
    expect(resyncs[0].msg).toMatch(/holds the peer's whole table/);
    expect(resyncs[1]).toMatchObject({ tableFull: 2000 });
    expect(resyncs[1].msg).toMatch(/SHORT.*does not hold the peer's whole table.*conntrack.maxEntries/);
  });
});

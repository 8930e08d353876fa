import { afterEach, describe, expect, it } from 'vitest';
import { ApiResponseError, ControlClient, type SyncStatus } from '../../../src/node/control/index.js';
import { feedTraffic, startTestNode, type TestNode } from '../daemon/fixture.js';
import { startSyncPair, synced, until, type SyncPair } from '../daemon/sync-pair.js';

let p: SyncPair | null = null;
let t: TestNode | null = null;
afterEach(async () => {
  await p?.cleanup();
  await t?.cleanup();
  p = null;
  t = null;
});

describe('GET /sync/status', () => {
  it('answers 409 SYNC_NOT_CONFIGURED on a node without sync', async () => {
    t = await startTestNode();
    const err = await new ControlClient(t.socket).call('GET', '/sync/status').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiResponseError);
    expect(err).toMatchObject({ status: 409, code: 'SYNC_NOT_CONFIGURED' });
    expect((err as Error).message).toContain('add a sync section');
  });

  it('reports the link, the peer, our sequence numbers, lag percentiles and the counters', async () => {
    p = await startSyncPair();
    await synced(p);
    feedTraffic(p.a);
    const client = new ControlClient(p.a.socket);
    await until(() => {
      const s = p!.a.node.sync!;
      return s.stats.entriesSent.create === 2 && s.sender.peerApplied === s.sender.nextSeq - 1 && s.lagPercentile(50) >= 0;
    }, 'the entries sent and the peer to report them applied');
    const s = await client.call<SyncStatus>('GET', '/sync/status');
    expect(s.nodeId).toBe(1);
    expect(s.link).toEqual({ interface: 'sync0', address: '192.168.50.1', mode: 'multicast', group: '225.0.0.50', peer: null, port: 3780, mtu: 1500 });
    expect(s.peer).toMatchObject({ id: 2, synced: true, resyncPending: false, held: 0 });
    expect(s.peer!.lastContactAgoMs).toBeLessThan(1000);
    expect(s.sender.nextSeq).toBeGreaterThan(1);
    // A refresh may have gone out since: the figures agree with each other.
    expect(s.sender.peerApplied).toBeGreaterThan(0);
    expect(s.sender.unapplied).toBe(s.sender.nextSeq - 1 - s.sender.peerApplied);
    expect(s.lag.p50Ms).toBeGreaterThanOrEqual(0);
    expect(s.lag.p99Ms).toBeGreaterThanOrEqual(s.lag.p50Ms!);
    expect(s.stats.entriesSent.create).toBe(2);
    expect(s.stats.sent.update).toBeGreaterThan(0);
    expect(s.stats.resyncsCompleted).toBe(1);
    expect(s.stats).toMatchObject({ authFailures: 0, replaysDropped: expect.any(Number), nacksSent: 0 });
    await expect(client.call('GET', '/sync/status?x=1')).rejects.toMatchObject({ code: 'REQUEST_INVALID' });
    await expect(client.call('POST', '/sync/status')).rejects.toMatchObject({ code: 'METHOD_NOT_ALLOWED' });
  });
});

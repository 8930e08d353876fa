import { afterEach, describe, expect, it } from 'vitest';
import { feedTraffic, startTestNode } from '../daemon/fixture.js';
import { startSyncPair, synced, until, type SyncPair } from '../daemon/sync-pair.js';
import { unappliedMessages } from '../../../src/node/metrics/index.js';
import { parseExposition, value } from './exposition.js';

let p: SyncPair | null = null;
afterEach(async () => {
  await p?.cleanup();
  p = null;
});

async function scrape(t: SyncPair['a']): Promise<ReturnType<typeof parseExposition>> {
  const addr = t.node.metricsAddress()!;
  return parseExposition(await (await fetch(`http://127.0.0.1:${addr.port}/metrics`)).text());
}

describe('/metrics with sync', () => {
  it('exposes the twinwall_sync_* series, read from the sync figures at scrape time', async () => {
    p = await startSyncPair();
    await synced(p);
    feedTraffic(p.a);
    const a = p.a;
    // The peer applied everything and reported it, with lag samples.
    await until(() => {
      const s = a.node.sync!;
      return s.stats.entriesSent.create === 2 && s.lagPercentile(50) >= 0 && unappliedMessages(s.sender) === 0;
    }, 'the entries sent and the peer to report them applied');
    // In-process, in the same turn of the event loop as the check above: no message can go out
    // in between (the HTTP path is the same registry, tested in metrics.test.ts and below).
    const { samples, types } = parseExposition(await a.node.metrics.metrics());
    const stats = a.node.sync!.stats;

    expect(types.get('twinwall_sync_lag_seconds')).toBe('histogram');
    expect(value(samples, 'twinwall_sync_lag_seconds_count')).toBeGreaterThan(0);
    expect(samples.filter((s) => s.name === 'twinwall_sync_lag_seconds_bucket').map((s) => s.labels.le))
      .toEqual(['0.0001', '0.00025', '0.0005', '0.001', '0.0025', '0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '+Inf']);
    expect(types.get('twinwall_sync_messages_sent_total')).toBe('counter');
    expect(value(samples, 'twinwall_sync_messages_sent_total', { type: 'update' })).toBe(stats.sent.update);
    expect(value(samples, 'twinwall_sync_messages_sent_total', { type: 'update' })).toBeGreaterThan(0);
    expect(value(samples, 'twinwall_sync_messages_sent_total', { type: 'nack' })).toBe(0);
    expect(value(samples, 'twinwall_sync_messages_received_total', { type: 'report' })).toBeGreaterThan(0);
    expect(value(samples, 'twinwall_sync_bytes_sent_total')).toBe(stats.sentBytes);
    expect(value(samples, 'twinwall_sync_bytes_received_total')).toBe(stats.receivedBytes);
    expect(value(samples, 'twinwall_sync_nacks_total', { direction: 'sent' })).toBe(0);
    expect(value(samples, 'twinwall_sync_nacks_total', { direction: 'received' })).toBe(0);
    expect(value(samples, 'twinwall_sync_retransmitted_total')).toBe(0);
    expect(value(samples, 'twinwall_sync_resyncs_total', { kind: 'requested' })).toBeGreaterThanOrEqual(1);
    expect(value(samples, 'twinwall_sync_resyncs_total', { kind: 'served' })).toBeGreaterThanOrEqual(1);
    expect(value(samples, 'twinwall_sync_resyncs_total', { kind: 'completed' })).toBe(1);
    expect(value(samples, 'twinwall_sync_auth_failures_total')).toBe(0);
    expect(value(samples, 'twinwall_sync_replays_dropped_total')).toBe(stats.replaysDropped);
    expect(value(samples, 'twinwall_sync_drops_total', { reason: 'bad_mac' })).toBe(0);
    expect(value(samples, 'twinwall_sync_entries_sent_total', { op: 'create' })).toBe(2);
    expect(value(samples, 'twinwall_sync_lag_messages')).toBe(0);
    expect(value(samples, 'twinwall_sync_peer_synced')).toBe(1);
    const contact = value(samples, 'twinwall_sync_peer_last_contact_seconds')!;
    expect(contact).toBeGreaterThanOrEqual(0);
    expect(contact).toBeLessThan(1);
    expect(samples.filter((s) => s.name.startsWith('twinwall_sync_')).every((s) => s.labels.node === 'fw-a')).toBe(true);

    // The standby applied both entries.
    const b = await scrape(p.b);
    expect(value(b.samples, 'twinwall_sync_entries_applied_total', { op: 'create' })).toBe(2);
    expect(value(b.samples, 'twinwall_sync_entries_applied_total', { op: 'destroy' })).toBe(0);
  });

  it('counts authentication failures, and says +Inf for a peer never heard', async () => {
    p = await startSyncPair({ keys: [`${'3c'.repeat(32)}\n`, `${'7d'.repeat(32)}\n`] });
    await until(() => (p!.a.node.sync?.stats.authFailures ?? 0) > 0, 'a datagram signed with the other key');
    const { samples } = await scrape(p.a);
    expect(value(samples, 'twinwall_sync_auth_failures_total')).toBeGreaterThan(0);
    expect(value(samples, 'twinwall_sync_drops_total', { reason: 'bad_mac' })).toBeGreaterThan(0);
    expect(value(samples, 'twinwall_sync_peer_last_contact_seconds')).toBe(Infinity);
    expect(value(samples, 'twinwall_sync_peer_synced')).toBe(0);
  });

  it('has no sync series on a node without sync', async () => {
    const t = await startTestNode();
    try {
      const { samples } = parseExposition(await t.node.metrics.metrics());
      expect(samples.filter((s) => s.name.startsWith('twinwall_sync_'))).toEqual([]);
    } finally {
      await t.cleanup();
    }
  });
});

describe('unappliedMessages', () => {
  it('counts what the peer has not applied, all before its first report, across wraparound', () => {
    expect(unappliedMessages({ nextSeq: 1, peerApplied: -1 })).toBe(0);
    expect(unappliedMessages({ nextSeq: 11, peerApplied: -1 })).toBe(10);
    expect(unappliedMessages({ nextSeq: 11, peerApplied: 7 })).toBe(3);
    expect(unappliedMessages({ nextSeq: 11, peerApplied: 10 })).toBe(0);
    expect(unappliedMessages({ nextSeq: 2, peerApplied: 0xfffffffe })).toBe(3); // 0xffffffff, 0, 1
  });
});

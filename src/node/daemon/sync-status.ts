/** GET /sync/status from the running SyncNode and its config. */
import type { SyncStatus } from '../control/index.js';
import { unappliedMessages } from '../metrics/index.js';
import type { SyncNode } from '../../sync/index.js';
import type { SyncConfig } from './sync-config.js';

const orNull = (v: number): number | null => (Number.isNaN(v) ? null : v);

export function syncStatus(sync: SyncNode, c: SyncConfig, now: number): SyncStatus {
  const s = sync.stats;
  const p = sync.peer;
  return {
    nodeId: c.nodeId,
    epoch: sync.epoch,
    link: {
      interface: c.interface, address: c.address, mode: c.group !== null ? 'multicast' : 'unicast', group: c.group, peer: c.peer,
      port: c.port, mtu: c.mtu,
    },
    peer: p === null ? null : {
      id: p.id, epoch: p.epoch, lastContactAgoMs: Math.max(0, now - p.lastContact), synced: p.synced, resyncPending: p.resyncPending,
      expected: p.expected, peerNext: p.peerNext, held: p.held,
    },
    sender: {
      nextSeq: sync.sender.nextSeq, peerApplied: sync.sender.peerApplied, unapplied: unappliedMessages(sync.sender), resyncing: sync.sender.resyncing,
    },
    lag: { p50Ms: orNull(sync.lagPercentile(50)), p99Ms: orNull(sync.lagPercentile(99)) },
    stats: {
      sent: { ...s.sent }, received: { ...s.received }, sentBytes: s.sentBytes, receivedBytes: s.receivedBytes, drops: { ...s.drops },
      entriesSent: { ...s.entriesSent }, entriesApplied: { ...s.entriesApplied }, entriesRefused: s.entriesRefused,
      entriesTableFull: s.entriesTableFull, entriesKeptLocal: s.entriesKeptLocal, nacksSent: s.nacksSent, nacksReceived: s.nacksReceived, retransmitted: s.retransmitted,
      nackedGone: s.nackedGone, resyncsRequested: s.resyncsRequested, resyncsServed: s.resyncsServed, resyncsCompleted: s.resyncsCompleted, resyncsShort: s.resyncsShort,
      resyncSwept: s.resyncSwept, gaps: s.gaps, authFailures: s.authFailures, replaysDropped: s.replaysDropped,
    },
  };
}

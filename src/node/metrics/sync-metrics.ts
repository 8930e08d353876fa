/**
 * State sync metrics (twinwall_sync_*), registered when the node has a sync section. Counters are
 * read from SyncStats at scrape time like the engine's; only the lag histogram is observed as
 * samples come (from REPORTs, at most a few dozen a second, never per packet).
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { MsgType, RecvDrop, type SyncNode } from '../../sync/index.js';

export interface SyncMetricsSource {
  /** The running sync, or null before it started. */
  sync: () => SyncNode | null;
  /** Now on the clock sync runs on (the engine's), ms. */
  now: () => number;
}

/** Message type names as SyncStats counts them (update, resync_end, alive...). */
const msgTypes = Object.keys(MsgType).map((k) => k.toLowerCase());
const dropReasons = Object.values(RecvDrop);
const entryOps = ['create', 'update', 'destroy'] as const;

/** Lag buckets (seconds): 0.1 ms to 1 s. */
export const SYNC_LAG_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

/**
 * Our data messages the peer has not applied yet: sent (nextSeq - 1) minus the highest seq its
 * REPORTs said it applied in order. All of them before the first REPORT.
 */
export function unappliedMessages(sender: { nextSeq: number; peerApplied: number }): number {
  const sent = (sender.nextSeq - 1) >>> 0;
  if (sender.peerApplied < 0) return sent;
  // Serial number distance (sequence numbers wrap).
  return Math.max(0, (sent - sender.peerApplied) | 0);
}

function setCounter(c: Counter<string>, labels: Record<string, string>, value: number): void {
  c.inc(labels, value);
}

/** Registers the sync series in `reg`; returns the lag observer to hang on SyncNode.onLag. */
export function registerSyncMetrics(reg: Registry, source: SyncMetricsSource): (ms: number) => void {
  const lag = new Histogram({
    name: 'twinwall_sync_lag_seconds',
    help: 'Time from a change on this node to its apply on the peer (REPORT samples).',
    buckets: SYNC_LAG_BUCKETS, registers: [reg],
  });
  /** A counter per label value, from SyncStats at scrape time. */
  const counter = (name: string, help: string, labelNames: string[], read: (s: SyncNode) => [Record<string, string>, number][]): void => {
    new Counter({
      name, help, labelNames, registers: [reg],
      collect() {
        this.reset();
        const s = source.sync();
        if (s) for (const [labels, v] of read(s)) setCounter(this, labels, v);
      },
    });
  };
  counter('twinwall_sync_messages_sent_total', 'Sync datagrams sent, by message type.', ['type'],
    (s) => msgTypes.map((type) => [{ type }, s.stats.sent[type] ?? 0]));
  counter('twinwall_sync_messages_received_total', 'Authenticated sync datagrams received, by message type.', ['type'],
    (s) => msgTypes.map((type) => [{ type }, s.stats.received[type] ?? 0]));
  counter('twinwall_sync_bytes_sent_total', 'Bytes of sync datagrams sent (UDP payload).', [], (s) => [[{}, s.stats.sentBytes]]);
  counter('twinwall_sync_bytes_received_total', 'Bytes of authenticated sync datagrams received (UDP payload).', [], (s) => [[{}, s.stats.receivedBytes]]);
  counter('twinwall_sync_nacks_total', 'NACKs sent (gaps seen here) and received (the peer missed ours).', ['direction'],
    (s) => [[{ direction: 'sent' }, s.stats.nacksSent], [{ direction: 'received' }, s.stats.nacksReceived]]);
  counter('twinwall_sync_retransmitted_total', 'Data messages resent for NACKs.', [], (s) => [[{}, s.stats.retransmitted]]);
  counter('twinwall_sync_resyncs_total', 'Bulk resyncs: requested by this node, served to the peer, completed here, completed short (entries did not fit: not synced).', ['kind'],
    (s) => [[{ kind: 'requested' }, s.stats.resyncsRequested], [{ kind: 'served' }, s.stats.resyncsServed], [{ kind: 'completed' }, s.stats.resyncsCompleted], [{ kind: 'short' }, s.stats.resyncsShort]]);
  counter('twinwall_sync_auth_failures_total', 'Datagrams refused for an unknown key id or a bad MAC (keys differ between the nodes, or forged).', [],
    (s) => [[{}, s.stats.authFailures]]);
  counter('twinwall_sync_replays_dropped_total', 'Authenticated datagrams dropped as duplicates, replays or from an older epoch.', [],
    (s) => [[{}, s.stats.replaysDropped]]);
  counter('twinwall_sync_drops_total', 'Received sync datagrams dropped, by reason.', ['reason'],
    (s) => dropReasons.map((reason) => [{ reason }, s.stats.drops[reason] ?? 0]));
  counter('twinwall_sync_entries_applied_total', "Peer's entries applied to this node's table, by operation.", ['op'],
    (s) => entryOps.map((op) => [{ op }, s.stats.entriesApplied[op]]));
  counter('twinwall_sync_entries_sent_total', "This node's entries sent to the peer, by operation.", ['op'],
    (s) => entryOps.map((op) => [{ op }, s.stats.entriesSent[op]]));
  new Gauge({
    name: 'twinwall_sync_lag_messages', help: 'Data messages this node sent that the peer has not applied yet (per its REPORTs).', registers: [reg],
    collect() {
      const s = source.sync();
      this.set(s ? unappliedMessages(s.sender) : 0);
    },
  });
  new Gauge({
    name: 'twinwall_sync_peer_last_contact_seconds',
    help: 'Seconds since the last authenticated datagram from the peer; +Inf when none was ever received.',
    registers: [reg],
    collect() {
      const p = source.sync()?.peer ?? null;
      this.set(p === null ? Infinity : Math.max(0, (source.now() - p.lastContact) / 1000));
    },
  });
  new Gauge({
    name: 'twinwall_sync_peer_synced', help: "1 when a resync from the peer completed: this node holds the peer's whole table.", registers: [reg],
    collect() {
      this.set(source.sync()?.peer?.synced ? 1 : 0);
    },
  });
  return (ms) => lag.observe(ms / 1000);
}

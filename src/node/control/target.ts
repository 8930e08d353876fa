/**
 * What the control API acts on: the node (the daemon implements it; tests may too). Kept narrow so
 * the API never reaches into the node's wiring.
 */
import type { Engine } from '../engine/index.js';
import type { TraceHub } from './trace-hub.js';

export interface RulesetInfo {
  /** Where the running ruleset came from (file path, or the name given with POST /rules). */
  source: string;
  /** Its YAML text. */
  text: string;
  /** When it was put in force (ms since the epoch). */
  loadedAt: number;
}

/** Sync counters as GET /sync/status returns them (SyncStats, getters included). */
export interface SyncStatsDoc {
  /** Datagrams by message type (update, resync_end, alive, nack, resync_request, report). */
  sent: Record<string, number>;
  received: Record<string, number>;
  sentBytes: number;
  receivedBytes: number;
  /** Received datagrams dropped, by reason. */
  drops: Record<string, number>;
  entriesSent: { create: number; update: number; destroy: number };
  entriesApplied: { create: number; update: number; destroy: number };
  entriesRefused: number;
  entriesTableFull: number;
  /** Not applied: this node's own live entry has the tuple (a message from before a takeover). */
  entriesKeptLocal: number;
  nacksSent: number;
  nacksReceived: number;
  retransmitted: number;
  nackedGone: number;
  resyncsRequested: number;
  resyncsServed: number;
  resyncsCompleted: number;
  /** Resyncs that ended with entries not applied (table full, refused, evicted): not synced after them. */
  resyncsShort: number;
  resyncSwept: number;
  gaps: number;
  authFailures: number;
  replaysDropped: number;
}

/** GET /sync/status. Times are ms; epochs ms since 1970 (when the node's sync started). */
export interface SyncStatus {
  nodeId: number;
  epoch: number;
  link: { interface: string; address: string; mode: 'multicast' | 'unicast'; group: string | null; peer: string | null; port: number; mtu: number };
  /** null until the peer was heard. */
  peer: {
    id: number;
    epoch: number;
    lastContactAgoMs: number;
    /** A resync from the peer completed: this node holds its whole table. */
    synced: boolean;
    resyncPending: boolean;
    /** Next data seq expected from the peer, the peer's next (per its ALIVE), messages held out of order. */
    expected: number;
    peerNext: number;
    held: number;
  } | null;
  /** Our sending half: next data seq, the highest the peer applied (-1 before its first REPORT), the difference. */
  sender: { nextSeq: number; peerApplied: number; unapplied: number; resyncing: boolean };
  /** Change here -> applied on the peer, over the recent samples; null without samples. */
  lag: { p50Ms: number | null; p99Ms: number | null };
  stats: SyncStatsDoc;
}

/** GET /failover/status. */
export interface FailoverStatus {
  role: string;
  priority: number;
  faults: string[];
  /** The master this node follows or last heard (id, priority), null when none. */
  master: { id: number; priority: number } | null;
  stats: { advertsSent: number; advertsReceived: number; drops: Record<string, number>; transitions: number; splitBrainSeen: number; peerGone: number; advertLateMaxMs: number; advertsLate: number };
  /** The peer link to the master (up: proved), its refusals and failures; null when off. */
  peerLink: { up: boolean; proved: number; refused: Record<string, number>; gone: number; connectFailures: number } | null;
  /** Links held by the death watch: added, released, failed to hand over (and why); null when not running. */
  deathWatch: { added: number; released: number; failed: number; lastError: string; running: boolean } | null;
  /** The thread sending the master's adverts: its scheduling (fifo or normal, and why), what it sent, how late it woke, send errors. */
  pacer: { scheduling: 'fifo' | 'normal'; schedError: string | null; pacing: boolean; sent: number; sentNow: number; lateMaxMs: number; late: number; errors: number } | null;
  virtualAddresses: { interface: string; cidr: string }[];
  /** The last takeover steps (entries made live or replicated, addresses claimed or released), newest last. */
  steps: { to: string; entries: number; entriesMs: number; addressesMs: number; error?: string }[];
}

export interface ControlTarget {
  readonly engine: Engine;
  readonly traces: TraceHub;
  /** Parses, validates, compiles and swaps in a ruleset; throws RulesetError and keeps the old one. */
  applyRuleset(text: string, source: string): void;
  ruleset(): RulesetInfo;
  /** Figures for GET /stats (engine, conntrack, data plane). */
  stats(): Record<string, unknown>;
  /** GET /sync/status; null when the node has no sync section. */
  syncStatus(): SyncStatus | null;
  /** POST /sync/resync: ask the peer for a bulk resync; false when the node has no sync section. */
  requestResync(): boolean;
  /** GET /failover/status; null when the node has no failover section. */
  failoverStatus(): Promise<FailoverStatus | null>;
  /** POST /failover/switchover: true done, false not master, null no failover section. */
  switchover(): Promise<boolean | null>;
}

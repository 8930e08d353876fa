/**
 * Conntrack events: the sync worker's input. They are calls on a sink made synchronously while
 * the entry's slot is valid, so no event object is built per packet; a sink that needs to keep
 * data copies it out of the table (the sync aggregator packs it straight into its wire buffer).
 * Lossless: every change of a confirmed entry produces exactly one call.
 */
import type { ConntrackTable } from './table.js';

/** What changed in an update, as bits. */
export const CtChange = {
  /** Protocol state (TCP state) or ct status bits (seen reply, assured). */
  STATE: 1,
  /** TCP window tracking data. */
  WINDOW: 2,
  /** Packet and byte counters. */
  COUNTERS: 4,
  /** Timeout (deadline) moved. */
  TIMEOUT: 8,
  /** Connection mark. */
  MARK: 16,
  /** Label. */
  LABEL: 32,
  /** NAT mapping (reply tuple). */
  NAT: 64,
  /** A helper's state: its expectations or sequence adjustment (helpers/state.ts). */
  HELPER: 128,
} as const;

/** Why an entry was destroyed. */
export const DestroyReason = {
  /** Its timeout expired. */
  TIMEOUT: 0,
  /** Evicted to make room for a new connection (table full). */
  EARLY_DROP: 1,
  /** A new SYN re-opened a TIME_WAIT/CLOSE connection with the same tuple. */
  RESTART: 2,
  /** Deleted by an operator or a flush. */
  DELETED: 3,
  /** Its master connection went away (RELATED entries of a helper). */
  MASTER_GONE: 4,
  /** Removed by the sync receiver (the peer destroyed it). */
  REPLICATED: 5,
} as const;
export const destroyReasonNames = ['timeout', 'early_drop', 'restart', 'deleted', 'master_gone', 'replicated'] as const;

export interface ConntrackEventSink {
  ctNew(table: ConntrackTable, slot: number): void;
  ctUpdate(table: ConntrackTable, slot: number, changes: number): void;
  /** Called before the slot is freed: its data is still readable. */
  ctDestroy(table: ConntrackTable, slot: number, reason: number): void;
}

/** The sink used when nobody listens. */
export const nullEventSink: ConntrackEventSink = {
  ctNew() {},
  ctUpdate() {},
  ctDestroy() {},
};

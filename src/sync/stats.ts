/**
 * Sync counters, one per way a message can go or be dropped, each ready to be a Prometheus label
 * (conntrackd's and pfsync's habit: never drop without counting why).
 */
import { WireDrop } from './wire.js';

export const RecvDrop = {
  /** The frame's own (wire.ts): too short, bad magic, version or length, unknown type. */
  ...WireDrop,
  UNKNOWN_KEY: 'unknown_key',
  BAD_MAC: 'bad_mac',
  OWN: 'own_message',
  STALE_EPOCH: 'stale_epoch',
  DUPLICATE: 'duplicate',
  REPLAY: 'replay',
  BAD_PAYLOAD: 'bad_payload',
  NOT_FOR_US: 'not_for_us',
  OUT_OF_ORDER_FULL: 'out_of_order_full',
} as const;
export type RecvDropReason = (typeof RecvDrop)[keyof typeof RecvDrop];

export class SyncStats {
  /** Messages and bytes sent, by type name (update, alive...). */
  readonly sent: Record<string, number> = {};
  sentBytes = 0;
  readonly received: Record<string, number> = {};
  receivedBytes = 0;
  readonly drops: Record<string, number> = {};
  /** Entries sent, by op (create, update, destroy). */
  entriesSent = { create: 0, update: 0, destroy: 0 };
  /** Entries applied to the table from the peer, by op. */
  entriesApplied = { create: 0, update: 0, destroy: 0 };
  /** Entries of authenticated messages that the table refused (an incompatible peer or a bug). */
  entriesRefused = 0;
  /** Entries not applied because the table was full. */
  entriesTableFull = 0;
  /** Entries not applied because this node's own live entry has the tuple (after a takeover). */
  entriesKeptLocal = 0;
  nacksSent = 0;
  nacksReceived = 0;
  /** Messages resent for NACKs. */
  retransmitted = 0;
  /** NACKed messages no longer in the resend window. */
  nackedGone = 0;
  resyncsRequested = 0;
  resyncsServed = 0;
  resyncsCompleted = 0;
  /**
   * Resyncs that ended with entries not applied (table full, refused) or evicted to make room
   * (early drop) since the request: the node does
   * not hold the peer's whole table, so it is not "synced" after them.
   */
  resyncsShort = 0;
  /** Replicated entries removed at the end of a resync because the peer no longer has them. */
  resyncSwept = 0;
  /** Gaps seen (a message after the expected one). */
  gaps = 0;

  drop(reason: RecvDropReason): void {
    this.drops[reason] = (this.drops[reason] ?? 0) + 1;
  }

  countSent(type: string, bytes: number): void {
    this.sent[type] = (this.sent[type] ?? 0) + 1;
    this.sentBytes += bytes;
  }

  countReceived(type: string, bytes: number): void {
    this.received[type] = (this.received[type] ?? 0) + 1;
    this.receivedBytes += bytes;
  }

  get authFailures(): number {
    return (this.drops[RecvDrop.BAD_MAC] ?? 0) + (this.drops[RecvDrop.UNKNOWN_KEY] ?? 0);
  }

  get replaysDropped(): number {
    return (this.drops[RecvDrop.REPLAY] ?? 0) + (this.drops[RecvDrop.DUPLICATE] ?? 0) + (this.drops[RecvDrop.STALE_EPOCH] ?? 0);
  }
}

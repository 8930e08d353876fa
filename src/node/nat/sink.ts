/**
 * The conntrack event sink NAT sits in: it passes every event on to the next sink (sync's, or
 * none) and gives an entry's outside port back when the entry is destroyed, so ports follow the
 * entries' lives without NAT ever scanning the table. Replicated entries (from the peer) take
 * their outside port here too, so a node that takes over never hands that port to someone else.
 */
import type { ConntrackEventSink } from '../conntrack/events.js';
import { CtStatus, type ConntrackTable } from '../conntrack/table.js';
import type { Nat } from './nat.js';

const NAT_REPLICATED = CtStatus.REPLICATED;
const NAT_BITS = CtStatus.SRC_NAT | CtStatus.DST_NAT;

export class NatEventSink implements ConntrackEventSink {
  constructor(
    readonly nat: Nat,
    /** Where events go on to; replace it with setNext, never the table's sink. */
    public next: ConntrackEventSink,
  ) {}

  ctNew(table: ConntrackTable, slot: number): void {
    const st = table.statusOf(slot);
    if ((st & NAT_REPLICATED) !== 0 && (st & NAT_BITS) !== 0) this.nat.adopt(table, slot);
    this.next.ctNew(table, slot);
  }

  ctUpdate(table: ConntrackTable, slot: number, changes: number): void {
    this.next.ctUpdate(table, slot, changes);
  }

  ctDestroy(table: ConntrackTable, slot: number, reason: number): void {
    // The next sink first: it reads the entry as it was, mapping included.
    this.next.ctDestroy(table, slot, reason);
    this.nat.release(table, slot);
  }
}

/**
 * Engine counters: plain numbers and typed arrays indexed by reason, read by the metrics module.
 * Every way of dropping a packet has its own counter (DropReason), and every invalid packet its
 * reason (InvalidReason, see packet/fields.ts).
 */

export const DropReason = {
  NONE: 0,
  /** The parser found the packet malformed (see the invalid counters for why). */
  MALFORMED: 1,
  /** A rule (or a chain policy) dropped or rejected it. */
  RULESET: 2,
  /** Conntrack table full and no entry could be evicted. */
  TABLE_FULL: 3,
  /** A new connection matched an SNAT rule whose outside port range was full. */
  NAT_EXHAUSTED: 4,
} as const;
export const dropReasonNames = ['none', 'malformed', 'ruleset', 'table_full', 'nat_exhausted'] as const;

export class EngineStats {
  acceptedPackets = 0;
  acceptedBytes = 0;
  droppedPackets = 0;
  droppedBytes = 0;
  rejects = 0;
  /** Dropped packets by DropReason. */
  readonly drops = new Float64Array(8);
  /** Invalid packets by InvalidReason (parser and conntrack reasons). */
  readonly invalid = new Float64Array(32);
}

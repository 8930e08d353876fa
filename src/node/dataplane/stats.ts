/**
 * Data plane counters, plain numbers read by the metrics module. Each way a packet leaves the
 * loop without its normal verdict has its own counter.
 */
import type { QueueCounters } from './binding.js';
import type { QueueState } from './queue-proc.js';

export class DataplaneCounters {
  /** Packets read from the queue. */
  received = 0;
  receivedBytes = 0;
  /** Verdicts given, by kind. */
  accepted = 0;
  dropped = 0;
  /** Accept verdicts that carried rewritten bytes (NAT). */
  modified = 0;
  /** Accept verdicts that sent a helper's resized packet instead (FTP rewritten for NAT). */
  replaced = 0;
  /** Resized packets larger than a replacement slot: dropped (the sender retransmits; counted). */
  replaceTooLarge = 0;
  /** Verdicts that set the packet mark. */
  markSet = 0;
  /** REJECT answers sent (in place of the offending packet, see dataplane.ts). */
  emitted = 0;
  /** REJECT answers not sent: a packet can carry one answer; the others are counted here. */
  emitDropped = 0;
  /** Packets whose processing threw (a bug): dropped, counted, the loop goes on. */
  engineErrors = 0;
  /** Batches handled (one call from the binding per read of up to its slots of packets). */
  reads = 0;
}

/** What Dataplane.stats() returns: own counters plus the kernel's view of the queue. */
export interface DataplaneStats {
  running: boolean;
  queueNum: number;
  failOpen: boolean;
  counters: Readonly<DataplaneCounters>;
  /** The queue's line in /proc/net/netfilter/nfnetlink_queue; null when not bound or unreadable. */
  kernel: QueueState | null;
  /** The binding's own counters (batches, largest batch, kernel errors); null when not bound. */
  binding: QueueCounters | null;
}

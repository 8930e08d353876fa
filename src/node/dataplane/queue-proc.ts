/**
 * The kernel's view of NFQUEUE queues: /proc/net/netfilter/nfnetlink_queue, one line per bound
 * queue (net/netfilter/nfnetlink_queue.c, seq_show):
 *
 *   queue_num peer_portid queue_total copy_mode copy_range queue_dropped user_dropped id_sequence 1
 *
 * queue_total: packets waiting for a verdict; queue_dropped: dropped because the queue was full
 * (queue_maxlen); user_dropped: dropped because the netlink socket buffer was full (the reader
 * too slow). Read per scrape, not per packet.
 */
import { readFileSync } from 'node:fs';

export const NFQUEUE_PROC = '/proc/net/netfilter/nfnetlink_queue';

export interface QueueState {
  queueNum: number;
  peerPortId: number;
  /** Packets waiting in the kernel for a verdict. */
  waiting: number;
  copyMode: number;
  copyRange: number;
  /** Dropped by the kernel: queue full. */
  queueDropped: number;
  /** Dropped by the kernel: socket buffer full (reader too slow). */
  userDropped: number;
  /** Last packet id handed out. */
  idSequence: number;
}

/** Parse the whole file; lines that do not have the 9 numeric fields are skipped. */
export function parseNfqueueProc(text: string): QueueState[] {
  const out: QueueState[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    const n = f.map(Number);
    if (n.slice(0, 8).some((x) => !Number.isFinite(x))) continue;
    out.push({
      queueNum: n[0], peerPortId: n[1], waiting: n[2], copyMode: n[3], copyRange: n[4],
      queueDropped: n[5], userDropped: n[6], idSequence: n[7],
    });
  }
  return out;
}

/** The state of one queue, or null when it is not bound or the file cannot be read (no module). */
export function readQueueState(queueNum: number, path = NFQUEUE_PROC): QueueState | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    // ENOENT: nfnetlink_queue not loaded (no queue bound yet): a state, not an error.
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  return parseNfqueueProc(text).find((q) => q.queueNum === queueNum) ?? null;
}

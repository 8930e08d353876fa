/**
 * The `nfqueue` native binding (npm nfqueue 0.3.2, on libnetfilter_queue), used directly rather
 * than through its JS wrapper, which allocates an object per packet. What the binding gives and
 * lacks (so callers know what to expect):
 * - open(queueNum, socketBuffer): binds the queue, copy mode NFQNL_COPY_PACKET with range 0xffff
 *   (whole packets), NETLINK_NO_ENOBUFS (an overrun drops packets, counted by the kernel as
 *   user_dropped, instead of killing the socket).
 * - read(cb): one uv_poll on the netlink socket; every recv is one packet, so cb(info, payload)
 *   runs once per packet (no batches). info is a fresh object with ids and interface names.
 * - setVerdict(id, verdict, [mark,] bytes|null): one verdict per packet (no batch verdicts).
 * - No close, no queue flags (fail-open on queue full), no queue maxlen: once opened, a queue stays
 *   bound and keeps the event loop alive until the process exits. So queues are opened once per
 *   process and kept in a registry here; a Dataplane that stops detaches its handler and a later
 *   start() on the same queue number reattaches. This is the one process-wide state of the data
 *   plane, forced by the binding; a binding of our own would remove it.
 */
import { createRequire } from 'node:module';
import { DataplaneError } from './errors.js';

/** The per-packet info object the binding builds (fields used here). */
export interface NfqPacketInfo {
  len: number;
  id: number;
  nfmark: number;
  indev: number;
  outdev: number;
}

export type NfqHandler = (info: NfqPacketInfo, payload: Buffer) => void;

interface NativeQueue {
  open(queueNum: number, socketBuffer: number): void;
  read(cb: NfqHandler): void;
  setVerdict(id: number, verdict: number, markOrBytes: number | Buffer | null, bytes?: Buffer | null): void;
}

export const NF_DROP = 0;
export const NF_ACCEPT = 1;

let native: { NFQueue: new () => NativeQueue } | null = null;

function loadNative(): { NFQueue: new () => NativeQueue } {
  if (native) return native;
  try {
    const require = createRequire(import.meta.url);
    native = require('nfqueue/build/Release/nfqueue.node') as { NFQueue: new () => NativeQueue };
    return native;
  } catch (e) {
    throw new DataplaneError('DP_BINDING', 'the nfqueue native binding did not load: install libnetfilter-queue-dev and run scripts/setup.sh (npm ci builds it)', { cause: e });
  }
}

/** One bound queue of this process. */
export class BoundQueue {
  readonly #q: NativeQueue;
  /** Where packets go; swapped by Dataplane start/stop. */
  handler: NfqHandler;

  constructor(readonly queueNum: number, socketBuffer: number, idle: NfqHandler) {
    const Q = loadNative().NFQueue;
    this.#q = new Q();
    this.handler = idle;
    try {
      this.#q.open(queueNum, socketBuffer);
    } catch (e) {
      throw new DataplaneError('DP_QUEUE_OPEN', `NFQUEUE ${queueNum} could not be bound: another process may hold it (see /proc/net/netfilter/nfnetlink_queue), or the process lacks CAP_NET_ADMIN; use another queueNum or stop that process`, { cause: e });
    }
    // One closure for the life of the queue; it reads the handler field so start/stop can swap it.
    this.#q.read((info, payload) => this.handler(info, payload));
  }

  verdict(id: number, verdict: number, bytes: Buffer | null): void {
    this.#q.setVerdict(id, verdict, bytes);
  }

  verdictMark(id: number, verdict: number, mark: number, bytes: Buffer | null): void {
    // The binding takes the 4-argument form only for a mark; mark 0 would be read as "no mark".
    this.#q.setVerdict(id, verdict, mark >>> 0, bytes);
  }
}

const bound = new Map<number, BoundQueue>();

/** The bound queue for queueNum, opening it on first use in this process. */
export function bindQueue(queueNum: number, socketBuffer: number, idle: NfqHandler): BoundQueue {
  let q = bound.get(queueNum);
  if (!q) {
    q = new BoundQueue(queueNum, socketBuffer, idle);
    bound.set(queueNum, q);
  }
  return q;
}

/**
 * twinwall's NFQUEUE binding (native/nfqueue/twinwall_nfq.c, built by scripts/setup.sh): one
 * netlink socket per queue, read in batches and answered in batches. It replaced the npm
 * `nfqueue` binding, which read one packet per event-loop turn: a burst (the traffic held during
 * a takeover) then drained at the pace of the loop, not of the engine.
 *
 * Per readable event the addon receives up to SLOTS packets with one recvmmsg() into a shared
 * arena and calls the handler ONCE with the count; the handler reads each packet's descriptor
 * and writes its verdict into shared arrays (no object, Buffer or closure per packet); then every
 * verdict goes to the kernel in one sendmsg(). Before each call the addon sets every packet's
 * verdict to the fail verdict with no flags: a handler writes only what differs.
 *
 * Layout (the constants come from the addon):
 * - arena: SLOTS x SLOT_SIZE receive slots, then SLOTS x EMIT_SIZE where a handler may put a
 *   packet that replaces packet i (a REJECT's answer) at emitOffset(i).
 * - desc, DESC_INTS per packet: payload offset in the arena, length, indev, outdev, mark, hw
 *   protocol, hook, flags (1 = truncated: longer than the copy range, never expected).
 * - verdicts, VERD_INTS per packet: verdict (NF_DROP / NF_ACCEPT), flags (1 = send the bytes at
 *   offset/length instead of the original, 2 = set the mark), mark, offset, length.
 */
import { addonPath, loadAddon } from '../../native.js';
import { DataplaneError } from './errors.js';

export const NF_DROP = 0;
export const NF_ACCEPT = 1;

/** int32s per packet in desc and in verdicts (the addon's layout, checked when it loads). */
export const DESC_INTS = 8;
export const VERD_INTS = 8;
/** Descriptor fields (index within a packet's DESC_INTS). */
export const D_OFFSET = 0;
export const D_LENGTH = 1;
export const D_INDEV = 2;
export const D_OUTDEV = 3;
export const D_MARK = 4;
export const D_FLAGS = 7;
/** Verdict fields (index within a packet's VERD_INTS). */
export const V_VERDICT = 0;
export const V_FLAGS = 1;
export const V_MARK = 2;
export const V_OFFSET = 3;
export const V_LENGTH = 4;
export const VF_BYTES = 1;
export const VF_MARK = 2;

/** The addon's counters, in the order stats() returns them. */
export interface QueueCounters {
  /** Handler calls (batches of one or more packets). */
  batches: number;
  packets: number;
  /** Error replies from the kernel (a verdict it refused, e.g. for an unknown packet id). */
  kernelErrors: number;
  truncated: number;
  recvErrors: number;
  sendErrors: number;
  otherMessages: number;
  overflow: number;
  /** Largest batch so far. */
  maxBatch: number;
}

interface NativeQueue {
  arena: ArrayBuffer;
  desc: ArrayBuffer;
  verdicts: ArrayBuffer;
}

interface NativeModule {
  open(queueNum: number, socketBuffer: number, maxLen: number, failOpen: boolean, onBatch: (count: number) => void): NativeQueue;
  close(q: NativeQueue): void;
  stats(q: NativeQueue): Float64Array;
  SLOTS: number;
  SLOT_SIZE: number;
  EMIT_SIZE: number;
  DESC_INTS: number;
  VERD_INTS: number;
}

let native: NativeModule | null = null;

function loadNative(): NativeModule {
  if (native) return native;
  try {
    native = loadAddon<NativeModule>('nfqueue', 'twinwall_nfq');
  } catch (e) {
    throw new DataplaneError('DP_BINDING', (e as Error).message, { cause: e });
  }
  if (native.DESC_INTS !== DESC_INTS || native.VERD_INTS !== VERD_INTS) {
    const got = native;
    native = null;
    throw new DataplaneError('DP_BINDING', `the NFQUEUE addon ${addonPath('nfqueue', 'twinwall_nfq')} has another layout (${got.DESC_INTS}/${got.VERD_INTS} ints per packet, this code expects ${DESC_INTS}/${VERD_INTS}): rebuild it with bash scripts/setup.sh`);
  }
  return native;
}

export interface QueueOptions {
  queueNum: number;
  /** Netlink receive buffer, bytes. */
  socketBuffer: number;
  /** Kernel queue length limit; 0 keeps the kernel's default (1024). */
  maxLen?: number;
  /**
   * Fail open: packets the queue cannot hold (full) are accepted by the kernel, and packets the
   * handler does not answer get NF_ACCEPT; otherwise both are dropped.
   */
  failOpen: boolean;
}

/** One bound NFQUEUE. The handler runs once per batch: handler(count). */
export class BoundQueue {
  readonly arena: Buffer;
  readonly desc: Int32Array;
  readonly verdicts: Int32Array;
  readonly emitSize: number;
  readonly #emitBase: number;
  readonly #q: NativeQueue;
  readonly #native: NativeModule;
  #open = true;

  constructor(readonly options: QueueOptions, handler: (count: number) => void) {
    const n = loadNative();
    this.#native = n;
    try {
      this.#q = n.open(options.queueNum, options.socketBuffer, options.maxLen ?? 0, options.failOpen, handler);
    } catch (e) {
      throw new DataplaneError('DP_QUEUE_OPEN', `NFQUEUE ${options.queueNum} could not be bound (${(e as Error).message}): another process may hold it (see /proc/net/netfilter/nfnetlink_queue), or the process lacks CAP_NET_ADMIN; use another queueNum or stop that process`, { cause: e });
    }
    this.arena = Buffer.from(this.#q.arena);
    this.desc = new Int32Array(this.#q.desc);
    this.verdicts = new Int32Array(this.#q.verdicts);
    this.emitSize = n.EMIT_SIZE;
    this.#emitBase = n.SLOTS * n.SLOT_SIZE;
  }

  /** Where packet i of the batch may put a replacement of up to emitSize bytes. */
  emitOffset(i: number): number {
    return this.#emitBase + i * this.emitSize;
  }

  counters(): QueueCounters {
    const s = this.#native.stats(this.#q);
    return { batches: s[0], packets: s[1], kernelErrors: s[2], truncated: s[3], recvErrors: s[4], sendErrors: s[5], otherMessages: s[6], overflow: s[7], maxBatch: s[8] };
  }

  /**
   * Unbind: the kernel drops whatever is still queued. Called from the handler, the current
   * batch still gets its verdicts first.
   */
  close(): void {
    if (!this.#open) return;
    this.#open = false;
    this.#native.close(this.#q);
  }
}

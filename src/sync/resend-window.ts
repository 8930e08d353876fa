/**
 * The sender's resend window: the last `size` data messages, kept as sent so that a NACK resends
 * exactly its range (conntrackd's rs_queue). A ring of preallocated MTU-sized buffers: the packer
 * writes each message into its ring slot directly, so keeping it costs no copy.
 */
import { seqDiff } from './seq.js';

export class ResendWindow {
  readonly size: number;
  readonly #bufs: Buffer[];
  readonly #lens: Int32Array;
  readonly #seqs: Uint32Array;
  /** When the message was (last) sent, and when the oldest change in it happened (ms). */
  readonly sentAt: Float64Array;
  readonly changedAt: Float64Array;
  /** Oldest sequence number held; meaningful once count > 0. */
  low = 0;
  count = 0;

  constructor(size: number, mtu: number) {
    this.size = size;
    // One allocation cut in slots: 8192 separate Buffer.alloc calls took ~60 ms at every start.
    const all = Buffer.alloc(size * mtu);
    this.#bufs = Array.from({ length: size }, (_, i) => all.subarray(i * mtu, (i + 1) * mtu));
    this.#lens = new Int32Array(size);
    this.#seqs = new Uint32Array(size);
    this.sentAt = new Float64Array(size);
    this.changedAt = new Float64Array(size);
  }

  /** The buffer the message with this seq is to be written into (evicts the oldest when full). */
  slotFor(seq: number): Buffer {
    return this.#bufs[seq % this.size];
  }

  /** Record that the message `seq` (the next one after the newest) was written, len bytes. */
  commit(seq: number, len: number, sentAt: number, changedAt: number): void {
    const i = seq % this.size;
    this.#lens[i] = len;
    this.#seqs[i] = seq;
    this.sentAt[i] = sentAt;
    this.changedAt[i] = changedAt;
    if (this.count < this.size) this.count++;
    // The window holds `count` consecutive messages ending at seq. (Worked out on every commit: a
    // branch that ran only once the window was full had no type feedback until then, and V8 threw
    // the sender's optimised code away at that moment, in the middle of a large dump.)
    this.low = (seq - this.count + 1) >>> 0;
  }

  /** Whether seq is still held. */
  has(seq: number): boolean {
    if (this.count === 0) return false;
    const d = seqDiff(this.low, seq);
    return d >= 0 && d < this.count;
  }

  /** The bytes of a held message (a view: do not keep it). */
  get(seq: number): Buffer {
    const i = seq % this.size;
    return this.#bufs[i].subarray(0, this.#lens[i]);
  }

  index(seq: number): number {
    return seq % this.size;
  }
}

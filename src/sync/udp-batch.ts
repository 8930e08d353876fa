/**
 * Batched receiving on the sync socket (native/udp/twinwall_udp.c): the addon polls a dup of the
 * descriptor of node's dgram socket, reads up to its slots of datagrams per recvmmsg() and calls
 * back once per batch. Node's socket still binds, joins the group and sends; it stops reading.
 *
 * Why: a bulk resync is ~30 k datagrams per million entries at MTU 1500, and through dgram each
 * costs a libuv callback, a Buffer and an event (~15 us of the receiving node's CPU), most of the
 * resync's time on the receiver.
 */
import type { Socket } from 'node:dgram';
import { loadAddon } from '../native.js';

interface NativeReceiver {
  arena: ArrayBuffer;
  desc: ArrayBuffer;
}

interface NativeModule {
  open(fd: number, onBatch: (count: number) => void): NativeReceiver;
  close(rx: NativeReceiver): void;
  stats(rx: NativeReceiver): Float64Array;
  SLOT_SIZE: number;
  DESC_INTS: number;
}

/** What node's dgram socket handle offers here (internal, Linux): its descriptor and recvStop. */
interface UdpHandle {
  fd?: number;
  recvStop?: () => number;
}

let native: NativeModule | null = null;

export interface BatchReceiverStats {
  batches: number;
  datagrams: number;
  truncated: number;
  errors: number;
  maxBatch: number;
}

export class BatchReceiver {
  readonly #native: NativeModule;
  readonly #rx: NativeReceiver;
  readonly #arena: Buffer;
  readonly #desc: Int32Array;
  readonly #slot: number;
  readonly #ints: number;
  #open = true;

  /**
   * Take over receiving on the socket whose descriptor is `fd` (bound already): each datagram goes to onDatagram as a view
   * valid during the call only (copy it to keep it); truncated ones (bigger than a slot) are
   * counted and not delivered.
   */
  private constructor(fd: number, readonly onDatagram: (buf: Buffer) => void) {
    const n = (native ??= loadAddon<NativeModule>('udp', 'twinwall_udp'));
    this.#native = n;
    this.#slot = n.SLOT_SIZE;
    this.#ints = n.DESC_INTS;
    this.#rx = n.open(fd, this.#onBatch);
    this.#arena = Buffer.from(this.#rx.arena);
    this.#desc = new Int32Array(this.#rx.desc);
  }

  /**
   * Batched receiving for `sock`, or null where node's socket does not expose what it needs (its
   * descriptor and recvStop: internal, present on Linux in the Node versions this runs on); then
   * the caller keeps dgram's own 'message' events.
   */
  static attach(sock: Socket, onDatagram: (buf: Buffer) => void): BatchReceiver | null {
    const h = (sock as unknown as { _handle?: UdpHandle })._handle;
    if (!h || typeof h.fd !== 'number' || h.fd < 0 || typeof h.recvStop !== 'function') return null;
    const rx = new BatchReceiver(h.fd, onDatagram);
    // From here node's handle no longer reads; the addon does, on its dup of the descriptor.
    h.recvStop.call(h);
    return rx;
  }

  readonly #onBatch = (n: number): void => {
    const d = this.#desc;
    const ints = this.#ints;
    for (let i = 0; i < n; i++) {
      if (d[i * ints + 1] !== 0) continue;
      const off = i * this.#slot;
      this.onDatagram(this.#arena.subarray(off, off + d[i * ints]));
    }
  };

  stats(): BatchReceiverStats {
    const s = this.#native.stats(this.#rx);
    return { batches: s[0], datagrams: s[1], truncated: s[2], errors: s[3], maxBatch: s[4] };
  }

  close(): void {
    if (!this.#open) return;
    this.#open = false;
    this.#native.close(this.#rx);
  }
}

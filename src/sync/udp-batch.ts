/**
 * Batched receiving and sending on the sync socket (native/udp/twinwall_udp.c), on dups of the
 * descriptor of node's dgram socket, which still binds, joins the group and holds the options.
 *  - BatchReceiver: the addon polls, reads up to its slots of datagrams per recvmmsg() and calls
 *    back once per batch; node's socket stops reading.
 *  - BatchSender: the datagrams of one turn of the event loop go in sendmmsg() calls at its end.
 *
 * Why: a bulk resync is ~30 k datagrams per million entries at MTU 1500, and through dgram each
 * costs a libuv callback, a Buffer and an event (~15 us of the receiving node's CPU) on one side,
 * a SendWrap, an address lookup and a libuv request on the other.
 */
import type { Socket } from 'node:dgram';
import { parseAddress } from '../node/packet/address.js';
import { loadAddon, socketFd, socketHandle } from '../native.js';

interface NativeReceiver {
  arena: ArrayBuffer;
  desc: ArrayBuffer;
}

/** A sender (opaque). */
type NativeSender = object;

interface NativeModule {
  open(fd: number, onBatch: (count: number) => void): NativeReceiver;
  close(rx: NativeReceiver): void;
  stats(rx: NativeReceiver): Float64Array;
  sender(fd: number, addr: number, port: number): NativeSender;
  /** Hands bufs[0..count) to the kernel; returns how many went (stops when the socket buffer is full). */
  send(tx: NativeSender, bufs: Buffer[], count: number): number;
  txStats(tx: NativeSender): Float64Array;
  txClose(tx: NativeSender): void;
  SLOT_SIZE: number;
  DESC_INTS: number;
}

/** What node's dgram socket handle offers here (internal, Linux) besides its descriptor: recvStop. */
interface UdpHandle {
  recvStop?: () => number;
}

function addon(): NativeModule {
  return (native ??= loadAddon<NativeModule>('udp', 'twinwall_udp'));
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
    const n = addon();
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
    const fd = socketFd(sock);
    const h = socketHandle(sock) as UdpHandle | null;
    if (fd < 0 || !h || typeof h.recvStop !== 'function') return null;
    const rx = new BatchReceiver(fd, onDatagram);
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

export interface BatchSenderStats {
  /** Flushes (turns of the event loop that sent), sendmmsg calls, datagrams sent by them. */
  flushes: number;
  syscalls: number;
  datagrams: number;
  /** Datagrams the kernel refused (skipped: the sync repairs loss), and the last errno. */
  errors: number;
  lastErrno: number;
  /** Datagrams handed to dgram instead because the socket buffer was full (it waits for room). */
  viaDgram: number;
}

/**
 * Sends the datagrams given during one turn of the event loop together, in sendmmsg() calls at
 * its end (a microtask: before any timer or I/O, so no later than dgram would have). The Buffers
 * must stay unchanged until then (SyncTransport's contract: not reused before the next tick).
 * When the socket buffer is full the rest go through dgram, which queues until it drains, and so
 * does everything after them while dgram's queue is not empty (order kept).
 */
export class BatchSender {
  readonly #native: NativeModule;
  readonly #tx: NativeSender;
  readonly #pending: Buffer[] = [];
  #scheduled = false;
  #open = true;
  #viaDgram = 0;

  private constructor(
    fd: number,
    addr: number,
    readonly sock: Socket,
    readonly port: number,
    readonly dest: string,
    readonly onDgramSent: (err: Error | null) => void,
  ) {
    this.#native = addon();
    this.#tx = this.#native.sender(fd, addr, port);
  }

  /** Batched sending on `sock` to dest:port (an IPv4 address), or null where the socket's descriptor is not reachable. */
  static attach(sock: Socket, dest: string, port: number, onDgramSent: (err: Error | null) => void): BatchSender | null {
    const fd = socketFd(sock);
    const a = parseAddress(dest);
    if (fd < 0 || a.family !== 4) return null;
    return new BatchSender(fd, a.words[0], sock, port, dest, onDgramSent);
  }

  send(buf: Buffer): void {
    if (!this.#open) return;
    this.#pending.push(buf);
    if (!this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(this.#flush);
    }
  }

  readonly #flush = (): void => {
    this.#scheduled = false;
    const p = this.#pending;
    if (p.length === 0 || !this.#open) {
      p.length = 0;
      return;
    }
    const sent = this.sock.getSendQueueCount() > 0 ? 0 : this.#native.send(this.#tx, p, p.length);
    for (let i = sent; i < p.length; i++) {
      this.#viaDgram++;
      this.sock.send(p[i], this.port, this.dest, this.onDgramSent);
    }
    p.length = 0;
  };

  stats(): BatchSenderStats {
    const s = this.#native.txStats(this.#tx);
    return { flushes: s[0], syscalls: s[1], datagrams: s[2], errors: s[3], lastErrno: s[5], viaDgram: this.#viaDgram };
  }

  /** Send what is pending now, then stop. */
  close(): void {
    if (!this.#open) return;
    this.#flush();
    this.#open = false;
    this.#native.txClose(this.#tx);
  }
}

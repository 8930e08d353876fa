/**
 * How sync datagrams travel: multicast on the dedicated sync interface (TTL 1, loopback off,
 * membership and outgoing interface set explicitly, so a second interface never carries it), or
 * unicast UDP to the peer where the network has no multicast (clouds). One socket per node both
 * sends and receives. Tests use LoopTransport (in-process pair) to inject loss and reordering.
 */
import { createSocket, type Socket } from 'node:dgram';
import { BatchReceiver, BatchSender, type BatchReceiverStats, type BatchSenderStats } from './udp-batch.js';

export interface SyncTransport {
  /** Send buf (the whole buffer) to the peer(s). The buffer is not reused before the next tick. */
  send(buf: Buffer): void;
  /**
   * Called with each datagram received. The bytes are valid during the call only (UdpTransport
   * reads into reused buffers): copy them to keep them.
   */
  onMessage: ((buf: Buffer) => void) | null;
  close(): Promise<void>;
}

export class SyncTransportError extends Error {
  readonly code = 'SYNC_TRANSPORT';
  constructor(message: string) {
    super(message);
    this.name = 'SyncTransportError';
  }
}

export interface UdpTransportOptions {
  /** Address of this node on the sync link (the source; for multicast the interface). */
  localAddress: string;
  port: number;
  /** Multicast group (e.g. 225.0.0.50), or absent for unicast. */
  group?: string;
  /** Unicast: the peer's address on the sync link. */
  peerAddress?: string;
  /** Socket buffers (bytes): large, so a resync burst is not dropped by the kernel. */
  bufferBytes?: number;
  /**
   * Receive in batches through the native addon (udp-batch.ts; default true). False, or where
   * the addon cannot attach, dgram's 'message' events deliver each datagram.
   */
  batchReceive?: boolean;
  /** Send each turn's datagrams in sendmmsg() calls (udp-batch.ts; default true); false: one dgram send each. */
  batchSend?: boolean;
}

export class UdpTransport implements SyncTransport {
  onMessage: ((buf: Buffer) => void) | null = null;
  /** Send errors (e.g. ENOBUFS), counted rather than thrown: sync repairs loss itself. */
  sendErrors = 0;
  lastSendError = '';
  readonly #sock: Socket;
  readonly #dest: string;
  readonly #port: number;
  #batch: BatchReceiver | null = null;
  #tx: BatchSender | null = null;

  private constructor(sock: Socket, dest: string, port: number) {
    this.#sock = sock;
    this.#dest = dest;
    this.#port = port;
  }

  static async open(o: UdpTransportOptions): Promise<UdpTransport> {
    if (o.group === undefined && o.peerAddress === undefined) {
      throw new SyncTransportError('sync transport needs a multicast group or a peer address (unicast)');
    }
    const sock = createSocket({ type: 'udp4', reuseAddr: true });
    const t = new UdpTransport(sock, o.group ?? (o.peerAddress as string), o.port);
    await new Promise<void>((resolve, reject) => {
      sock.once('error', (e) => reject(new SyncTransportError(`cannot open the sync socket on ${o.group ?? o.localAddress}:${o.port}: ${e.message}`)));
      // Multicast: bind the port on any address so the group's datagrams arrive; unicast: our address.
      sock.bind({ port: o.port, address: o.group !== undefined ? undefined : o.localAddress }, () => resolve());
    });
    try {
      if (o.group !== undefined) {
        sock.addMembership(o.group, o.localAddress);
        sock.setMulticastInterface(o.localAddress);
        sock.setMulticastTTL(1);
        sock.setMulticastLoopback(false);
      }
      const b = o.bufferBytes ?? 8 * 1024 * 1024;
      sock.setRecvBufferSize(b);
      sock.setSendBufferSize(b);
    } catch (e) {
      sock.close();
      throw new SyncTransportError(`cannot set up the sync socket (${(e as Error).message}): is ${o.localAddress} an address of the sync interface?`);
    }
    if (o.batchReceive ?? true) t.#batch = BatchReceiver.attach(sock, (buf) => t.onMessage?.(buf));
    if (t.#batch === null) sock.on('message', (msg) => t.onMessage?.(msg));
    if (o.batchSend ?? true) t.#tx = BatchSender.attach(sock, t.#dest, t.#port, t.#onSent);
    sock.on('error', (e) => {
      t.sendErrors++;
      t.lastSendError = e.message;
    });
    return t;
  }

  send(buf: Buffer): void {
    if (this.#tx !== null) this.#tx.send(buf);
    else this.#sock.send(buf, this.#port, this.#dest, this.#onSent);
  }

  /** One callback for every send (not a closure per datagram). */
  readonly #onSent = (err: Error | null): void => {
    if (err) {
      this.sendErrors++;
      this.lastSendError = err.message;
    }
  };

  /** The batched receiver's counters; null when datagrams come through dgram's events. */
  batchStats(): BatchReceiverStats | null {
    return this.#batch?.stats() ?? null;
  }

  /** The batched sender's counters; null when every datagram goes through dgram. */
  sendStats(): BatchSenderStats | null {
    return this.#tx?.stats() ?? null;
  }

  close(): Promise<void> {
    this.#batch?.close();
    this.#batch = null;
    this.#tx?.close();
    this.#tx = null;
    return new Promise((resolve) => this.#sock.close(() => resolve()));
  }
}

/**
 * An in-process link between two nodes for tests: what one sends the other receives on a later
 * tick, through a filter that may drop, duplicate or reorder. Each datagram's bytes are
 * overwritten once its onMessage returns, as UdpTransport reuses its receive buffers.
 */
export class LoopTransport implements SyncTransport {
  onMessage: ((buf: Buffer) => void) | null = null;
  peer: LoopTransport | null = null;
  /** Decide the fate of each datagram: 0 deliver, 1 drop, 2 duplicate, 3 hold back (reorder). */
  fate: (buf: Buffer) => number = () => 0;
  #held: Buffer[] = [];
  sent = 0;

  static pair(): [LoopTransport, LoopTransport] {
    const a = new LoopTransport();
    const b = new LoopTransport();
    a.peer = b;
    b.peer = a;
    return [a, b];
  }

  send(buf: Buffer): void {
    this.sent++;
    const copy = Buffer.from(buf);
    const peer = this.peer;
    if (peer === null) return;
    const f = this.fate(copy);
    if (f === 1) return;
    if (f === 3) {
      this.#held.push(copy);
      return;
    }
    const deliver = (b: Buffer) => setImmediate(() => LoopTransport.#deliver(peer, b));
    deliver(copy);
    if (f === 2) deliver(Buffer.from(copy));
    // Held datagrams go after this one: reordered.
    for (const h of this.#held.splice(0)) deliver(h);
  }

  /** Deliver what is held back. */
  flushHeld(): void {
    const peer = this.peer;
    for (const h of this.#held.splice(0)) setImmediate(() => peer && LoopTransport.#deliver(peer, h));
  }

  /**
   * As UdpTransport, the bytes are valid during the call only: overwritten after it, so a
   * receiver that keeps a datagram without copying it fails the tests.
   */
  static #deliver(peer: LoopTransport, b: Buffer): void {
    peer.onMessage?.(b);
    b.fill(0xee);
  }

  close(): Promise<void> {
    this.peer = null;
    return Promise.resolve();
  }
}

/**
 * Frames and signs messages for one node: its id, its epoch, its keys, and the control sequence
 * that makes replayed control messages recognisable.
 */
import type { Keyring } from './auth.js';
import type { SyncStats } from './stats.js';
import type { SyncTransport } from './transport.js';
import { HEADER_BYTES, MAC_BYTES, MsgFlag, msgTypeNames, writeHeader, type Header } from './wire.js';

export class Framer {
  #ctlSeq = 0;
  readonly #h: Header;
  readonly #ctl: Buffer;

  constructor(
    readonly nodeId: number,
    readonly epoch: number,
    readonly keys: Keyring,
    readonly transport: SyncTransport,
    readonly stats: SyncStats,
    mtuPayload: number,
  ) {
    this.#h = { type: 0, keyId: keys.sendId, flags: 0, payloadLength: 0, sender: nodeId, epoch, seq: 0 };
    this.#ctl = Buffer.alloc(HEADER_BYTES + mtuPayload);
  }

  /** Header and MAC around buf[24..24+payloadLength); returns the datagram's length. */
  seal(buf: Buffer, type: number, flags: number, seq: number, payloadLength: number): number {
    const h = this.#h;
    h.type = type;
    // Every message says what this node reads (wire.ts: features).
    h.flags = flags | MsgFlag.READS_REVERSED;
    h.seq = seq;
    h.payloadLength = payloadLength;
    writeHeader(buf, h);
    const len = HEADER_BYTES + payloadLength;
    this.keys.sign(buf, len);
    return len + MAC_BYTES;
  }

  /** The buffer to write a control payload into, at offset HEADER_BYTES. */
  get controlBuffer(): Buffer {
    return this.#ctl;
  }

  /** Seal and send the control message whose payload is in controlBuffer. */
  sendControl(type: number, payloadLength: number): void {
    this.#ctlSeq = (this.#ctlSeq + 1) >>> 0;
    const n = this.seal(this.#ctl, type, 0, this.#ctlSeq, payloadLength);
    // A copy: the transport sends on a later tick, and the next control message reuses #ctl.
    this.send(Buffer.from(this.#ctl.subarray(0, n)), type);
  }

  send(datagram: Buffer, type: number): void {
    this.stats.countSent(msgTypeNames[type], datagram.length);
    this.transport.send(datagram);
  }
}

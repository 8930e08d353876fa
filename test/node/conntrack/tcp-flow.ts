/**
 * Test helper: two TCP endpoints talking through one tracker entry. Each endpoint keeps its next
 * sequence number; segments are built from them unless a test overrides a field (an injected or
 * stale segment), and only a segment the firewall lets through advances its sender.
 */
import { TcpFlag } from '../../../src/node/packet/fields.js';
import { TcpStateStore, TcpTracker, TcpVerdict, type TcpSegment, type TcpTrackerOptions } from '../../../src/node/conntrack/tcp.js';

export const F = TcpFlag;
export const SYN = TcpFlag.SYN;
export const ACK = TcpFlag.ACK;
export const FIN = TcpFlag.FIN | TcpFlag.ACK;
export const RST = TcpFlag.RST;
export const SYNACK = TcpFlag.SYN | TcpFlag.ACK;
export const PSHACK = TcpFlag.PSH | TcpFlag.ACK;

export function seg(flags: number, seq: number, ack: number, extra: Partial<TcpSegment> = {}): TcpSegment {
  return {
    tcpFlags: flags,
    tcpSeq: seq >>> 0,
    tcpAck: ack >>> 0,
    tcpWindow: 65535,
    tcpWscale: -1,
    tcpSackPermitted: false,
    payloadLength: 0,
    ...extra,
  };
}

export interface SendOptions extends Partial<TcpSegment> {
  /** Payload bytes (same as payloadLength). */
  len?: number;
}

export class Flow {
  readonly store: TcpStateStore;
  readonly tracker: TcpTracker;
  readonly slot: number;
  /** Next sequence number each side sends: [client (ORIGINAL), server (REPLY)]. */
  readonly nxt: [number, number];
  /** Raw window each side advertises. */
  readonly win: [number, number] = [65535, 65535];
  now = 0;

  constructor(isnClient = 1000, isnServer = 500000, options: TcpTrackerOptions = {}, store?: TcpStateStore, slot = 0) {
    this.tracker = new TcpTracker(options);
    this.store = store ?? new TcpStateStore(4);
    this.slot = slot;
    this.nxt = [isnClient >>> 0, isnServer >>> 0];
  }

  get state(): number {
    return this.store.stateOf(this.slot);
  }

  /** Word field W_* (+ dir) of the entry, e.g. word(W_TD_END + 1). */
  word(w: number): number {
    return this.store.wordOf(this.slot, w);
  }

  /** Byte field B_* (+ dir) of the entry, e.g. byte(B_TD_SCALE). */
  byte(b: number): number {
    return this.store.byteOf(this.slot, b);
  }

  /** Build the segment dir would send now. */
  build(dir: 0 | 1, flags: number, o: SendOptions = {}): TcpSegment {
    const { len, ...rest } = o;
    return seg(flags, this.nxt[dir], this.nxt[dir ^ 1], {
      tcpWindow: this.win[dir],
      payloadLength: len ?? 0,
      ...rest,
    });
  }

  /** Client's first SYN: creates the entry. Returns the verdict (INVALID when newEntry refuses). */
  open(o: SendOptions = {}): number {
    const s = this.build(0, SYN, { tcpAck: 0, ...o });
    if (!this.tracker.newEntry(this.store, this.slot, s)) return TcpVerdict.INVALID;
    return this.deliver(0, s, o);
  }

  /** Send a segment from dir through the tracker. */
  send(dir: 0 | 1, flags: number, o: SendOptions = {}): number {
    return this.deliver(dir, this.build(dir, flags, o), o);
  }

  private deliver(dir: 0 | 1, s: TcpSegment, o: SendOptions): number {
    const v = this.tracker.track(this.store, this.slot, dir, s, this.now);
    if ((v === TcpVerdict.ACCEPT || v === TcpVerdict.IGNORE) && o.tcpSeq === undefined) {
      const adv = s.payloadLength + ((s.tcpFlags & TcpFlag.SYN) !== 0 ? 1 : 0) + ((s.tcpFlags & TcpFlag.FIN) !== 0 ? 1 : 0);
      this.nxt[dir] = (this.nxt[dir] + adv) >>> 0;
    }
    return v;
  }

  /** The usual three-way handshake; returns the three verdicts. */
  handshake(client: SendOptions = {}, server: SendOptions = {}): number[] {
    return [this.open(client), this.send(1, SYNACK, server), this.send(0, ACK)];
  }
}

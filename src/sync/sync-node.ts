/**
 * Sync for one node: both halves (every node sends its own entries and receives its peer's) on
 * one transport, with the checks every datagram passes before anything reads it: frame, MAC,
 * not our own, not a replay. Each refusal is counted by reason (stats.ts); nothing here throws
 * on input.
 */
import type { Keyring } from './auth.js';
import { Framer } from './framer.js';
import { SyncReceiver, type PeerView } from './receiver.js';
import { SyncSender } from './sender.js';
import { RecvDrop, SyncStats } from './stats.js';
import type { SyncTransport } from './transport.js';
import {
  HEADER_BYTES, IP_UDP_OVERHEAD, MAC_BYTES, MsgFlag, MsgType, isDataType, msgTypeNames, newHeader, readHeader,
} from './wire.js';
import type { ConntrackTable } from '../node/conntrack/index.js';
import type { HelperStateIO } from '../node/conntrack/helpers/state.js';

export interface SyncNodeOptions {
  /** This node's id on the sync link (unique in the pair, non-zero). */
  nodeId: number;
  keys: Keyring;
  /** Largest datagram on the wire, IP and UDP headers included. */
  mtu?: number;
  /**
   * Coalescing window: 0 (default) flushes once the current turn of the event loop is done, so
   * the changes of one batch of packets share datagrams and nothing waits for a timer; a few ms
   * make fuller datagrams (fewer bytes per change) at the cost of that much lag.
   */
  flushMs?: number;
  refreshMs?: number;
  windowSize?: number;
  aliveIdleMs?: number;
  aliveIntervalMs?: number;
  resyncBatch?: number;
  /**
   * Bulk dump messages in flight at most (beyond the peer's last REPORT). Default: what fits in
   * 160 KiB, under the 208 KiB a receive socket gets when net.core.rmem_max is Linux's default.
   */
  maxInFlight?: number;
  /** Entries per second a bulk dump sends at most, to spare a shared sync link (0: no limit). */
  resyncRate?: number;
  nackRetryMs?: number;
  reportMs?: number;
  resyncRetryMs?: number;
  exempt?: (table: ConntrackTable, slot: number) => boolean;
  /**
   * The engine's clock (engine.clock: ms since 1970, sub-ms precision): entry timeouts are read
   * and written against it, and sync timing uses it too. Default: the engine's default clock.
   */
  clock?: () => number;
  /** Start time that makes the epoch (default Date.now()). */
  epoch?: number;
  /** Connection helpers' state (engine.helperState): sent and applied with helper'd entries. */
  helperState?: HelperStateIO | null;
}

export const SYNC_DEFAULTS = {
  mtu: 1500,
  flushMs: 0,
  refreshMs: 1000,
  windowSize: 8192,
  aliveIdleMs: 5,
  aliveIntervalMs: 200,
  resyncBatch: 4096,
  /** Bytes of bulk dump in flight (see maxInFlight). */
  inFlightBytes: 160 * 1024,
  resyncRate: 0,
  nackRetryMs: 10,
  reportMs: 10,
  resyncRetryMs: 100,
} as const;

/** Lag samples kept for `sync status` percentiles. */
const LAG_RING = 4096;

export class SyncNode {
  readonly stats = new SyncStats();
  readonly sender: SyncSender;
  readonly receiver: SyncReceiver;
  readonly framer: Framer;
  readonly epoch: number;
  /** Called with each sync lag sample (ms), e.g. a Prometheus histogram's observe. */
  onLag: ((ms: number) => void) | null = null;
  readonly #lag = new Float64Array(LAG_RING);
  #lagCount = 0;
  readonly #h = newHeader();
  readonly #clock: () => number;

  constructor(readonly table: ConntrackTable, readonly transport: SyncTransport, o: SyncNodeOptions) {
    const mtu = o.mtu ?? SYNC_DEFAULTS.mtu;
    const payloadBytes = mtu - IP_UDP_OVERHEAD - HEADER_BYTES - MAC_BYTES;
    const origin = Date.now() - performance.now();
    this.#clock = o.clock ?? (() => origin + performance.now());
    this.epoch = o.epoch ?? Date.now();
    this.framer = new Framer(o.nodeId, this.epoch, o.keys, transport, this.stats, payloadBytes);
    this.sender = new SyncSender(table, this.framer, this.stats, {
      payloadBytes,
      flushMs: o.flushMs ?? SYNC_DEFAULTS.flushMs,
      refreshMs: o.refreshMs ?? SYNC_DEFAULTS.refreshMs,
      windowSize: o.windowSize ?? SYNC_DEFAULTS.windowSize,
      aliveIdleMs: o.aliveIdleMs ?? SYNC_DEFAULTS.aliveIdleMs,
      aliveIntervalMs: o.aliveIntervalMs ?? SYNC_DEFAULTS.aliveIntervalMs,
      resyncBatch: o.resyncBatch ?? SYNC_DEFAULTS.resyncBatch,
      maxInFlight: o.maxInFlight ?? Math.max(8, Math.floor(SYNC_DEFAULTS.inFlightBytes / mtu)),
      resyncRate: o.resyncRate ?? SYNC_DEFAULTS.resyncRate,
      exempt: o.exempt,
      clock: this.#clock,
      helperState: o.helperState ?? null,
    });
    this.receiver = new SyncReceiver(table, this.framer, this.stats, {
      nackRetryMs: o.nackRetryMs ?? SYNC_DEFAULTS.nackRetryMs,
      reportMs: o.reportMs ?? SYNC_DEFAULTS.reportMs,
      resyncRetryMs: o.resyncRetryMs ?? SYNC_DEFAULTS.resyncRetryMs,
      maxHeld: o.windowSize ?? SYNC_DEFAULTS.windowSize,
      clock: this.#clock,
      helperState: o.helperState ?? null,
    });
    transport.onMessage = (buf) => this.receive(buf);
  }

  /** Begin: ask the peer for its whole table, and tell it where we stand. */
  start(): void {
    this.receiver.requestInitialResync();
    this.sender.sendAlive();
  }

  /** Ask the peer for a bulk resync now (operator); see SyncReceiver.requestResync. */
  requestResync(): void {
    this.receiver.requestResync();
  }

  /** The event sink the engine's table must call (engine.setEventSink). */
  get sink(): SyncSender {
    return this.sender;
  }

  get peer(): PeerView | null {
    return this.receiver.peer;
  }

  /** One datagram from the transport. Never throws on its content. */
  receive(buf: Buffer): void {
    const h = this.#h;
    const bad = readHeader(buf, h);
    if (bad !== null) {
      this.stats.drop(bad);
      return;
    }
    const auth = this.framer.keys.verify(buf, h.keyId);
    if (auth !== 'ok') {
      this.stats.drop(auth === 'unknown_key' ? RecvDrop.UNKNOWN_KEY : RecvDrop.BAD_MAC);
      return;
    }
    if (h.sender === this.framer.nodeId) {
      this.stats.drop(RecvDrop.OWN);
      return;
    }
    this.stats.countReceived(msgTypeNames[h.type], buf.length);
    // What the peer reads, as it says on every message (a restart into another version changes it).
    this.sender.peerReadsReversed = (h.flags & MsgFlag.READS_REVERSED) !== 0;
    if (isDataType(h.type)) {
      if ((h.type === MsgType.RESYNC_END && h.payloadLength !== 8) || (h.type === MsgType.UPDATE && h.payloadLength < 2)) {
        this.stats.drop(RecvDrop.BAD_PAYLOAD);
        return;
      }
      this.receiver.onData(h, buf);
      return;
    }
    if (!controlValid(h.type, h.payloadLength, buf)) {
      this.stats.drop(RecvDrop.BAD_PAYLOAD);
      return;
    }
    if (!this.receiver.controlFresh(h)) return;
    const p = HEADER_BYTES;
    const me = this.framer.nodeId;
    switch (h.type) {
      case MsgType.ALIVE:
        this.receiver.onAlive(h, buf.readUInt32BE(p), buf.readUInt32BE(p + 4));
        return;
      case MsgType.NACK: {
        if (buf.readUInt32BE(p) !== me) return this.stats.drop(RecvDrop.NOT_FOR_US);
        const n = buf.readUInt16BE(p + 4);
        for (let i = 0; i < n; i++) this.sender.onNack(buf.readUInt32BE(p + 6 + i * 8), buf.readUInt32BE(p + 10 + i * 8));
        return;
      }
      case MsgType.RESYNC_REQUEST: {
        const target = buf.readUInt32BE(p);
        if (target !== 0 && target !== me) return this.stats.drop(RecvDrop.NOT_FOR_US);
        this.sender.startResync(buf.readUInt32BE(p + 4));
        return;
      }
      case MsgType.REPORT: {
        if (buf.readUInt32BE(p) !== me) return this.stats.drop(RecvDrop.NOT_FOR_US);
        const n = buf[p + 8];
        const samples: [number, number][] = [];
        for (let i = 0; i < n; i++) samples.push([buf.readUInt32BE(p + 9 + i * 8), buf.readUInt32BE(p + 13 + i * 8)]);
        this.sender.onReport(buf.readUInt32BE(p + 4), samples, (ms) => this.#observeLag(ms));
        return;
      }
    }
  }

  #observeLag(ms: number): void {
    this.#lag[this.#lagCount++ % LAG_RING] = ms;
    this.onLag?.(ms);
  }

  /** Percentile (0-100) of the recent lag samples, ms; NaN without samples. */
  lagPercentile(p: number): number {
    const n = Math.min(this.#lagCount, LAG_RING);
    if (n === 0) return NaN;
    const a = Array.from(this.#lag.subarray(0, n)).sort((x, y) => x - y);
    return a[Math.min(n - 1, Math.floor((p / 100) * n))];
  }

  async close(): Promise<void> {
    this.sender.close();
    this.receiver.close();
    await this.transport.close();
  }
}

/** The payload length fits the control message's type and counts. */
function controlValid(type: number, len: number, buf: Buffer): boolean {
  const p = HEADER_BYTES;
  switch (type) {
    case MsgType.ALIVE:
      return len === 8;
    case MsgType.RESYNC_REQUEST:
      return len === 9;
    case MsgType.NACK:
      return len >= 6 && len === 6 + buf.readUInt16BE(p + 4) * 8;
    case MsgType.REPORT:
      return len >= 9 && len === 9 + buf[p + 8] * 8;
    default:
      return false;
  }
}


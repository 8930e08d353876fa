/**
 * The receiving half of sync: applies the peer's data messages in sequence order into this
 * node's own engine table as REPLICATED entries (so a takeover is a change of role, not a copy),
 * asks for what is missing, and reports back.
 *
 *  - In order: a message after the expected one is held (bounded) and the gap NACKed, again every
 *    `nackRetryMs` while it lasts (so a lost NACK or a lost resend is repaired too).
 *  - ALIVE says what the sender sent last: a tail lost before the link went idle is NACKed.
 *  - A first contact starts at the sender's current seq (its earlier messages are history).
 *  - A gap the sender's window no longer holds, a sender that restarted (new epoch), or our own
 *    start: a bulk resync is requested (again every `resyncRetryMs` until it ends). At its end,
 *    replicated entries the dump did not mention are removed: the peer no longer has them.
 *  - Duplicates and replays (sequence already applied, control sequence not newer, epoch older
 *    than the sender's current one) are counted and dropped; the table does not change.
 *  - REPORT every `reportMs` while messages are applied (at least every second): the highest
 *    in-order seq and lag samples.
 */
import { randomInt } from 'node:crypto';
import { ENTRY_RECORD_WORDS, CtStatus, DestroyReason, EntryRecordError, ImportResult, type ConntrackTable } from '../node/conntrack/index.js';
import { decodeEntry, newDecodedEntry, type DecodedEntry } from './entry-codec.js';
import type { HelperStateIO } from '../node/conntrack/helpers/state.js';
import type { Framer } from './framer.js';
import { seqDiff } from './seq.js';
import { RecvDrop, type SyncStats } from './stats.js';
import { EntryOp, HEADER_BYTES, MsgFlag, MsgType, ResyncReason, Section, type Header } from './wire.js';

export interface ReceiverOptions {
  nackRetryMs: number;
  reportMs: number;
  resyncRetryMs: number;
  /** Out-of-order messages held at most (beyond: dropped, and NACKed again later). */
  maxHeld: number;
  clock: () => number;
  /** Where helper'd entries' state goes (expectations, sequence adjustment). */
  helperState?: HelperStateIO | null;
}

/** What the receiver knows of the peer. */
export interface PeerView {
  id: number;
  epoch: number;
  /** Next data seq expected. */
  expected: number;
  /** Messages held out of order. */
  held: number;
  /** ms (own clock) of the last authenticated message from the peer. */
  lastContact: number;
  /** Highest seq the peer said it sent (ALIVE), for the lag in messages. */
  peerNext: number;
  resyncPending: boolean;
  /** A resync completed since the session began: the table holds the peer's whole state. */
  synced: boolean;
}

const ST_REPLICATED = CtStatus.REPLICATED;
const OP_DESTROY = EntryOp.DESTROY;
const OP_CREATE = EntryOp.CREATE;
const S_HELPER = Section.HELPER;
const MAX_NACK_RANGES = 64;
const MAX_SAMPLES = 16;
/** Messages applied between two REPORTs at most. */
const REPORT_EVERY = 32;
/** Entries of a message decoded before applying at first (the batch grows for larger messages). */
const BATCH_ENTRIES = 64;

export class SyncReceiver {
  peer: PeerView | null = null;
  readonly #held = new Map<number, Buffer>();
  #lastCtlSeq = -1;
  /** A message's entries decoded as records (ENTRY_RECORD_WORDS each), their ops, sections, whether the decoder checked them, and tuple hashes. */
  #recs = new Uint32Array(BATCH_ENTRIES * ENTRY_RECORD_WORDS);
  #ops = new Uint8Array(BATCH_ENTRIES);
  #secs = new Uint8Array(BATCH_ENTRIES);
  #checked = new Uint8Array(BATCH_ENTRIES);
  #hashes = new Int32Array(BATCH_ENTRIES * 2);
  readonly #dec: DecodedEntry = newDecodedEntry();
  /**
   * Resync generation each replicated entry was last written in (by slot). As large as the table
   * from the start, and written once (the kernel hands pages out at first touch): grown during a
   * dump, its ~1 k page faults per million entries were paid by the dump.
   */
  #gen: Uint32Array;
  #curGen = 1;
  /**
   * Random start: a restarted receiver's requests never look like repeats of its old ones. Below
   * 2^30, so that it stays one of V8's small integers (half of the receivers had a double here,
   * half not: a change of the field's representation between them threw optimised code away).
   */
  #resyncId = randomInt(1, 0x3fffffff);
  #resyncAskedAt = -Infinity;
  #nackTimer: NodeJS.Timeout | null = null;
  #reportTimer: NodeJS.Timeout | null = null;
  #lastReportAt = -Infinity;
  #appliedSinceReport = false;
  #appliedCount = 0;
  /** Lag samples for the next REPORT: seq and apply time of recent messages (no array per message). */
  readonly #sampleSeq = new Uint32Array(MAX_SAMPLES);
  readonly #sampleAt = new Float64Array(MAX_SAMPLES);
  #sampleCount = 0;
  #closed = false;
  /** A resync ended (tests, logs): entries the dump said it held, entries swept, entries not applied (short). */
  onResyncDone: ((entries: number, swept: number, short: number) => void) | null = null;
  /** Entries refused or not fitting since the last resync request (see #resyncEnd). */
  #dumpShort = 0;
  #earlyDropsAtRequest = 0;

  constructor(
    readonly table: ConntrackTable,
    readonly framer: Framer,
    readonly stats: SyncStats,
    readonly o: ReceiverOptions,
  ) {
    this.#gen = new Uint32Array(Math.max(1024, table.capacity)).fill(0);
    this.#reportTimer = setInterval(() => this.#tick(), o.reportMs);
    this.#reportTimer.unref();
  }

  /** At start: ask whoever is active for everything. */
  requestInitialResync(): void {
    this.#started = true;
    this.#startupAsked = true;
    this.#requestResync(0, ResyncReason.STARTUP);
  }

  /**
   * Ask the peer for its whole table now (an operator's `twinwall sync resync`). Safe at any
   * time: a dump under way restarts, and at its end replicated entries it did not mention go.
   */
  requestResync(): void {
    this.#requestResync(this.peer?.id ?? 0, ResyncReason.OPERATOR);
  }

  /** The startup request is out and no session began yet: first contact need not ask again. */
  #startupAsked = false;
  /**
   * start() was called. Before it (the node still starting: its table not ready to be filled)
   * messages are applied but nothing is asked for: a request then, and another at start with a
   * new id, made the peer begin its dump twice.
   */
  #started = false;

  /** A data message (UPDATE or RESYNC_END), authenticated. */
  onData(h: Header, buf: Buffer): void {
    const p = this.#session(h, h.seq);
    if (p === null) return;
    const d = seqDiff(p.expected, h.seq);
    if (d < 0) {
      this.stats.drop(RecvDrop.DUPLICATE);
      return;
    }
    if (d > 0) {
      if (!this.#held.has(h.seq)) {
        if (this.#held.size >= this.o.maxHeld) {
          this.stats.drop(RecvDrop.OUT_OF_ORDER_FULL);
        } else {
          if (this.#held.size === 0) this.stats.gaps++;
          // A copy: the transport reuses the bytes once this call returns.
          this.#held.set(h.seq, Buffer.from(buf));
        }
      } else this.stats.drop(RecvDrop.DUPLICATE);
      // NACK at once when no NACK is out; otherwise the retry timer covers new holes too.
      if (this.#nackTimer === null) this.#nackGaps();
      return;
    }
    this.#apply(h, buf);
    this.#drain();
  }

  /** ALIVE: the sender's next seq and the oldest it can still resend. */
  onAlive(h: Header, next: number, low: number): void {
    const p = this.#session(h, next);
    if (p === null) return;
    p.peerNext = next;
    if (seqDiff(p.expected, low) > 0) {
      // What we miss is gone from the sender's window: take what we hold, and resync.
      this.#requestResync(p.id, ResyncReason.GAP_LOST);
      for (const s of [...this.#held.keys()]) if (seqDiff(s, low) > 0) this.#held.delete(s);
      p.expected = low;
      this.#drain();
    }
    if (seqDiff(p.expected, next) > 0 && this.#nackTimer === null) this.#nackGaps();
  }

  #session(h: Header, seq: number): PeerView | null {
    const now = this.o.clock();
    const p = this.peer;
    if (p !== null && p.id === h.sender && p.epoch === h.epoch) {
      p.lastContact = now;
      return p;
    }
    if (p !== null && p.id === h.sender && h.epoch < p.epoch) {
      this.stats.drop(RecvDrop.STALE_EPOCH);
      return null;
    }
    // First contact with this sender, or it restarted: start a session where it stands now.
    const restarted = p !== null && p.id === h.sender;
    this.#held.clear();
    this.#lastCtlSeq = -1;
    // The session starts where the sender stands: what it sent before is history, and the resync
    // asked for below brings its whole table. Replaying that history (NACKing back to seq 1, as
    // this did) made it current for the resync's sweep: creates of flows that the other node
    // ended while it was master, whose destroys this sender never sent, stayed here for good
    // (found by the drills: a node restarted after a switchover and a SIGKILL kept 42 stale
    // ESTABLISHED entries).
    this.peer = { id: h.sender, epoch: h.epoch, expected: seq, held: 0, lastContact: now, peerNext: seq, resyncPending: false, synced: false };
    if (!this.#started) {
      // Not started: the startup request will ask (requestInitialResync).
    } else if (this.#startupAsked && !restarted) {
      // Our startup request (to whoever is active) covers this sender: its retries go on with
      // the same id until the dump ends.
      this.#startupAsked = false;
      this.peer.resyncPending = true;
    } else {
      this.#requestResync(h.sender, restarted ? ResyncReason.NEW_EPOCH : ResyncReason.STARTUP);
    }
    return this.peer;
  }

  /** Replay check for control messages: their control sequence must grow. */
  controlFresh(h: Header): boolean {
    const p = this.peer;
    if (p !== null && p.id === h.sender && h.epoch < p.epoch) {
      this.stats.drop(RecvDrop.STALE_EPOCH);
      return false;
    }
    if (p !== null && p.id === h.sender && h.epoch === p.epoch && this.#lastCtlSeq >= 0 && seqDiff(this.#lastCtlSeq, h.seq) <= 0) {
      this.stats.drop(RecvDrop.REPLAY);
      return false;
    }
    if (p !== null && p.id === h.sender && h.epoch === p.epoch) this.#lastCtlSeq = h.seq;
    return true;
  }

  #drain(): void {
    const p = this.peer;
    if (p === null) return;
    for (;;) {
      const b = this.#held.get(p.expected);
      if (b === undefined) break;
      this.#held.delete(p.expected);
      this.#applyBuf(b);
    }
    p.held = this.#held.size;
    if (this.#held.size === 0 && this.#nackTimer !== null) {
      clearTimeout(this.#nackTimer);
      this.#nackTimer = null;
    }
  }

  readonly #hh: Header = { type: 0, keyId: 0, flags: 0, payloadLength: 0, sender: 0, epoch: 0, seq: 0 };

  #applyBuf(buf: Buffer): void {
    const h = this.#hh;
    h.type = buf[3];
    h.flags = buf[5];
    h.payloadLength = buf.readUInt16BE(6);
    h.seq = buf.readUInt32BE(20);
    this.#apply(h, buf);
  }

  /** Apply the message with the expected seq. */
  #apply(h: Header, buf: Buffer): void {
    const p = this.peer as PeerView;
    p.expected = (h.seq + 1) >>> 0;
    const now = this.o.clock();
    if (h.type === MsgType.RESYNC_END) {
      this.#resyncEnd(buf.readUInt32BE(HEADER_BYTES), buf.readUInt32BE(HEADER_BYTES + 4));
    } else {
      const resync = (h.flags & MsgFlag.RESYNC) !== 0;
      // A dump in progress: no need to ask again while it keeps coming.
      if (resync) this.#resyncAskedAt = now;
      this.#applyUpdate(buf, HEADER_BYTES, HEADER_BYTES + h.payloadLength, now);
    }
    this.#appliedSinceReport = true;
    // Under a burst (a dump), report every REPORT_EVERY messages: the sender paces on REPORTs.
    if (++this.#appliedCount % REPORT_EVERY === 0) this.#report(now);
    const k = this.#sampleCount < MAX_SAMPLES ? this.#sampleCount++ : MAX_SAMPLES - 1;
    this.#sampleSeq[k] = h.seq;
    this.#sampleAt[k] = now;
  }

  #applyUpdate(buf: Buffer, off: number, end: number, now: number): void {
    if (end - off < 2) {
      this.stats.drop(RecvDrop.BAD_PAYLOAD);
      return;
    }
    const count = buf.readUInt16BE(off);
    let o = off + 2;
    const dec = this.#dec;
    // Runs of entries: decoded into the batch, their buckets loaded together (table.hashBatch),
    // then applied in order. An entry with helper state ends its run (its words are in dec).
    for (let i = 0; i < count; ) {
      let n = 0;
      let why: string | null = null;
      for (; i < count; ) {
        if ((n + 1) * ENTRY_RECORD_WORDS > this.#recs.length) this.#growBatch();
        why = decodeEntry(buf, o, end, this.#recs, dec, n * ENTRY_RECORD_WORDS);
        if (why !== null) break;
        o += dec.length;
        this.#ops[n] = dec.op;
        this.#secs[n] = dec.sections;
        this.#checked[n] = dec.checked ? 1 : 0;
        n++;
        i++;
        if ((dec.sections & S_HELPER) !== 0) break;
      }
      if (n > 0) this.#applyRun(n, now);
      if (why !== null) {
        // The rest of the message cannot be framed: count it once and stop.
        this.stats.drop(RecvDrop.BAD_PAYLOAD);
        return;
      }
    }
  }

  /** Apply the n decoded entries of the batch, in order. */
  #applyRun(n: number, now: number): void {
    const t = this.table;
    const recs = this.#recs;
    const hashes = this.#hashes;
    t.hashBatch(recs, 0, ENTRY_RECORD_WORDS, n, hashes);
    for (let j = 0; j < n; j++) {
      const ro = j * ENTRY_RECORD_WORDS;
      const op = this.#ops[j];
      const sections = this.#secs[j];
      if (op === OP_DESTROY) {
        const node = t.lookup(recs, ro);
        if (node >= 0 && (node & 1) === 0 && (t.statusOf(node >> 1) & ST_REPLICATED) !== 0) {
          t.destroy(node >> 1, DestroyReason.REPLICATED);
          this.stats.entriesApplied.destroy++;
        }
        continue;
      }
      let r: number;
      try {
        r = t.importHashed(recs, ro, now, ST_REPLICATED, (sections & Section.COUNTERS) === 0, ST_REPLICATED, hashes[2 * j], hashes[2 * j + 1], this.#checked[j] === 1);
      } catch (e) {
        if (!(e instanceof EntryRecordError)) throw e;
        this.stats.entriesRefused++;
        this.#dumpShort++;
        continue;
      }
      if (r === ImportResult.TABLE_FULL) {
        this.stats.entriesTableFull++;
        this.#dumpShort++;
        continue;
      }
      if (r === ImportResult.KEPT) {
        // Our own live entry (we took over; the peer's message was older): ours stands.
        this.stats.entriesKeptLocal++;
        continue;
      }
      const slot = t.importedSlot;
      // Only the run's last entry has helper state (see #applyUpdate): its words are in #dec.
      const dec = this.#dec;
      if ((sections & S_HELPER) !== 0 && this.o.helperState != null && !this.o.helperState.importState(slot, dec.helper, dec.helperWords, now)) {
        this.stats.entriesRefused++;
      }
      if (slot >= this.#gen.length) this.#growGen(t.capacity);
      this.#gen[slot] = this.#curGen;
      if (r === ImportResult.CREATED || op === OP_CREATE) this.stats.entriesApplied.create++;
      else this.stats.entriesApplied.update++;
    }
  }

  /** Room for twice the entries (what the run decoded so far is kept; hashes are made later). */
  #growBatch(): void {
    const n = this.#ops.length * 2;
    this.#recs = grown(this.#recs, new Uint32Array(n * ENTRY_RECORD_WORDS));
    this.#ops = grown(this.#ops, new Uint8Array(n));
    this.#secs = grown(this.#secs, new Uint8Array(n));
    this.#checked = grown(this.#checked, new Uint8Array(n));
    this.#hashes = new Int32Array(n * 2);
  }

  #resyncEnd(id: number, _entries: number): void {
    const p = this.peer as PeerView;
    if (!p.resyncPending || id !== this.#resyncId) {
      // The end of a dump someone else asked for (or an older one of ours): nothing to sweep.
      return;
    }
    // Entries of the peer that no message since our request mentioned are gone on the peer.
    const t = this.table;
    const gen = this.#gen;
    const cur = this.#curGen;
    let swept = 0;
    // A master adopting a large table lazily (table.adoptReplicated): its REPLICATED entries are
    // its own not yet made live, not the peer's; a restarted peer's dump must not sweep them.
    if (!t.adoptReplicated) t.forEach((slot) => {
      if ((t.statusOf(slot) & ST_REPLICATED) !== 0 && (slot >= gen.length || gen[slot] !== cur)) {
        t.destroy(slot, DestroyReason.REPLICATED);
        swept++;
      }
    });
    this.stats.resyncSwept += swept;
    this.stats.resyncsCompleted++;
    p.resyncPending = false;
    // Entries the table refused since the request (full, invalid) or evicted to make room: not
    // the peer's whole table.
    // Not synced then, and said: a node that takes over with part of the table drops the rest.
    // Entries evicted meanwhile to make room (early drop) count too.
    const short = this.#dumpShort + (t.earlyDrops - this.#earlyDropsAtRequest);
    p.synced = short === 0;
    if (short > 0) this.stats.resyncsShort++;
    this.onResyncDone?.(_entries, swept, short);
  }

  #requestResync(target: number, reason: number): void {
    const p = this.peer;
    if (p !== null) p.resyncPending = true;
    this.#dumpShort = 0;
    this.#earlyDropsAtRequest = this.table.earlyDrops;
    // A new generation: from now on every entry applied is known to be current.
    this.#curGen = (this.#curGen + 1) >>> 0 || 1;
    this.#resyncId = (this.#resyncId + 1) >>> 0 || 1;
    this.#resyncAskedAt = this.o.clock();
    this.#sendResyncRequest(target, reason);
  }

  #sendResyncRequest(target: number, reason: number): void {
    this.stats.resyncsRequested++;
    const b = this.framer.controlBuffer;
    b.writeUInt32BE(target >>> 0, HEADER_BYTES);
    b.writeUInt32BE(this.#resyncId, HEADER_BYTES + 4);
    b[HEADER_BYTES + 8] = reason;
    this.framer.sendControl(MsgType.RESYNC_REQUEST, 9);
  }

  /** NACK the holes between the expected seq and what is held or announced. */
  #nackGaps(): void {
    const p = this.peer;
    if (p === null) return;
    let top = p.peerNext;
    for (const s of this.#held.keys()) if (seqDiff(top, s) >= 0) top = (s + 1) >>> 0;
    if (seqDiff(p.expected, top) <= 0) return;
    const b = this.framer.controlBuffer;
    b.writeUInt32BE(p.id, HEADER_BYTES);
    let n = 0;
    let o = HEADER_BYTES + 6;
    let s = p.expected;
    while (seqDiff(s, top) > 0 && n < MAX_NACK_RANGES) {
      if (this.#held.has(s)) {
        s = (s + 1) >>> 0;
        continue;
      }
      const first = s;
      while (seqDiff(s, top) > 0 && !this.#held.has(s)) s = (s + 1) >>> 0;
      b.writeUInt32BE(first, o);
      b.writeUInt32BE((s - 1) >>> 0, o + 4);
      o += 8;
      n++;
    }
    if (n === 0) return;
    b.writeUInt16BE(n, HEADER_BYTES + 4);
    this.framer.sendControl(MsgType.NACK, o - HEADER_BYTES);
    this.stats.nacksSent++;
    if (this.#nackTimer === null && !this.#closed) {
      this.#nackTimer = setTimeout(() => {
        this.#nackTimer = null;
        this.#nackGaps();
      }, this.o.nackRetryMs);
    }
  }

  #tick(): void {
    const now = this.o.clock();
    const p = this.peer;
    // Keep asking for the resync until it ends (the request or the dump's end may be lost).
    if (this.#started && (p === null || p.resyncPending) && now - this.#resyncAskedAt >= this.o.resyncRetryMs) {
      this.#resyncAskedAt = now;
      this.#sendResyncRequest(p?.id ?? 0, p === null ? ResyncReason.STARTUP : ResyncReason.GAP_LOST);
    }
    if (p === null) return;
    if (!this.#appliedSinceReport && now - this.#lastReportAt < 1000) return;
    this.#report(now);
  }

  #report(now: number): void {
    const p = this.peer as PeerView;
    this.#appliedSinceReport = false;
    this.#lastReportAt = now;
    const b = this.framer.controlBuffer;
    b.writeUInt32BE(p.id, HEADER_BYTES);
    b.writeUInt32BE((p.expected - 1) >>> 0, HEADER_BYTES + 4);
    const n = this.#sampleCount;
    b[HEADER_BYTES + 8] = n;
    let o = HEADER_BYTES + 9;
    for (let i = 0; i < n; i++) {
      b.writeUInt32BE(this.#sampleSeq[i], o);
      b.writeUInt32BE(Math.min(0xffffffff, Math.round((now - this.#sampleAt[i]) * 1000)), o + 4);
      o += 8;
    }
    this.#sampleCount = 0;
    this.framer.sendControl(MsgType.REPORT, o - HEADER_BYTES);
  }

  close(): void {
    this.#closed = true;
    if (this.#nackTimer !== null) clearTimeout(this.#nackTimer);
    if (this.#reportTimer !== null) clearInterval(this.#reportTimer);
    this.#nackTimer = this.#reportTimer = null;
  }

  #growGen(cap: number): void {
    const g = new Uint32Array(Math.max(cap, this.#gen.length * 2));
    g.set(this.#gen);
    this.#gen = g;
  }
}

/** `to` holding `from` at its start. */
function grown<T extends Uint8Array | Uint32Array>(from: T, to: T): T {
  to.set(from);
  return to;
}

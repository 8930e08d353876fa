/**
 * The sending half of sync: the conntrack event sink of the node, an aggregator that coalesces
 * changes per flow, a packer that fills MTU-sized UPDATE messages straight from the table, the
 * resend window for NACKs, ALIVE when idle (so loss of the last messages is seen), and the bulk
 * resync dump.
 *
 * What is sent when:
 *  - new entries and changes of state, NAT mapping, mark or label: at the end of the current turn
 *    of the event loop (flushMs 0), or within `flushMs` (one entry per
 *    flow however many packets changed it meanwhile);
 *  - changes of window data, counters and timeout only ("lazy"): every `refreshMs`, so the
 *    standby's timeouts follow live flows without a message per packet. After takeover the TCP
 *    tracker is tolerant until it has seen both directions (issue 6), so window data a refresh
 *    old is safe;
 *  - destroys: at once into the message being packed; a flow created and destroyed within the
 *    flush window is never sent at all;
 *  - entries received from the peer (REPLICATED) are never sent back.
 */
import { ENTRY_RECORD_WORDS, CtChange, CtStatus, TUPLE_WORDS, type ConntrackEventSink, type ConntrackTable } from '../node/conntrack/index.js';
import { encodeRecord, entryBytes, helperSectionBytes, recordSections } from './entry-codec.js';
import { CT_HELPER_MASK } from '../node/conntrack/helpers/ids.js';
import { HELPER_STATE_MAX_WORDS, type HelperStateIO } from '../node/conntrack/helpers/state.js';
import type { Framer } from './framer.js';
import { ResendWindow } from './resend-window.js';
import { seqDiff } from './seq.js';
import type { SyncStats } from './stats.js';
import { EntryOp, HEADER_BYTES, MAC_BYTES, MsgFlag, MsgType, Section } from './wire.js';

export interface SenderOptions {
  /** Payload room of a datagram: sync MTU - IP/UDP - header - MAC. */
  payloadBytes: number;
  flushMs: number;
  refreshMs: number;
  windowSize: number;
  /** ALIVE this long after the last data message when nothing else was sent. */
  aliveIdleMs: number;
  /** ALIVE at least this often (heartbeat). */
  aliveIntervalMs: number;
  /** Entries dumped per turn of the event loop during a resync. */
  resyncBatch: number;
  /** Dump messages sent at most beyond what the peer reported applied. */
  maxInFlight: number;
  /** Entries per second a bulk dump sends at most (0: as fast as the peer applies). */
  resyncRate: number;
  /** Entries not replicated (exemptions); checked once per entry at creation. */
  exempt?: (table: ConntrackTable, slot: number) => boolean;
  clock: () => number;
  /** Connection helpers' state of helper'd entries (expectations, sequence adjustment), sent with them. */
  helperState?: HelperStateIO | null;
}

// Per-slot flags.
const F_NOW = 1;
const F_LAZY = 2;
const F_SENT = 4;
const F_EXEMPT = 8;

const S_HELPER = Section.HELPER;
const S_REVERSED = Section.REPLY_REVERSED;
/** Longest wait between ALIVEs while the peer has not confirmed recent data (see #armIdle). */
const ALIVE_REPAIR_MS = 20;
const ALIVE_REPAIR_WINDOW_MS = 500;
const EAGER = CtChange.STATE | CtChange.NAT | CtChange.MARK | CtChange.LABEL | CtChange.HELPER;
const ST_REPLICATED = CtStatus.REPLICATED;
const OP_CREATE = EntryOp.CREATE;
const OP_UPDATE = EntryOp.UPDATE;
const OP_DESTROY = EntryOp.DESTROY;
const T_UPDATE = MsgType.UPDATE;
const LAZY_SECTIONS = Section.COUNTERS;
/**
 * A dump sends no counters: without them an entry takes 40 bytes instead of 72, so a datagram
 * carries 35 instead of 19 and a dump costs half the messages (each one a MAC, a send and a
 * receive): 0.5 -> 0.9 M entries/s dumped, 0.4 -> 0.75 M/s applied, measured. Counters follow
 * with the lazy refresh of every flow that sees traffic; `ct diff` does not compare them.
 */
const DUMP_SECTIONS = Section.AGE;
/**
 * The value of a time field (ms, the node's clock) before it is set: not -1 or 0. A field that
 * starts as a small integer and then holds a time since 1970 changes representation, which
 * changes the object's hidden class and throws away all optimised code that uses the sender (V8
 * deopts "wrong map" in the table's import and confirm, which call its ctNew): on a standby, in
 * the middle of its first bulk resync.
 */
const NOT_YET = -Infinity;
/** A dump paused this long for lack of REPORTs re-checks and prompts the peer with ALIVE. */
const DUMP_STALL_MS = 20;
/** A message is not resent twice within this many ms (duplicate NACKs). */
const RESEND_GUARD_MS = 2;

export class SyncSender implements ConntrackEventSink {
  readonly window: ResendWindow;
  /** Next data sequence number. Starts at 1 each epoch, so a receiver can tell a fresh start. */
  nextSeq = 1;
  /** Highest seq the peer reported applied in order (REPORT); -1 before any. */
  peerApplied = -1;
  /**
   * The peer's latest authenticated message said it reads REPLY_REVERSED entries (wire.ts): flows
   * without NAT then go without their reply tuple (12 bytes of an IPv4 entry's 40).
   */
  peerReadsReversed = false;
  lastDataSentAt = -Infinity;

  #flags: Uint8Array;
  #nowList: Int32Array;
  #nowCount = 0;
  #lazyList: Int32Array;
  #lazyCount = 0;
  readonly #rec = new Uint32Array(ENTRY_RECORD_WORDS);

  // The message being packed: its ring buffer, write offset, entry count, flags, oldest change.
  #msg: Buffer | null = null;
  #off = 0;
  #count = 0;
  #msgFlags = 0;
  #msgChangedAt = NOT_YET;
  /** Oldest unsent change (for the lag figure). */
  #pendingSince = NOT_YET;

  #flushTimer: NodeJS.Timeout | null = null;
  #flushImmediate: NodeJS.Immediate | null = null;
  #refreshTimer: NodeJS.Timeout | null = null;
  #aliveTimer: NodeJS.Timeout | null = null;
  #idleTimer: NodeJS.Timeout | null = null;

  /** The helper state of the entry in #rec (words; #helperN of them, 0: none). */
  readonly #helper = new Uint32Array(HELPER_STATE_MAX_WORDS);
  #helperN = 0;

  // Bulk resync dump.
  #dumpCursor = -1;
  #dumpId = 0;
  #dumpCount = 0;
  #dumpAgain = false;
  #dumpScheduled = false;
  #dumpStartedAt = NOT_YET;
  /** Last seq sent before the dump began (flow control before the first REPORT). */
  #dumpBase = 0;
  #pausedAt = NOT_YET;
  #dumpWake: NodeJS.Timeout | null = null;
  #closed = false;

  constructor(
    readonly table: ConntrackTable,
    readonly framer: Framer,
    readonly stats: SyncStats,
    readonly o: SenderOptions,
  ) {
    this.window = new ResendWindow(o.windowSize, HEADER_BYTES + o.payloadBytes + MAC_BYTES);
    const cap = table.capacity;
    this.#flags = new Uint8Array(cap);
    this.#nowList = new Int32Array(1024);
    this.#lazyList = new Int32Array(1024);
    this.#refreshTimer = setInterval(() => this.#refresh(), o.refreshMs);
    this.#aliveTimer = setInterval(() => this.#aliveTick(), o.aliveIntervalMs);
    this.#refreshTimer.unref();
    this.#aliveTimer.unref();
  }

  /** Whether a dump is running. */
  get resyncing(): boolean {
    return this.#dumpCursor >= 0;
  }

  // ---- the event sink --------------------------------------------------------------------

  ctNew(table: ConntrackTable, slot: number): void {
    if ((table.statusOf(slot) & ST_REPLICATED) !== 0) return;
    if (slot >= this.#flags.length) this.#growFlags(table.capacity);
    if (this.o.exempt !== undefined && this.o.exempt(table, slot)) {
      this.#flags[slot] = F_EXEMPT;
      return;
    }
    this.#flags[slot] = F_NOW;
    this.#pushNow(slot);
  }

  ctUpdate(table: ConntrackTable, slot: number, changes: number): void {
    if ((table.statusOf(slot) & ST_REPLICATED) !== 0) return;
    if (slot >= this.#flags.length) this.#growFlags(table.capacity);
    const f = this.#flags[slot];
    if ((f & F_EXEMPT) !== 0) return;
    if ((changes & EAGER) !== 0) {
      if ((f & F_NOW) === 0) {
        this.#flags[slot] = f | F_NOW;
        this.#pushNow(slot);
      }
    } else if ((f & (F_LAZY | F_NOW)) === 0) {
      this.#flags[slot] = f | F_LAZY;
      if (this.#lazyCount === this.#lazyList.length) this.#lazyList = grow(this.#lazyList);
      this.#lazyList[this.#lazyCount++] = slot;
    }
  }

  ctDestroy(table: ConntrackTable, slot: number, _reason: number): void {
    if (slot >= this.#flags.length) return;
    const f = this.#flags[slot];
    this.#flags[slot] = 0;
    // Not sent: a flow created and gone within the flush window (the peer never heard of it), an
    // exempt one, or the peer's own entry. An entry with no flags at all is one this node took
    // over (the peer sent it, so it has it): its destroy must go, or the peer, now the backup,
    // keeps it (found by the drills: a restarted node ended with entries the master had dropped).
    // (A REPLICATED entry is the peer's, unless this node adopts a large table lazily: then it is
    // ours not yet made live, and its destroy must go as well.)
    if ((f & (F_EXEMPT | F_NOW | F_SENT)) === F_NOW || (f & F_EXEMPT) !== 0) return;
    if ((table.statusOf(slot) & ST_REPLICATED) !== 0 && !table.adoptReplicated) return;
    // A destroy carries the original tuple only.
    const w = table.tuples;
    const o = table.tupleOffset(slot, 0);
    for (let i = 0; i < TUPLE_WORDS; i++) this.#rec[i] = w[o + i];
    this.#helperN = 0;
    this.#put(OP_DESTROY, 0, 0);
    this.stats.entriesSent.destroy++;
    this.#armFlush();
  }

  // ---- packing ---------------------------------------------------------------------------

  #pushNow(slot: number): void {
    if (this.#nowCount === this.#nowList.length) this.#nowList = grow(this.#nowList);
    this.#nowList[this.#nowCount++] = slot;
    if (this.#pendingSince < 0) this.#pendingSince = this.o.clock();
    this.#armFlush();
  }

  /**
   * flushMs 0: flush once the current turn of the event loop is done (after the batch of packets
   * being processed), the lowest latency with coalescing per batch; above 0: a timer.
   */
  #armFlush(): void {
    if (this.#flushTimer !== null || this.#flushImmediate !== null || this.#closed) return;
    if (this.o.flushMs <= 0) this.#flushImmediate = setImmediate(this.#flushNow);
    else this.#flushTimer = setTimeout(this.#flushNow, this.o.flushMs);
  }

  readonly #flushNow = (): void => {
    this.#flushImmediate = null;
    this.#flushTimer = null;
    this.flush();
  };

  /** The entry at `slot` into #rec, and its helper state (if it has a helper) into #helper. */
  #export(t: ConntrackTable, slot: number, now: number): void {
    t.exportEntry(slot, now, this.#rec, 0);
    const hs = this.o.helperState;
    this.#helperN = hs != null && (t.statusOf(slot) & CT_HELPER_MASK) !== 0 ? hs.exportState(slot, now, this.#helper) : 0;
  }

  /** Put the entry in #rec (and #helper) into the message being packed, sealing it first when full. */
  #put(op: number, wanted: number, msgFlags: number): void {
    const rec = this.#rec;
    let sections = recordSections(rec, op, this.peerReadsReversed ? wanted | S_REVERSED : wanted);
    if (this.#helperN > 0 && op !== OP_DESTROY) sections |= S_HELPER;
    const helper = (sections & S_HELPER) !== 0 ? this.#helper : null;
    const need = entryBytes(rec[9] >>> 8, op, sections, helper !== null ? helperSectionBytes(rec[9] >>> 8, helper) : 0);
    if (this.#msg !== null && (this.#off + need > HEADER_BYTES + this.o.payloadBytes || this.#msgFlags !== msgFlags || this.#count === 0xffff)) {
      this.#seal();
    }
    if (this.#msg === null) {
      this.#msg = this.window.slotFor(this.nextSeq);
      this.#off = HEADER_BYTES + 2;
      this.#count = 0;
      this.#msgFlags = msgFlags;
      this.#msgChangedAt = this.#pendingSince >= 0 ? this.#pendingSince : this.o.clock();
    }
    this.#off = encodeRecord(rec, op, sections, this.#msg, this.#off, helper);
    this.#count++;
  }

  /** Seal the message being packed and send it. */
  #seal(): void {
    const m = this.#msg;
    if (m === null) return;
    m.writeUInt16BE(this.#count, HEADER_BYTES);
    const seq = this.nextSeq;
    const len = this.framer.seal(m, T_UPDATE, this.#msgFlags, seq, this.#off - HEADER_BYTES);
    const now = this.o.clock();
    this.window.commit(seq, len, now, this.#msgChangedAt);
    this.nextSeq = (seq + 1) >>> 0;
    this.#msg = null;
    this.framer.send(m.subarray(0, len), T_UPDATE);
    this.lastDataSentAt = now;
    this.#armIdle();
  }

  /** Send everything pending now (the flush timer calls this). */
  flush(): void {
    if (this.#flushTimer !== null) {
      clearTimeout(this.#flushTimer);
      this.#flushTimer = null;
    }
    if (this.#flushImmediate !== null) {
      clearImmediate(this.#flushImmediate);
      this.#flushImmediate = null;
    }
    const t = this.table;
    const now = this.o.clock();
    const flags = this.#flags;
    const list = this.#nowList;
    for (let i = 0; i < this.#nowCount; i++) {
      const slot = list[i];
      const f = flags[slot];
      if ((f & F_NOW) === 0) continue;
      // No longer ours (we left mastership since the change): the peer owns it now.
      if ((t.statusOf(slot) & ST_REPLICATED) !== 0) {
        flags[slot] = f & ~(F_NOW | F_LAZY);
        continue;
      }
      flags[slot] = (f & ~(F_NOW | F_LAZY)) | F_SENT;
      this.#export(t, slot, now);
      const op = (f & F_SENT) !== 0 ? OP_UPDATE : OP_CREATE;
      this.#put(op, op === OP_CREATE ? 0 : LAZY_SECTIONS, 0);
      if (op === OP_CREATE) this.stats.entriesSent.create++;
      else this.stats.entriesSent.update++;
    }
    this.#nowCount = 0;
    this.#pendingSince = NOT_YET;
    this.#seal();
  }

  /** Lazy changes (window, counters, timeout), every refreshMs. */
  #refresh(): void {
    if (this.#lazyCount === 0) return;
    const t = this.table;
    const now = this.o.clock();
    const flags = this.#flags;
    const list = this.#lazyList;
    for (let i = 0; i < this.#lazyCount; i++) {
      const slot = list[i];
      const f = flags[slot];
      if ((f & F_LAZY) === 0 || (f & F_NOW) !== 0) continue;
      if ((t.statusOf(slot) & ST_REPLICATED) !== 0) {
        flags[slot] = f & ~F_LAZY;
        continue;
      }
      flags[slot] = (f & ~F_LAZY) | F_SENT;
      this.#export(t, slot, now);
      this.#put((f & F_SENT) !== 0 ? OP_UPDATE : OP_CREATE, LAZY_SECTIONS, 0);
      this.stats.entriesSent.update++;
    }
    this.#lazyCount = 0;
    this.#seal();
  }

  // ---- ALIVE -----------------------------------------------------------------------------

  /**
   * After data, ALIVE once the link went idle for aliveIdleMs, then again with doubling delays
   * until a REPORT says the peer applied everything: a lost tail, a lost ALIVE or a lost NACK is
   * repaired within a few milliseconds, not an advert interval. For the first
   * ALIVE_REPAIR_WINDOW_MS of quiet the delay stops doubling at ALIVE_REPAIR_MS, so a burst of
   * loss on the link (20 ms of every 100 in the bench's bursty case) cannot hide the tail for
   * long: with doubling alone the ALIVEs after a burst came 40 and 80 ms apart, and the tables
   * were equal 119-158 ms after the load in 2 runs of 40; later it doubles up to aliveIntervalMs.
   */
  #armIdle(delay = this.o.aliveIdleMs): void {
    if (this.#idleTimer !== null || this.#closed) return;
    this.#idleTimer = setTimeout(() => {
      this.#idleTimer = null;
      const quiet = this.o.clock() - this.lastDataSentAt;
      if (quiet < this.o.aliveIdleMs - 0.5) {
        this.#armIdle();
        return;
      }
      if (this.peerApplied >= 0 && seqDiff(this.peerApplied, this.nextSeq) === 1) return;
      this.sendAlive();
      const cap = quiet < ALIVE_REPAIR_WINDOW_MS ? Math.min(ALIVE_REPAIR_MS, this.o.aliveIntervalMs) : this.o.aliveIntervalMs;
      this.#armIdle(Math.min(delay * 2, Math.max(cap, this.o.aliveIdleMs)));
    }, delay);
  }

  #aliveTick(): void {
    this.sendAlive();
  }

  /** ALIVE: the next seq and the oldest resendable one. */
  sendAlive(): void {
    const b = this.framer.controlBuffer;
    b.writeUInt32BE(this.nextSeq, HEADER_BYTES);
    b.writeUInt32BE(this.window.count > 0 ? this.window.low : this.nextSeq, HEADER_BYTES + 4);
    this.framer.sendControl(MsgType.ALIVE, 8);
  }

  // ---- from the peer's receiver ------------------------------------------------------------

  /** A NACK for [first, last]: resend what the window holds; ALIVE tells the peer what is gone. */
  onNack(first: number, last: number): void {
    this.stats.nacksReceived++;
    const span = seqDiff(first, last);
    if (span < 0 || span > this.window.size) {
      this.sendAlive();
      return;
    }
    let gone = false;
    const now = this.o.clock();
    // At most maxInFlight resends per NACK: a burst larger than the peer's socket buffer would
    // only be lost again. What is left is NACKed again.
    let budget = this.o.maxInFlight;
    for (let i = 0; i <= span && budget > 0; i++) {
      const s = (first + i) >>> 0;
      if (seqDiff(s, this.nextSeq) <= 0) break; // not sent yet
      if (!this.window.has(s)) {
        gone = true;
        this.stats.nackedGone++;
        continue;
      }
      const w = this.window.index(s);
      // Asked again before a resend could have arrived: that resend is on its way.
      if (now - this.window.sentAt[w] < RESEND_GUARD_MS) continue;
      this.framer.send(this.window.get(s), MsgType.UPDATE);
      this.window.sentAt[w] = now;
      this.stats.retransmitted++;
      budget--;
    }
    if (gone) this.sendAlive();
  }

  /** A REPORT: how far the peer applied, and lag samples (seq, microseconds held since apply). */
  onReport(applied: number, samples: ReadonlyArray<readonly [number, number]>, onLag: (ms: number) => void): void {
    if (this.peerApplied < 0 || seqDiff(this.peerApplied, applied) > 0) this.peerApplied = applied;
    const now = this.o.clock();
    for (const [seq, holdUs] of samples) {
      if (!this.window.has(seq)) continue;
      const i = this.window.index(seq);
      // Applied at about: now - hold - the way back (half the round trip of its last send).
      const rtt = Math.max(0, now - this.window.sentAt[i] - holdUs / 1000);
      const appliedAt = now - holdUs / 1000 - rtt / 2;
      onLag(Math.max(0, appliedAt - this.window.changedAt[i]));
    }
    if (this.#dumpCursor >= 0 && !this.#dumpScheduled) this.#scheduleDump();
  }

  // ---- bulk resync -------------------------------------------------------------------------

  /**
   * The peer asked for everything: dump the table. A request repeated with the same id (its
   * retry while our dump runs or just ended) is ignored; a new id restarts a dump under way.
   */
  startResync(id: number): void {
    if (id === this.#dumpId && this.#dumpId !== 0) return;
    this.stats.resyncsServed++;
    this.#dumpId = id;
    if (this.#dumpCursor >= 0) {
      this.#dumpAgain = true;
      return;
    }
    this.#dumpCursor = 0;
    this.#dumpCount = 0;
    this.#dumpStartedAt = this.o.clock();
    this.flush();
    this.#dumpBase = (this.nextSeq - 1) >>> 0;
    this.#scheduleDump();
  }

  #scheduleDump(): void {
    if (this.#closed) return;
    this.#dumpScheduled = true;
    setImmediate(() => {
      this.#dumpScheduled = false;
      this.#dumpStep();
    });
  }

  #dumpStep(): void {
    if (this.#dumpCursor < 0 || this.#closed) return;
    if (this.#dumpAgain) {
      this.#dumpAgain = false;
      this.#dumpCursor = 0;
      this.#dumpCount = 0;
      this.#dumpStartedAt = this.o.clock();
    }
    // Flow control: at most maxInFlight messages beyond what the peer reported applied (and never
    // half the resend window, or its NACKs would find nothing to resend). A dump faster than the
    // peer applies only overflows socket buffers and turns into a storm of NACKs and resends.
    // A REPORT resumes the dump; if none comes for a while (lost), ALIVE asks for one.
    const acked = this.peerApplied >= 0 && seqDiff(this.#dumpBase, this.peerApplied) >= 0 ? this.peerApplied : this.#dumpBase;
    const limit = Math.min(this.o.maxInFlight, this.window.size / 2);
    if (seqDiff(acked, this.nextSeq) > limit) {
      const now0 = this.o.clock();
      if (this.#pausedAt < 0) this.#pausedAt = now0;
      if (now0 - this.#pausedAt > DUMP_STALL_MS) {
        this.#pausedAt = now0;
        this.sendAlive();
      }
      this.#dumpWake ??= setTimeout(() => {
        this.#dumpWake = null;
        this.#dumpStep();
      }, DUMP_STALL_MS);
      return;
    }
    this.#pausedAt = NOT_YET;
    const t = this.table;
    const now = this.o.clock();
    const end = t.highWater;
    let n = 0;
    let s = this.#dumpCursor;
    const flags = this.#flags;
    // Stop at the in-flight limit within the step too, not only at its start.
    const stopSeq = (acked + limit + 1) >>> 0;
    let batch = this.o.resyncBatch;
    if (this.o.resyncRate > 0) {
      // Rate limit: no more than resyncRate entries per second since the dump began.
      const allowed = Math.floor(((now - this.#dumpStartedAt) / 1000) * this.o.resyncRate) + 1 - this.#dumpCount;
      if (allowed <= 0) {
        this.#dumpWake ??= setTimeout(() => {
          this.#dumpWake = null;
          this.#dumpStep();
        }, 1);
        return;
      }
      batch = Math.min(batch, allowed);
    }
    // The peer's entries are not ours to dump, except while this node, master now, adopts a large
    // table lazily (table.adoptReplicated): those not yet made live are ours all the same, and a
    // dump without them left a restarted peer "synced" with part of the table.
    const skip = t.adoptReplicated ? 0 : ST_REPLICATED;
    for (; s < end && n < batch && seqDiff(this.nextSeq, stopSeq) > 0; s++) {
      const st = t.statusOf(s);
      if ((st & CtStatus.CONFIRMED) === 0 || (st & skip) !== 0) continue;
      if (s < flags.length && (flags[s] & F_EXEMPT) !== 0) continue;
      this.#export(t, s, now);
      this.#put(OP_CREATE, DUMP_SECTIONS, MsgFlag.RESYNC);
      if (s < flags.length) flags[s] |= F_SENT;
      n++;
    }
    this.#dumpCount += n;
    this.#dumpCursor = s;
    if (s < end) {
      // The message being packed stays open for the next step: a step stopped by flow control
      // has just put one entry into a fresh message, and sealing it here sent a datagram of one
      // entry per step (a 1 M dump took 29.2 k datagrams instead of 28.6 k). Anything else sent
      // meanwhile (a live flush, a refresh, a new dump) seals it first.
      this.#scheduleDump();
      return;
    }
    this.#seal();
    // Done: RESYNC_END, sequenced after every entry of the dump.
    const seq = this.nextSeq;
    const m = this.window.slotFor(seq);
    m.writeUInt32BE(this.#dumpId, HEADER_BYTES);
    m.writeUInt32BE(this.#dumpCount, HEADER_BYTES + 4);
    const len = this.framer.seal(m, MsgType.RESYNC_END, 0, seq, 8);
    this.window.commit(seq, len, now, now);
    this.nextSeq = (seq + 1) >>> 0;
    this.framer.send(m.subarray(0, len), MsgType.RESYNC_END);
    this.lastDataSentAt = now;
    this.#armIdle();
    this.#dumpCursor = -1;
  }

  close(): void {
    this.#closed = true;
    for (const t of [this.#flushTimer, this.#idleTimer, this.#dumpWake]) if (t !== null) clearTimeout(t);
    if (this.#flushImmediate !== null) clearImmediate(this.#flushImmediate);
    for (const t of [this.#refreshTimer, this.#aliveTimer]) if (t !== null) clearInterval(t);
    this.#flushTimer = this.#idleTimer = this.#refreshTimer = this.#aliveTimer = null;
    this.#dumpCursor = -1;
  }

  #growFlags(cap: number): void {
    const f = new Uint8Array(Math.max(cap, this.#flags.length * 2));
    f.set(this.#flags);
    this.#flags = f;
  }
}

function grow(a: Int32Array): Int32Array {
  const b = new Int32Array(a.length * 2);
  b.set(a);
  return b;
}

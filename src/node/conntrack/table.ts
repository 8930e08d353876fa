/**
 * The conntrack table over typed arrays, so a million entries cost a few hundred megabytes of flat
 * memory and no per-entry JavaScript objects (no GC pressure).
 *
 * What every packet touches sits in one 192-byte record per entry: both tuples, status, mark,
 * deadline, packet and byte counters, and the TCP tracker's 64 bytes. With 100k+ random flows the
 * engine is bound by cache misses, so one record beats a dozen parallel arrays. Colder fields (id,
 * start, label, master) stay in arrays of their own.
 *
 * An entry is a slot number. Each entry is reachable from two hash nodes, node = slot * 2 + dir
 * (dir 0 = original tuple, 1 = reply tuple), held in an open-addressing index (see #index); the
 * hash is seeded randomly per table. A slot is allocated "pending" for a new connection and only
 * linked ("confirmed") once the filter accepted its first packet, as Linux confirms at POSTROUTING.
 */
import { randomInt } from 'node:crypto';
import { TUPLE_WORDS, TW_PROTO, hashTuple, tuplesEqual } from './tuple.js';
import { TimerWheel, type TimerExpiry } from './timers.js';
import { TcpStateStore, TCP_STRIDE_WORDS } from './tcp-store.js';
import { nullEventSink, DestroyReason, type ConntrackEventSink } from './events.js';
import { SourceCounts } from './source-count.js';
import { adviseHugePages } from './huge-pages.js';
import {
  ENTRY_RECORD_WORDS, ER_AGE_S, ER_COUNTERS, ER_LABEL, ER_MARK, ER_ORIG, ER_REPLY, ER_STATUS, ER_TCP, ER_TIMEOUT_MS,
  RECORD_STATUS_BITS, assertEntryRecord, readCounter, writeCounter,
} from './entry-record.js';

/** Entry status bits (the subset of Linux's IPS_* that matter here). */
export const CtStatus = {
  /** A packet was seen in the reply direction. */
  SEEN_REPLY: 1,
  /** Established both ways long enough: not evicted by early drop. */
  ASSURED: 2,
  /** Linked into the table (its first packet was accepted). */
  CONFIRMED: 4,
  /** Source NAT applied (the reply tuple's destination differs). */
  SRC_NAT: 8,
  /** Destination NAT applied. */
  DST_NAT: 16,
  /** Entry received from the peer by state sync. */
  REPLICATED: 32,
  /** Created by an expectation: packets before the reply are RELATED. */
  EXPECTED: 64,
  /** Slot holds an entry (pending or confirmed). */
  USED: 128,
  /** A NAT helper resized its payload: sequence numbers are adjusted (conntrack/seqadj.ts). Bits 8..11 hold the helper (helpers/ids.ts). */
  SEQ_ADJUST: 0x1000,
} as const;

/** Status bits of an entry that has helper state outside the table: a helper (bits 8..11) or SEQ_ADJUST. */
const HELPER_STATE_BITS = 0xf00 | CtStatus.SEQ_ADJUST;

/**
 * What an entry holds outside the table (NAT's outside port): adopted when an entry arrives whole
 * (restore, sync), released after its destroy event. Called by the table itself, so no wrapper
 * sink sits between the table and the event sink.
 */
export interface EntryResources {
  adopt(table: ConntrackTable, slot: number): void;
  release(table: ConntrackTable, slot: number): void;
}

/** What importEntry did. */
export const ImportResult = {
  /** A new entry was linked. */
  CREATED: 0,
  /** The entry with the same original tuple was overwritten. */
  UPDATED: 1,
  /** The table is full and nothing could be evicted: nothing changed. */
  TABLE_FULL: 2,
  /** `onlyOver` was given and the entry with the same original tuple lacks those status bits: kept. */
  KEPT: 3,
} as const;

export interface ConntrackTableOptions {
  /** Maximum number of entries (nf_conntrack_max). */
  maxEntries: number;
  /** Slots allocated up front; the arrays double up to maxEntries as needed. */
  initialCapacity?: number;
  /** Hash seed; random by default (tests may fix it). */
  seed?: number;
  /** Timer wheel granularity in ms. */
  tickMs?: number;
  sink?: ConntrackEventSink;
  /**
   * Write every page of the initial arrays now. The kernel hands out memory on first touch: a
   * page fault per 21 entries, ~0.5 us per entry paid by whatever first fills the table (a bulk
   * resync, a flood) instead of at start; and a machine short of memory fails at start, not
   * under load. What `conntrack.preallocate` asks for. The records and the index are first
   * advised to take 2 MiB pages (huge-pages.ts: needs native/mem built).
   */
  prefault?: boolean;
}

/**
 * Record layout, in 32-bit words (REC_WORDS per entry) and, for doubles, Float64 indexes. Words
 * 32..47 are the TCP tracker's record (tcp-store.ts: TCP_BASE_WORDS, TCP_STRIDE_WORDS), so all a
 * packet touches of its entry is one contiguous 192-byte run.
 */
export const REC_WORDS = TCP_STRIDE_WORDS;
/** Original tuple at word 0, reply tuple at word 10 (TUPLE_WORDS each). */
export const R_ORIG = 0;
export const R_REPLY = 10;
export const R_STATUS = 20;
export const R_MARK = 21;
/** Float64 index within a record (record base / 2 + F_*): deadline, packets[dir], bytes[dir]. */
const F_DEADLINE = 11;
const F_PACKETS = 12;
const F_BYTES = 14;
const REC_F64 = REC_WORDS / 2;

/** A free slot's record word that holds the next free slot + 1 (its mark; 0 ends the list). */
const FREE_NEXT = R_MARK;

/** Every CtChange bit: an imported entry may have changed in any way. */
const ALL_CHANGES = 255;

/** Nodes scanned for an early-drop victim, like Linux's NF_CT_EVICTION_RANGE. */
const EVICTION_RANGE = 64;

export class ConntrackTable implements TimerExpiry {
  readonly maxEntries: number;
  readonly seed: number;
  capacity: number;
  /** Entry records (REC_WORDS words per slot); tuples at tupleOffset(slot, dir). */
  tuples: Uint32Array;
  /** The same records as doubles. */
  #f64: Float64Array;
  /** Label bits (a 32-bit subset of Linux's connlabels). */
  label: Uint32Array;
  /** Unique id per entry (for the CLI and logs), never 0 for a used slot. */
  id: Uint32Array;
  /** Creation time (ms, caller's clock). */
  start: Float64Array;
  /** Master entry's slot for RELATED entries, -1 otherwise. */
  master: Int32Array;
  readonly tcp: TcpStateStore;
  readonly wheel: TimerWheel;
  readonly sources = new SourceCounts();
  sink: ConntrackEventSink;
  /** Set by NAT once it is configured; see EntryResources. */
  resources: EntryResources | null = null;
  /**
   * Called as an entry with a helper (status bits 8..11) or adjusted sequence numbers is destroyed,
   * its slot still valid: its expectations and adjustments go with it (set by Conntrack).
   */
  onHelperEntryGone: ((slot: number) => void) | null = null;
  /**
   * A preallocated table asks for 2 MiB pages for its records and index (huge-pages.ts): 0 when
   * the kernel took the advice, else madvise's errno; -1 when not asked (not preallocated).
   */
  hugePagesErrno = -1;
  /**
   * Where loads made only to bring memory into the cache leave their sum (hashBatch here, the
   * engine's batch prefetch through touch()), so the compiler keeps them: a value nobody could
   * read may be optimised away, and the loads with it.
   */
  static loadSink = 0;
  /** Entries destroyed because an imported entry claimed one of their tuples. */
  importClashes = 0;
  /** The slot importEntry last created or updated (-1 after TABLE_FULL). */
  importedSlot = -1;

  /**
   * The hash index: open addressing with linear probing, two words per bucket: the tuple's hash
   * and its node (slot * 2 + dir; -1 empty). A lookup reads the hash words of consecutive
   * buckets (one cache line holds eight) and touches a record only when a hash matches: one
   * cache miss to find a node or to know it is absent, where hash chains cost one per node
   * walked (on this kind of VM a dependent miss is ~100 ns; a bulk resync did four per entry).
   * Load stays under 3/4; deletion shifts followers back (no tombstones).
   */
  #index: Int32Array;
  /** Buckets in the index, and buckets / 2^32: a hash's home bucket is hash * #scale. */
  #buckets: number;
  #scale: number;
  /** Where the last lookup that found nothing ended: the empty bucket (see #insertFrom). */
  #missAt = -1;
  /** Counts removals and rebuilds of the index: a remembered #missAt is stale once it changed. */
  #indexMoves = 0;
  /** Free slots, linked through their records' mark word (FREE_NEXT) as slot + 1 (0: end). */
  #freeHead = -1;
  #highWater = 0;
  /**
   * The slot #take() returned last had never been used: its record is still all zeros (the
   * buffer is new, or was zeroed when prefaulted, and growth copies into a zeroed one).
   */
  #tookUnused = false;
  #count = 0;
  #pending = 0;
  #nextId = 1;
  /** Entries evicted by early drop, for metrics. */
  earlyDrops = 0;
  /**
   * This node has become master of its replicated entries, and not every one is live yet (a large
   * table's takeover, src/failover/takeover.ts): the conntrack makes a REPLICATED entry live (TCP
   * tolerant) at its first packet, before tracking it, while the takeover's sweep does the rest.
   */
  adoptReplicated = false;

  constructor(opts: ConntrackTableOptions) {
    if (!Number.isInteger(opts.maxEntries) || opts.maxEntries < 1) {
      throw new RangeError(`conntrack maxEntries must be a positive integer, got ${opts.maxEntries}`);
    }
    this.maxEntries = opts.maxEntries;
    this.seed = opts.seed ?? randomInt(0, 0xffffffff);
    const cap = Math.min(opts.maxEntries, Math.max(1024, opts.initialCapacity ?? 65536));
    this.capacity = cap;
    const buf = new ArrayBuffer(cap * REC_WORDS * 4);
    // Before the first write (the prefault below): 2 MiB pages for the records and the index.
    if (opts.prefault === true) this.hugePagesErrno = adviseHugePages(buf);
    this.tuples = new Uint32Array(buf);
    this.#f64 = new Float64Array(buf);
    this.label = new Uint32Array(cap);
    this.id = new Uint32Array(cap);
    this.start = new Float64Array(cap);
    this.master = new Int32Array(cap).fill(-1);
    this.tcp = new TcpStateStore(cap, buf);
    this.wheel = new TimerWheel(cap, opts.tickMs ?? 250);
    this.wheel.useDeadlineStorage(this.#f64, REC_F64, F_DEADLINE);
    this.#buckets = bucketCountFor(cap);
    this.#scale = this.#buckets / 4294967296;
    this.#index = newIndex(this.#buckets, opts.prefault === true);
    this.sink = opts.sink ?? nullEventSink;
    if (opts.prefault === true) {
      this.tuples.fill(0);
      this.label.fill(0);
      this.id.fill(0);
      this.start.fill(0);
    }
  }

  /** One past the highest slot ever used: every entry's slot is below it (for scans). */
  get highWater(): number {
    return this.#highWater;
  }

  /** Confirmed entries. */
  get count(): number {
    return this.#count;
  }

  /** Word offset of an entry's tuple in `tuples` (dir 0 original, 1 reply). */
  tupleOffset(slot: number, dir: number): number {
    return slot * REC_WORDS + dir * TUPLE_WORDS;
  }

  statusOf(slot: number): number {
    return this.tuples[slot * REC_WORDS + R_STATUS];
  }

  addStatus(slot: number, bits: number): void {
    this.tuples[slot * REC_WORDS + R_STATUS] |= bits;
  }

  clearStatus(slot: number, bits: number): void {
    this.tuples[slot * REC_WORDS + R_STATUS] &= ~bits;
  }

  markOf(slot: number): number {
    return this.tuples[slot * REC_WORDS + R_MARK];
  }

  setMark(slot: number, mark: number): void {
    this.tuples[slot * REC_WORDS + R_MARK] = mark;
  }

  packetsOf(slot: number, dir: number): number {
    return this.#f64[slot * REC_F64 + F_PACKETS + dir];
  }

  bytesOf(slot: number, dir: number): number {
    return this.#f64[slot * REC_F64 + F_BYTES + dir];
  }

  /** Count one packet of `bytes` in direction `dir`. */
  account(slot: number, dir: number, bytes: number): void {
    const f = slot * REC_F64;
    this.#f64[f + F_PACKETS + dir] += 1;
    this.#f64[f + F_BYTES + dir] += bytes;
  }

  deadlineOf(slot: number): number {
    return this.#f64[slot * REC_F64 + F_DEADLINE];
  }

  /** Move an entry's deadline (the wheel relinks it only when it moved earlier). */
  setDeadline(slot: number, deadline: number): void {
    this.wheel.update(slot, deadline);
  }

  /**
   * First stage of a batch: the first node whose hash matches the tuple's (-1 when none). Loading
   * the buckets for every packet of a batch in one tight loop lets the CPU overlap the misses.
   */
  bucketHead(w: Uint32Array, off: number): number {
    const h = hashTuple(w, off, this.seed) | 0;
    const index = this.#index;
    const nb = this.#buckets;
    for (let i = home(h, this.#scale); ; i = i + 1 === nb ? 0 : i + 1) {
      const node = index[i * 2 + 1];
      if (node < 0 || index[i * 2] === h) return node;
    }
  }

  /**
   * Second stage of a batch: read one word of each cache line a packet of this node's entry will
   * touch (both record lines and the TCP record), so the misses of a whole batch overlap instead
   * of stalling one packet at a time. Returns a value only so the loads are not optimised away.
   */
  touch(node: number): number {
    // The 192-byte record spans three or four cache lines (JavaScript cannot align an ArrayBuffer
    // to 64 bytes): touch a word every 64 bytes and the last one.
    const r = (node >> 1) * REC_WORDS;
    const t = this.tuples;
    return t[r] + t[r + 16] + t[r + 32] + t[r + REC_WORDS - 1];
  }

  /** Find the node (slot * 2 + dir) whose tuple equals w[off..off+10), or -1. */
  lookup(w: Uint32Array, off: number): number {
    return this.#lookupHashed(w, off, hashTuple(w, off, this.seed) | 0);
  }

  #lookupHashed(w: Uint32Array, off: number, h: number): number {
    const index = this.#index;
    const nb = this.#buckets;
    const t = this.tuples;
    // Terminates: the load stays under 3/4, so an empty bucket follows every run.
    for (let i = home(h, this.#scale); ; i = i + 1 === nb ? 0 : i + 1) {
      const node = index[i * 2 + 1];
      if (node < 0) {
        this.#missAt = i;
        return -1;
      }
      if (index[i * 2] === h && tuplesEqual(t, (node >> 1) * REC_WORDS + (node & 1) * TUPLE_WORDS, w, off)) return node;
    }
  }

  /**
   * Reserve a slot for a new entry, evicting a non-assured entry near `hashHint`'s bucket when the
   * table is full. Returns -1 when full and nothing could be evicted.
   */
  allocate(now: number, evictHint: Uint32Array, evictHintOff: number): number {
    const slot = this.#take(now, evictHint, evictHintOff);
    if (slot < 0) return -1;
    this.label[slot] = 0;
    this.start[slot] = now;
    // The whole record, the TCP tracker's part (its last 16 words) included.
    this.tuples.fill(0, slot * REC_WORDS, (slot + 1) * REC_WORDS);
    this.tuples[slot * REC_WORDS + R_STATUS] = CtStatus.USED;
    return slot;
  }

  /**
   * allocate() without clearing the record: for importHashed, which writes every word of it
   * (zeroing 48 words it then overwrote was ~4 % of a bulk resync's receiving CPU). The record's
   * status and other words are left as the slot's last use left them, and so are its label and
   * start time (the caller writes them).
   */
  #take(now: number, evictHint: Uint32Array, evictHintOff: number): number {
    if (this.#count + this.#pending >= this.maxEntries) {
      if (!this.#earlyDrop(hashTuple(evictHint, evictHintOff, this.seed))) return -1;
    }
    let slot: number;
    if (this.#freeHead >= 0) {
      slot = this.#freeHead;
      this.#freeHead = this.tuples[slot * REC_WORDS + FREE_NEXT] - 1;
      this.#tookUnused = false;
    } else {
      if (this.#highWater >= this.capacity) this.#grow();
      slot = this.#highWater++;
      this.#tookUnused = true;
    }
    this.#pending++;
    this.master[slot] = -1;
    this.id[slot] = this.#nextId;
    this.#nextId = this.#nextId >= 0xfffffffe ? 1 : this.#nextId + 1;
    return slot;
  }

  /** Give back a pending slot whose first packet was dropped. */
  release(slot: number): void {
    if ((this.statusOf(slot) & (CtStatus.USED | CtStatus.CONFIRMED)) !== CtStatus.USED) return;
    this.#pending--;
    this.#free(slot);
  }

  /** Link a pending slot (tuples filled in) into the table with its first deadline. */
  confirm(slot: number, deadline: number): void {
    const r = slot * REC_WORDS;
    this.#confirmHashed(slot, deadline, hashTuple(this.tuples, r, this.seed) | 0, hashTuple(this.tuples, r + R_REPLY, this.seed) | 0, -1, -1);
  }

  /**
   * confirm() with both tuples' hashes known. `oFrom`, `rFrom`: where each tuple's probe may start
   * (the empty bucket its lookup ended at, the index unchanged since), or -1: its home bucket.
   */
  #confirmHashed(slot: number, deadline: number, hOrig: number, hReply: number, oFrom: number, rFrom: number): void {
    this.#pending--;
    this.addStatus(slot, CtStatus.CONFIRMED);
    this.#insertFrom(slot * 2, hOrig, oFrom);
    this.#insertFrom(slot * 2 + 1, hReply, rFrom);
    this.wheel.insert(slot, deadline);
    this.#count++;
    if (this.sources.prefixes !== 0) this.sources.update(this.tuples[slot * REC_WORDS + TW_PROTO] >>> 8, this.tuples, slot * REC_WORDS, 1);
    this.sink.ctNew(this, slot);
  }

  /** Destroy a confirmed entry: event first (data still readable), then unlink and free. */
  destroy(slot: number, reason: number): void {
    if ((this.statusOf(slot) & CtStatus.CONFIRMED) === 0) return;
    this.sink.ctDestroy(this, slot, reason);
    if (this.resources !== null) this.resources.release(this, slot);
    if ((this.statusOf(slot) & HELPER_STATE_BITS) !== 0 && this.onHelperEntryGone !== null) this.onHelperEntryGone(slot);
    this.#remove(slot * 2);
    this.#remove(slot * 2 + 1);
    this.wheel.remove(slot);
    this.#count--;
    this.sources.update(this.tuples[slot * REC_WORDS + TW_PROTO] >>> 8, this.tuples, slot * REC_WORDS, -1);
    this.#free(slot);
  }

  /** TimerExpiry: the wheel found this slot's deadline passed. */
  expire(slot: number, _now: number): void {
    this.destroy(slot, DestroyReason.TIMEOUT);
  }

  /** Expire what is due; cheap when no tick boundary passed. */
  advance(now: number): number {
    return this.wheel.advance(now, this);
  }

  /** Write a confirmed entry as a record (entry-record.ts) at out[off..off+ENTRY_RECORD_WORDS). */
  exportEntry(slot: number, now: number, out: Uint32Array, off: number): void {
    const r = slot * REC_WORDS;
    const t = this.tuples;
    for (let i = 0; i < 2 * TUPLE_WORDS; i++) out[off + ER_ORIG + i] = t[r + i];
    out[off + ER_STATUS] = t[r + R_STATUS] & RECORD_STATUS_BITS;
    out[off + ER_MARK] = t[r + R_MARK];
    out[off + ER_LABEL] = this.label[slot];
    out[off + ER_TIMEOUT_MS] = Math.max(0, Math.min(0xffffffff, Math.round(this.deadlineOf(slot) - now)));
    out[off + ER_AGE_S] = Math.max(0, Math.min(0xffffffff, Math.floor((now - this.start[slot]) / 1000)));
    const f = slot * REC_F64;
    writeCounter(out, off + ER_COUNTERS, this.#f64[f + F_PACKETS]);
    writeCounter(out, off + ER_COUNTERS + 2, this.#f64[f + F_PACKETS + 1]);
    writeCounter(out, off + ER_COUNTERS + 4, this.#f64[f + F_BYTES]);
    writeCounter(out, off + ER_COUNTERS + 6, this.#f64[f + F_BYTES + 1]);
    if ((t[r + TW_PROTO] & 0xff) === 6) this.tcp.exportEntry(slot, out, off + ER_TCP);
    else for (let i = off + ER_TCP; i < off + ENTRY_RECORD_WORDS; i++) out[i] = 0;
  }

  /**
   * Put a whole entry from a record into the table (ct restore, state sync). An entry with the
   * same original tuple is overwritten in place; entries holding either of the record's tuples
   * otherwise are destroyed first (the record wins: it is the newer truth). `extraStatus` adds
   * bits such as REPLICATED; `keepCounters` leaves an existing entry's counters as they are (a sync
   * update that carries none). Throws EntryRecordError, before any change, when the record cannot
   * be an entry. With `onlyOver` (status bits, e.g. REPLICATED), an existing entry is overwritten
   * only when it has them: a node's own live entries are never replaced by its peer's view (a
   * message from the old master still on its way when this node took over). Returns an
   * ImportResult and leaves the slot in `importedSlot`.
   */
  importEntry(w: Uint32Array, off: number, now: number, extraStatus = 0, keepCounters = false, onlyOver = 0): number {
    return this.importHashed(w, off, now, extraStatus, keepCounters, onlyOver, hashTuple(w, off + ER_ORIG, this.seed) | 0, hashTuple(w, off + ER_REPLY, this.seed) | 0);
  }

  /**
   * Before importing a batch of records (a sync datagram's): hash both tuples of each of `count`
   * records at w[off + i * stride] into hashes[2i] (original) and hashes[2i + 1] (reply), and load
   * their home buckets. In one tight loop the CPU overlaps those cache misses (a bucket of a large
   * index is one, ~100-300 ns on this kind of VM), where each import alone waits for its own two.
   * Then importHashed() each record with its hashes.
   */
  hashBatch(w: Uint32Array, off: number, stride: number, count: number, hashes: Int32Array): void {
    const index = this.#index;
    const scale = this.#scale;
    const seed = this.seed;
    for (let i = 0; i < count; i++) {
      const o = off + i * stride;
      hashes[2 * i] = hashTuple(w, o + ER_ORIG, seed);
      hashes[2 * i + 1] = hashTuple(w, o + ER_REPLY, seed);
    }
    // The loads alone in a loop of their own: the hashing between them would fill the CPU's
    // reorder window and leave only one or two misses in flight.
    let acc = 0;
    for (let i = 0; i < 2 * count; i++) acc += index[home(hashes[i], scale) * 2 + 1];
    ConntrackTable.loadSink = acc;
  }

  /**
   * importEntry() with both tuples' hashes known (hashBatch). `checked`: the caller made sure
   * checkEntryRecord(w, off) is null (the sync decoder certifies what it decoded), so it is not
   * checked again.
   */
  importHashed(w: Uint32Array, off: number, now: number, extraStatus: number, keepCounters: boolean, onlyOver: number, hOrig: number, hReply: number, checked = false): number {
    if (!checked) assertEntryRecord(w, off);
    // Where the lookups of a new entry's tuples ended (empty buckets): its inserts start there,
    // unless a removal (a clash, an early drop) moved nodes meanwhile.
    const moves = this.#indexMoves;
    const oNode = this.#lookupHashed(w, off + ER_ORIG, hOrig);
    const oFrom = this.#missAt;
    let slot = oNode >= 0 && (oNode & 1) === 0 ? oNode >> 1 : -1;
    if (slot >= 0 && onlyOver !== 0 && (this.statusOf(slot) & onlyOver) === 0) {
      this.importedSlot = slot;
      return ImportResult.KEPT;
    }
    if (oNode >= 0 && slot < 0) this.#clash(oNode >> 1);
    const rNode = this.#lookupHashed(w, off + ER_REPLY, hReply);
    const rFrom = this.#missAt;
    if (rNode >= 0 && rNode >> 1 !== slot) this.#clash(rNode >> 1);
    let t = this.tuples;
    let created = false;
    if (slot >= 0) {
      // In place: the reply tuple (NAT mapping) may have changed; relink it if so.
      const r = slot * REC_WORDS;
      let same = true;
      for (let i = 0; i < TUPLE_WORDS; i++) if (t[r + R_REPLY + i] !== w[off + ER_REPLY + i]) same = false;
      if (!same) {
        if (this.resources !== null) this.resources.release(this, slot);
        this.#remove(slot * 2 + 1);
        for (let i = 0; i < TUPLE_WORDS; i++) t[r + R_REPLY + i] = w[off + ER_REPLY + i];
        this.#insert(slot * 2 + 1, hReply);
        if (this.resources !== null) this.resources.adopt(this, slot);
      }
    } else {
      slot = this.#take(now, w, off + ER_ORIG);
      if (slot < 0) {
        this.importedSlot = -1;
        return ImportResult.TABLE_FULL;
      }
      // #take() may have grown the table: the record array is a new one. Every word of the
      // record is written from here on (it was not cleared): tuples, status, mark, counters,
      // the deadline (the wheel) and the TCP words (imported, or zeros).
      t = this.tuples;
      const r = slot * REC_WORDS;
      copyTuple(t, r, w, off + ER_ORIG);
      copyTuple(t, r + R_REPLY, w, off + ER_REPLY);
      t[r + R_STATUS] = CtStatus.USED;
      created = true;
    }
    const r = slot * REC_WORDS;
    t[r + R_STATUS] = (t[r + R_STATUS] & (CtStatus.USED | CtStatus.CONFIRMED)) | w[off + ER_STATUS] | extraStatus;
    t[r + R_MARK] = w[off + ER_MARK];
    this.label[slot] = w[off + ER_LABEL];
    this.start[slot] = now - w[off + ER_AGE_S] * 1000;
    const f = slot * REC_F64;
    if (created || !keepCounters) {
      this.#f64[f + F_PACKETS] = readCounter(w, off + ER_COUNTERS);
      this.#f64[f + F_PACKETS + 1] = readCounter(w, off + ER_COUNTERS + 2);
      this.#f64[f + F_BYTES] = readCounter(w, off + ER_COUNTERS + 4);
      this.#f64[f + F_BYTES + 1] = readCounter(w, off + ER_COUNTERS + 6);
    }
    if ((w[off + ER_ORIG + TW_PROTO] & 0xff) === 6) this.tcp.importEntry(slot, w, off + ER_TCP);
    // (A never-used slot's TCP words are zeros already: a bulk resync writes no line it need not.)
    else if (created && !this.#tookUnused) this.tcp.clear(slot);
    const deadline = now + w[off + ER_TIMEOUT_MS];
    this.importedSlot = slot;
    if (created) {
      const same = moves === this.#indexMoves && oNode < 0 && rNode < 0;
      this.#confirmHashed(slot, deadline, hOrig, hReply, same ? oFrom : -1, same ? rFrom : -1);
      if (this.resources !== null) this.resources.adopt(this, slot);
      return ImportResult.CREATED;
    }
    this.wheel.update(slot, deadline);
    this.sink.ctUpdate(this, slot, ALL_CHANGES);
    return ImportResult.UPDATED;
  }

  #clash(slot: number): void {
    this.importClashes++;
    this.destroy(slot, DestroyReason.REPLICATED);
  }

  /** Visit every confirmed entry. The callback may destroy the entry it is given. */
  forEach(fn: (slot: number) => void): void {
    const t = this.tuples;
    for (let s = 0; s < this.#highWater; s++) if ((t[s * REC_WORDS + R_STATUS] & CtStatus.CONFIRMED) !== 0) fn(s);
  }

  /** Destroy every confirmed entry (conntrack -F). */
  flush(reason: number = DestroyReason.DELETED): number {
    let n = 0;
    this.forEach((s) => {
      this.destroy(s, reason);
      n++;
    });
    return n;
  }

  /** connlimit support: confirmed entries whose original source lies in src/prefix. */
  countBySource(family: number, src: Uint32Array, prefix: number): number {
    let n = this.sources.count(family, prefix, src);
    if (n < 0) {
      this.sources.register(family, prefix, (add) =>
        this.forEach((s) => {
          if (this.tuples[s * REC_WORDS + TW_PROTO] >>> 8 === family) add(this.tuples, s * REC_WORDS);
        }),
      );
      n = this.sources.count(family, prefix, src);
    }
    return n;
  }

  /**
   * Check the table's invariants (for tests and `twinwall ct verify`): every confirmed entry is
   * found by both its tuples, the index holds exactly their nodes with their hashes, the count
   * and the timer wheel agree. Returns the problems found.
   */
  verify(): string[] {
    const problems: string[] = [];
    let confirmed = 0;
    this.forEach((s) => {
      confirmed++;
      for (let dir = 0; dir < 2; dir++) {
        const found = this.lookup(this.tuples, this.tupleOffset(s, dir));
        // (>> 1: a packet sent to itself has equal tuples; either node is right.)
        if (found >> 1 !== s) problems.push(`slot ${s} dir ${dir}: lookup found node ${found}`);
      }
    });
    if (confirmed !== this.#count) problems.push(`count ${this.#count} but ${confirmed} confirmed entries`);
    const index = this.#index;
    let nodes = 0;
    for (let b = 0; b < this.#buckets; b++) {
      const n = index[b * 2 + 1];
      if (n < 0) continue;
      nodes++;
      if ((this.statusOf(n >> 1) & CtStatus.CONFIRMED) === 0) problems.push(`bucket ${b}: node ${n} of a slot not in use`);
      else if (index[b * 2] !== (hashTuple(this.tuples, this.tupleOffset(n >> 1, n & 1), this.seed) | 0)) problems.push(`bucket ${b}: node ${n} with a stale hash`);
    }
    if (nodes !== this.#count * 2) problems.push(`index holds ${nodes} nodes for ${this.#count} entries`);
    if (this.wheel.linked !== this.#count) problems.push(`timer wheel holds ${this.wheel.linked}, table ${this.#count}`);
    return problems;
  }

  /** Bytes held by the table's arrays (for the memory benchmark and metrics). */
  get arrayBytes(): number {
    return (
      this.tuples.byteLength +
      this.label.byteLength +
      this.id.byteLength +
      this.start.byteLength +
      this.master.byteLength +
      this.#index.byteLength +
      this.wheel.byteLength
    );
  }

  #free(slot: number): void {
    this.tuples[slot * REC_WORDS + R_STATUS] = 0;
    this.id[slot] = 0;
    this.tuples[slot * REC_WORDS + FREE_NEXT] = this.#freeHead + 1;
    this.#freeHead = slot;
  }

  /** Put a node with hash h into the index (its first empty bucket from h's). */
  #insert(node: number, h: number): void {
    this.#insertFrom(node, h, -1);
  }

  /**
   * #insert() probing from bucket `from` instead of the home bucket (-1: from home): the empty
   * bucket a lookup of the same hash ended at, when no node moved since (#indexMoves): every
   * bucket between home and there is taken, so the walk from there ends where one from home would.
   */
  #insertFrom(node: number, h: number, from: number): void {
    const index = this.#index;
    const nb = this.#buckets;
    let i = from >= 0 ? from : home(h, this.#scale);
    for (;;) {
      // The next bucket is worked out before the test, not only when the bucket is taken: from
      // where a lookup ended the bucket is nearly always free, so a step taken only then had no
      // type feedback, and V8 threw the import's optimised code away the first time it came.
      const next = i + 1 === nb ? 0 : i + 1;
      if (index[i * 2 + 1] < 0) break;
      i = next;
    }
    index[i * 2] = h;
    index[i * 2 + 1] = node;
  }

  /**
   * Take a node out of the index (its tuple must still be the one it was inserted with), then
   * shift back the nodes after it whose home bucket the hole now separates them from.
   */
  #remove(node: number): void {
    this.#indexMoves++;
    const index = this.#index;
    const nb = this.#buckets;
    const scale = this.#scale;
    const h = hashTuple(this.tuples, (node >> 1) * REC_WORDS + (node & 1) * TUPLE_WORDS, this.seed);
    let i = home(h, scale);
    for (;;) {
      const n = index[i * 2 + 1];
      if (n === node) break;
      if (n < 0) return;
      i = i + 1 === nb ? 0 : i + 1;
    }
    let j = i;
    for (;;) {
      j = j + 1 === nb ? 0 : j + 1;
      const n = index[j * 2 + 1];
      if (n < 0) break;
      // The node at j may fill the hole at i unless its home bucket k lies cyclically in (i, j].
      const k = home(index[j * 2], scale);
      if (i <= j ? i < k && k <= j : i < k || k <= j) continue;
      index[i * 2] = index[j * 2];
      index[i * 2 + 1] = n;
      i = j;
    }
    index[i * 2 + 1] = -1;
  }

  /**
   * Linux's early_drop: look at the entries hashed near the new connection's bucket and evict the
   * first one that is not ASSURED. Random seeding makes those neighbours a random sample, so a
   * flood of half-open connections evicts its own kind, never established (assured) flows.
   */
  #earlyDrop(hash: number): boolean {
    const index = this.#index;
    const nb = this.#buckets;
    let b = home(hash, this.#scale);
    let seen = 0;
    for (let i = 0; i < nb && seen < EVICTION_RANGE; i++) {
      const node = index[b * 2 + 1];
      if (node >= 0) {
        const slot = node >> 1;
        seen++;
        if ((this.statusOf(slot) & CtStatus.ASSURED) === 0) {
          this.earlyDrops++;
          this.destroy(slot, DestroyReason.EARLY_DROP);
          return true;
        }
      }
      b = b + 1 === nb ? 0 : b + 1;
    }
    return false;
  }

  #grow(): void {
    const cap = Math.min(this.maxEntries, this.capacity * 2);
    if (cap <= this.capacity) throw new RangeError('conntrack table cannot grow past maxEntries');
    const g32 = (a: Uint32Array, n: number) => {
      const x = new Uint32Array(n);
      x.set(a);
      return x;
    };
    const gf = (a: Float64Array, n: number) => {
      const x = new Float64Array(n);
      x.set(a);
      return x;
    };
    const buf = new ArrayBuffer(cap * REC_WORDS * 4);
    const recs = new Uint32Array(buf);
    recs.set(this.tuples);
    this.tuples = recs;
    this.#f64 = new Float64Array(buf);
    this.tcp.grow(cap, buf);
    this.label = g32(this.label, cap);
    this.id = g32(this.id, cap);
    this.start = gf(this.start, cap);
    const m = new Int32Array(cap).fill(-1);
    m.set(this.master);
    this.master = m;
    this.wheel.grow(cap);
    this.wheel.useDeadlineStorage(this.#f64, REC_F64, F_DEADLINE);
    this.capacity = cap;
    // Every node into the larger index, by the hash the old one kept (nothing re-hashed).
    const old = this.#index;
    this.#buckets = bucketCountFor(cap);
    this.#scale = this.#buckets / 4294967296;
    this.#index = newIndex(this.#buckets);
    this.#indexMoves++;
    for (let i = 1; i < old.length; i += 2) if (old[i] >= 0) this.#insert(old[i], old[i - 1]);
    // The free list lives in the records: it moved with them.
  }
}

/**
 * The tuple at src[s..s+10) into dst[d..d+10): ten plain copies, about half the time of a loop
 * over them on the bulk import's path.
 */
function copyTuple(dst: Uint32Array, d: number, src: Uint32Array, s: number): void {
  dst[d] = src[s];
  dst[d + 1] = src[s + 1];
  dst[d + 2] = src[s + 2];
  dst[d + 3] = src[s + 3];
  dst[d + 4] = src[s + 4];
  dst[d + 5] = src[s + 5];
  dst[d + 6] = src[s + 6];
  dst[d + 7] = src[s + 7];
  dst[d + 8] = src[s + 8];
  dst[d + 9] = src[s + 9];
}

/** An index of `buckets` empty buckets (node words -1); `hugePages`: advised before it is written. */
function newIndex(buckets: number, hugePages = false): Int32Array {
  const a = new Int32Array(buckets * 2);
  if (hugePages) adviseHugePages(a.buffer);
  for (let i = 1; i < a.length; i += 2) a[i] = -1;
  return a;
}

/**
 * Buckets for `capacity` entries: 4/3 of their nodes (two per entry), so the load stays at most
 * 3/4. Not a power of two (that would double the index for some sizes): a hash's home bucket is
 * found by multiplication instead of a mask (home()).
 */
function bucketCountFor(capacity: number): number {
  return Math.max(1024, Math.ceil((capacity * 8) / 3));
}

/** A hash's home bucket: hash * buckets / 2^32 (exact: below 2^53, floored). */
function home(h: number, scale: number): number {
  return ((h >>> 0) * scale) | 0;
}

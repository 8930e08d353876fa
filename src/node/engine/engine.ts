/**
 * The packet engine: bytes and metadata in; verdict, rewritten bytes, packets to emit and
 * conntrack events out. No I/O and no timers inside: the clock is injected and expiry runs from
 * process() (cheap when no timer tick passed) or tick().
 *
 *   parse -> raw chain (NOTRACK, early drops) -> conntrack -> NAT destination rewrite
 *         -> forward chain -> marks -> NAT source rewrite -> verdict
 *
 * NAT is split around the forward chain as Linux splits it between PREROUTING and POSTROUTING:
 * forward rules see the inside server of a port forward and the inside client of an SNAT flow.
 *
 * A packet passes each module once, in that order. The objects used per packet (the parsed
 * view, conntrack's result, the filter's result, the engine's result) are allocated once.
 */
import { PacketView } from '../packet/view.js';
import { buildIcmpUnreachable, buildTcpReset } from '../packet/build.js';
import { InvalidReason } from '../packet/fields.js';
import { Conntrack, CtResult, type ConntrackOptions } from '../conntrack/conntrack.js';
import { TUPLE_WORDS, writePacketTuple } from '../conntrack/tuple.js';
import { CtState } from '../conntrack/state.js';
import { CtChange } from '../conntrack/events.js';
import { Filter, FilterResult, RejectKind, Verdict, type CompiledRuleset, type FilterOptions, type PacketMeta } from '../filter/index.js';
import { EngineStats, DropReason } from './stats.js';
import { Nat, type NatLogSink } from '../nat/index.js';
import type { ConntrackEventSink } from '../conntrack/events.js';
import { ConntrackTable, CtStatus } from '../conntrack/table.js';
import { ConnHelpers, CT_HELPER_MASK, CT_HELPER_SHIFT } from '../conntrack/helpers/index.js';
import { SeqAdjustments } from '../conntrack/seqadj.js';
import { HelperState } from '../conntrack/helpers/state.js';

// Module-local copies of imported constants: on Node 20 each use of an imported binding costs
// a load through the exporting module even in optimised code; a local const costs nothing.
const CH_MARK = CtChange.MARK;
const CS_INVALID = CtState.INVALID;
const CS_UNTRACKED = CtState.UNTRACKED;
const DR_MALFORMED = DropReason.MALFORMED;
const DR_NONE = DropReason.NONE;
const DR_RULESET = DropReason.RULESET;
const DR_TABLE_FULL = DropReason.TABLE_FULL;
const DR_NAT_EXHAUSTED = DropReason.NAT_EXHAUSTED;
const NAT_BITS = CtStatus.SRC_NAT | CtStatus.DST_NAT;
/** Entry status bits that send a packet through the helper stage (a helper, or adjusted sequence numbers). */
const HELPER_STAGE = CT_HELPER_MASK | CtStatus.SEQ_ADJUST;
const IR_TABLE_FULL = InvalidReason.TABLE_FULL;
const IR_TCP_STATE = InvalidReason.TCP_STATE;
const RK_TCP_RESET = RejectKind.TCP_RESET;
const V_ACCEPT = Verdict.ACCEPT;
const V_DROP = Verdict.DROP;
const V_REJECT = Verdict.REJECT;

export { DropReason } from './stats.js';

/**
 * Metadata with a packet: what the kernel gives (NFQUEUE: indev, outdev, mark) and `now`, the time
 * in ms from the injected clock. The data plane reads the clock once per batch of packets, not per
 * packet (a clock read costs as much as a rule).
 */
export type { PacketMeta } from '../filter/index.js';

/**
 * Packets read together from the queue: buffers with offset and length, and their kernel metadata.
 * Allocated once with a capacity and refilled (count = 0, then add()).
 */
export class PacketBatch {
  count = 0;
  readonly bufs: Uint8Array[];
  readonly offsets: Int32Array;
  readonly lengths: Int32Array;
  readonly inIf: Int32Array;
  readonly outIf: Int32Array;
  readonly marks: Uint32Array;

  constructor(readonly capacity = 64) {
    this.bufs = new Array<Uint8Array>(capacity);
    this.offsets = new Int32Array(capacity);
    this.lengths = new Int32Array(capacity);
    this.inIf = new Int32Array(capacity);
    this.outIf = new Int32Array(capacity);
    this.marks = new Uint32Array(capacity);
  }

  /** Append a packet; false when the batch is full. */
  add(buf: Uint8Array, offset: number, length: number, inIf: number, outIf: number, mark: number): boolean {
    const i = this.count;
    if (i >= this.capacity) return false;
    this.bufs[i] = buf;
    this.offsets[i] = offset;
    this.lengths[i] = length;
    this.inIf[i] = inIf;
    this.outIf[i] = outIf;
    this.marks[i] = mark;
    this.count = i + 1;
    return true;
  }
}

/** The engine's answer for one packet. One instance is reused by the caller. */
export class EngineResult {
  /** Verdict.ACCEPT or Verdict.DROP (a REJECT drops and emits an answer). */
  verdict: number = V_DROP;
  /** Why it was dropped (DropReason), NONE when accepted. */
  dropReason: number = DR_NONE;
  /** CtState code the filter saw. */
  ctState: number = CS_INVALID;
  /** InvalidReason when ctState is INVALID. */
  invalidReason = 0;
  /** Packet mark after MARK targets; markChanged tells whether to set it on the verdict. */
  mark = 0;
  markChanged = false;
  /** True when the bytes were rewritten in place (NAT): the verdict must carry them. */
  modified = false;
  /**
   * A packet to send instead of this one (from the IP header on), when a helper changed its
   * length (an FTP command rewritten for NAT); null otherwise. The verdict carries these bytes.
   */
  replacement: Buffer | null = null;
  /** Packets to send (REJECT answers). Allocated only when a REJECT fires. */
  emit: Buffer[] = [];
  /** Entry slot and direction (-1 when none). */
  slot = -1;
  dir = 0;
}

/**
 * Output-interface lookup for packets whose metadata has none (queued before routing, in raw
 * PREROUTING): the data plane's route table. Called after DNAT, before the forward chain.
 */
export interface RouteLookup {
  outIf(family: number, dst: Uint32Array): number;
}

export interface EngineOptions {
  conntrack: ConntrackOptions;
  ruleset: CompiledRuleset;
  /** LOG and TRACE sinks (the conntrack table serves connlimit counts itself). */
  filter?: Omit<FilterOptions, 'connCount'>;
  /** Milliseconds since the epoch, for tick() and now(); per packet the caller passes meta.now. */
  clock?: () => number;
  /**
   * Drop packets the parser finds malformed before the ruleset sees them (default true). Packets
   * INVALID for conntrack reasons (out of window, untracked ICMP) always reach the ruleset, as in
   * iptables, where `ct state INVALID drop` is the operator's choice.
   */
  dropMalformed?: boolean;
  /** Parser options. */
  verifyChecksums?: boolean;
  /** Where NAT's rare log records go (ports exhausted, at most once a second). */
  natLog?: NatLogSink;
}

/** ICMP destination-unreachable codes per RejectKind (RFC 792), as ipt_REJECT sends them. */
const icmpRejectCode = [3, 3, 3, 1, 0, 2, 9, 10, 13];
/** ICMPv6 destination-unreachable codes per RejectKind (RFC 4443 3.1), as ip6t_REJECT. */
const icmp6RejectCode = [4, 4, 4, 3, 0, 4, 1, 1, 1];

/** InvalidReason codes below TCP_STATE come from the parser (malformed); from it on, from conntrack. */
const MALFORMED_LIMIT = IR_TCP_STATE;

export class Engine {
  readonly conntrack: Conntrack;
  readonly filter: Filter;
  readonly stats = new EngineStats();
  readonly clock: () => number;
  readonly dropMalformed: boolean;
  /** NAT state: port pools and counters (rules come with the ruleset's `nat:` section). */
  readonly nat: Nat;
  /** Connection helpers (FTP): attached to entries by raw-chain rules, they expect RELATED connections. */
  readonly helpers: ConnHelpers;
  /** Helper'd entries' state for state sync (pass to SyncNode as helperState). */
  readonly helperState: HelperState;
  #view = new PacketView();
  /** A helper's replacement packet, parsed (for the sequence adjustment). */
  #replaced = new PacketView();
  #ct = new CtResult();
  #fr = new FilterResult();
  #ctInfo = { state: 0, connmark: 0 };
  #meta = { inIf: 0, outIf: 0, mark: 0, now: 0 };
  #routes: RouteLookup | null = null;
  #batchMeta = { inIf: 0, outIf: 0, mark: 0, now: 0 };
  #batchViews: PacketView[] = [];
  #batchTuples = new Uint32Array(64 * TUPLE_WORDS);
  #batchHeads = new Int32Array(64);

  constructor(opts: EngineOptions) {
    this.conntrack = new Conntrack(opts.conntrack);
    this.filter = new Filter(opts.ruleset, { ...opts.filter, connCount: this.conntrack.table });
    const origin = Date.now() - performance.now();
    this.clock = opts.clock ?? (() => origin + performance.now());
    this.dropMalformed = opts.dropMalformed ?? true;
    this.nat = new Nat(opts.natLog);
    this.helpers = new ConnHelpers(this.conntrack.table, this.conntrack.expectations, this.nat, this.conntrack.seqadj);
    this.helperState = new HelperState(this.conntrack.table, this.conntrack.expectations, this.conntrack.seqadj);
    // NAT holds the outside ports of entries: freed on destroy, adopted when entries arrive whole.
    this.conntrack.table.resources = this.nat;
    this.#setNat(opts.ruleset);
    if (opts.verifyChecksums) {
      this.#view.verifyIpChecksum = true;
      this.#view.verifyL4Checksum = true;
    }
  }

  /** Swap the ruleset atomically (it was validated and compiled completely before). */
  replaceRuleset(ruleset: CompiledRuleset): void {
    this.filter.replace(ruleset);
    this.#setNat(ruleset);
  }

  /** Set the conntrack event sink (sync's). NAT frees ports through the table's resources hook. */
  setEventSink(sink: ConntrackEventSink): void {
    this.conntrack.table.sink = sink;
  }

  #setNat(ruleset: CompiledRuleset): void {
    this.nat.setRules(ruleset.nat);

  }

  /** Where the output interface comes from when the metadata has none (see RouteLookup). */
  setRouteLookup(routes: RouteLookup | null): void {
    this.#routes = routes;
  }

  /** The route lookup set by setRouteLookup (the data plane's), or null. */
  routeLookup(): RouteLookup | null {
    return this.#routes;
  }

  /** The injected clock's time, for callers building PacketMeta. */
  now(): number {
    return this.clock();
  }

  /** Run timers (expiry) up to now; returns the number of entries expired. */
  tick(): number {
    const now = this.clock();
    const expired = this.conntrack.advance(now);
    this.conntrack.expectations.sweep(now, this.conntrack.table.id);
    this.helpers.sweep(this.conntrack.table.id);
    return expired;
  }

  /** Process one packet at buf[offset, offset+length). Returns the verdict (also in out.verdict). */
  process(buf: Uint8Array, offset: number, length: number, meta: PacketMeta, out: EngineResult): number {
    const pkt = this.#view;
    pkt.parse(buf, offset, length);
    return this.#processParsed(pkt, length, meta, out);
  }

  /**
   * Process a batch of packets (as the data plane reads them from the queue), with the same
   * result as process() on each in order. With many flows the engine waits on memory: the batch
   * first parses every packet and loads the hash bucket and entry cache lines of each in tight
   * loops, so those misses overlap, then runs each packet through the engine with warm caches.
   */
  processBatch(batch: PacketBatch, meta: PacketMeta, results: EngineResult[]): void {
    const n = batch.count;
    const views = this.#batchViews;
    while (views.length < n) views.push(new PacketView());
    let w = this.#batchTuples;
    if (w.length < n * TUPLE_WORDS) w = this.#batchTuples = new Uint32Array(n * TUPLE_WORDS * 2);
    const heads = this.#batchHeads.length >= n ? this.#batchHeads : (this.#batchHeads = new Int32Array(n * 2));
    const t = this.conntrack.table;
    for (let i = 0; i < n; i++) {
      const v = views[i];
      v.parse(batch.bufs[i], batch.offsets[i], batch.lengths[i]);
      heads[i] = v.invalid === 0 && !v.isIcmpError && writePacketTuple(v, w, i * TUPLE_WORDS) ? 0 : -1;
    }
    for (let i = 0; i < n; i++) if (heads[i] === 0) heads[i] = t.bucketHead(w, i * TUPLE_WORDS);
    let touched = 0;
    for (let i = 0; i < n; i++) if (heads[i] >= 0) touched += t.touch(heads[i]);
    ConntrackTable.loadSink = touched;
    const m = this.#batchMeta;
    m.now = meta.now;
    for (let i = 0; i < n; i++) {
      m.inIf = batch.inIf[i];
      m.outIf = batch.outIf[i];
      m.mark = batch.marks[i];
      this.#processParsed(views[i], batch.lengths[i], m, results[i]);
    }
  }

  #processParsed(pkt: PacketView, length: number, meta: PacketMeta, out: EngineResult): number {
    const now = meta.now;
    const stats = this.stats;
    out.modified = false;
    if (out.replacement !== null) out.replacement = null;
    out.markChanged = false;
    out.mark = meta.mark;
    out.slot = -1;
    out.dir = 0;
    out.invalidReason = 0;
    if (out.emit.length !== 0) out.emit.length = 0;
    this.conntrack.advance(now);

    const m = this.#meta;
    m.inIf = meta.inIf;
    m.outIf = meta.outIf;
    m.mark = meta.mark;
    m.now = now;

    if (pkt.invalid !== 0 && pkt.invalid < MALFORMED_LIMIT) {
      stats.invalid[pkt.invalid]++;
      if (this.dropMalformed) {
        out.ctState = CS_INVALID;
        out.invalidReason = pkt.invalid;
        return this.#finish(out, V_DROP, DR_MALFORMED, length);
      }
    }

    // raw chain: before conntrack (NOTRACK exemptions, cheap early drops).
    const fr = this.#fr;
    let verdict = this.filter.evalRaw(pkt, m, fr);
    if (fr.markChanged) {
      m.mark = fr.mark;
      out.mark = fr.mark;
      out.markChanged = true;
    }
    if (verdict !== V_ACCEPT) return this.#rejectOrDrop(pkt, out, verdict, length);

    const ct = this.#ct;
    const info = this.#ctInfo;
    if (fr.notrack) {
      ct.state = CS_UNTRACKED;
      ct.slot = -1;
      ct.pending = false;
      info.connmark = 0;
    } else {
      this.conntrack.process(pkt, now, ct);
      // A raw-chain HELPER rule attaches its helper to the entry this packet opens.
      if (ct.pending && fr.helper !== 0) this.conntrack.table.addStatus(ct.slot, fr.helper << CT_HELPER_SHIFT);
      info.connmark = ct.slot >= 0 ? this.conntrack.table.markOf(ct.slot) : 0;
      if (ct.state === CS_INVALID && ct.reason >= MALFORMED_LIMIT) stats.invalid[ct.reason]++;
    }
    info.state = ct.state;
    out.ctState = ct.state;
    out.invalidReason = ct.state === CS_INVALID ? ct.reason : 0;
    out.slot = ct.slot;
    out.dir = ct.dir;

    // NAT before the filter: a new connection's DNAT, then the destination rewrite of any packet
    // of a NAT entry. Entries without NAT cost one status test. Packets INVALID for their entry
    // (out of window) are rewritten too: should a ruleset accept them, they must not leak the
    // inside addresses (Linux leaves them un-NATed).
    const slot = ct.slot;
    let natEntry = false;
    if (slot >= 0) {
      const t = this.conntrack.table;
      if (ct.pending) {
        // A helper's expected connection takes its NAT from its master, not from the rules.
        if (ct.expectation >= 0) this.#followMasterDestination(t, slot, ct.expectation);
        else if (this.nat.hasRules) this.nat.newDestination(t, slot, pkt, meta.inIf, now);
      }
      if ((t.statusOf(slot) & NAT_BITS) !== 0) {
        natEntry = true;
        if (this.nat.rewriteDestination(pkt, t, slot, ct.dir)) out.modified = true;
      }
    }

    // Routing happens here in the kernel (after PREROUTING's DNAT): find the output interface the
    // kernel will pick, so `out:` rules and SNAT rules by interface can match.
    if (m.outIf === 0 && this.#routes !== null) m.outIf = this.#routes.outIf(pkt.family, pkt.dst);

    verdict = this.filter.evalForward(pkt, m, info, fr);
    if (fr.markChanged) {
      out.mark = fr.mark;
      out.markChanged = true;
    }
    if (verdict !== V_ACCEPT) {
      // A REJECT answers the packet as it arrived: undo the destination rewrite first, or a reset
      // for a forwarded port would come from the inside server's address.
      if (verdict === V_REJECT && natEntry && out.modified) {
        this.nat.restoreDestination(pkt, this.conntrack.table, slot, ct.dir);
        out.modified = false;
      }
      this.conntrack.abort(ct);
      if (ct.state === CS_INVALID && ct.reason === IR_TABLE_FULL) {
        return this.#finish(out, V_DROP, DR_TABLE_FULL, length);
      }
      return this.#rejectOrDrop(pkt, out, verdict, length);
    }
    if (ct.slot >= 0 && fr.connmarkChanged) {
      const t = this.conntrack.table;
      t.setMark(ct.slot, fr.connmark);
      if (!ct.pending) t.sink.ctUpdate(t, ct.slot, CH_MARK);
    }
    // NAT after the filter: a new connection's SNAT (which may find its port range full), then
    // the source rewrite.
    if (slot >= 0) {
      const t = this.conntrack.table;
      if (ct.pending && (this.nat.hasRules || ct.expectation >= 0)) {
        const mapped = ct.expectation >= 0 ? this.#followMasterSource(t, slot, ct.expectation, now) : this.nat.newSource(t, slot, pkt, m.outIf, now);
        if (!mapped) {
          this.conntrack.abort(ct);
          return this.#finish(out, V_DROP, DR_NAT_EXHAUSTED, length);
        }
        natEntry = (t.statusOf(slot) & NAT_BITS) !== 0;
      }
      if (natEntry && this.nat.rewriteSource(pkt, t, slot, ct.dir)) out.modified = true;
    }
    this.conntrack.confirm(ct);
    if (slot >= 0 && ct.state !== CS_INVALID && (this.conntrack.table.statusOf(slot) & HELPER_STAGE) !== 0) {
      this.#helperStage(pkt, slot, ct.dir, now, out);
    }
    return this.#finish(out, V_ACCEPT, DR_NONE, length);
  }

  #followMasterDestination(t: ConntrackTable, slot: number, exp: number): void {
    const ex = this.conntrack.expectations;
    const master = ex.masterOf(exp);
    if ((t.statusOf(master) & NAT_BITS) === 0) return;
    this.nat.followMasterDestination(t, slot, master, ex.dirOf(exp), ex.savedPortOf(exp));
  }

  #followMasterSource(t: ConntrackTable, slot: number, exp: number, now: number): boolean {
    const ex = this.conntrack.expectations;
    const master = ex.masterOf(exp);
    if ((t.statusOf(master) & NAT_BITS) === 0) return true;
    return this.nat.followMasterSource(t, slot, master, ex.dirOf(exp), now);
  }

  /**
   * An accepted packet of an entry with a helper or adjusted sequence numbers: the helper reads
   * its payload (and may replace the packet: a NAT rewrite), then the sequence numbers of the
   * packet that leaves are adjusted.
   */
  #helperStage(pkt: PacketView, slot: number, dir: number, now: number, out: EngineResult): void {
    const t = this.conntrack.table;
    const st = t.statusOf(slot);
    let v = pkt;
    const helper = st & CT_HELPER_MASK;
    if (helper !== 0 && pkt.payloadLength > 0) {
      const r = this.helpers.packet(helper >>> CT_HELPER_SHIFT, pkt, slot, dir, now);
      if (r !== null) {
        out.replacement = r;
        v = this.#replaced;
        v.parse(r, 0, r.length);
      }
    }
    if ((t.statusOf(slot) & CtStatus.SEQ_ADJUST) !== 0 && v.proto === 6) {
      const a = this.conntrack.seqadj.get(slot, t.id[slot]);
      if (a !== undefined && SeqAdjustments.apply(a, v, dir) && v === pkt) out.modified = true;
    }
  }

  #rejectOrDrop(pkt: PacketView, out: EngineResult, verdict: number, length: number): number {
    if (verdict === V_REJECT) {
      const kind = this.#fr.rejectKind;
      const answer =
        kind === RK_TCP_RESET
          ? buildTcpReset(pkt)
          : buildIcmpUnreachable(pkt, (pkt.family === 6 ? icmp6RejectCode : icmpRejectCode)[kind]);
      if (answer) out.emit.push(answer);
      this.stats.rejects++;
    }
    return this.#finish(out, V_DROP, DR_RULESET, length);
  }

  #finish(out: EngineResult, verdict: number, reason: number, length: number): number {
    out.verdict = verdict;
    out.dropReason = reason;
    const s = this.stats;
    if (verdict === V_ACCEPT) {
      s.acceptedPackets++;
      s.acceptedBytes += length;
    } else {
      s.droppedPackets++;
      s.droppedBytes += length;
      s.drops[reason]++;
    }
    return verdict;
  }
}

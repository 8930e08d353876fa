/**
 * Connection tracking for one packet: find or create the entry, run the protocol tracker, decide
 * the packet's ct state (NEW / ESTABLISHED / RELATED / INVALID), refresh timeout and counters, and
 * report changes to the event sink. New entries stay pending until the caller confirms them
 * (the filter accepted the packet) or aborts them (dropped), like Linux's unconfirmed conntracks.
 *
 * UDP, ICMP and other protocols are tracked here (their trackers are a few lines); TCP in tcp.ts.
 */
import { Proto, InvalidReason, TcpFlag, type PacketFields } from '../packet/fields.js';
import { CtState, Dir } from './state.js';
import { ConntrackTable, CtStatus, type ConntrackTableOptions } from './table.js';
import { TcpTracker, TcpVerdict } from './tcp.js';
import type { TcpTrackerOptions } from './tcp-config.js';
import { ExpectationTable } from './expect.js';
import { SeqAdjustments } from './seqadj.js';
import { CtChange, DestroyReason } from './events.js';
import { TUPLE_WORDS, icmpIsRequest, invertTuple, writePacketTuple } from './tuple.js';

// Module-local copies of imported constants: on Node 20 each use of an imported binding costs
// a load through the exporting module even in optimised code; a local const costs nothing.
const CH_COUNTERS = CtChange.COUNTERS;
const CH_STATE = CtChange.STATE;
const CH_TIMEOUT = CtChange.TIMEOUT;
const CH_WINDOW = CtChange.WINDOW;
const CH_HELPER = CtChange.HELPER;
const CS_ESTABLISHED = CtState.ESTABLISHED;
const CS_INVALID = CtState.INVALID;
const CS_NEW = CtState.NEW;
const CS_RELATED = CtState.RELATED;
const DE_RESTART = DestroyReason.RESTART;
const DIR_REPLY = Dir.REPLY;
const F_ACK = TcpFlag.ACK;
const F_FIN = TcpFlag.FIN;
const F_RST = TcpFlag.RST;
const F_SYN = TcpFlag.SYN;
const IR_BAD_ICMP_INNER = InvalidReason.BAD_ICMP_INNER;
const IR_FRAGMENT = InvalidReason.FRAGMENT;
const IR_ICMP_UNTRACKED = InvalidReason.ICMP_UNTRACKED;
const IR_NO_TUPLE = InvalidReason.NO_TUPLE;
const IR_TABLE_FULL = InvalidReason.TABLE_FULL;
const IR_TCP_STATE = InvalidReason.TCP_STATE;
const P_ICMP = Proto.ICMP;
const P_ICMPV6 = Proto.ICMPV6;
const P_TCP = Proto.TCP;
const P_UDP = Proto.UDP;
const ST_ASSURED = CtStatus.ASSURED;
const ST_EXPECTED = CtStatus.EXPECTED;
const ST_SEEN_REPLY = CtStatus.SEEN_REPLY;
const ST_REPLICATED = CtStatus.REPLICATED;
const ST_SEQ_ADJUST = CtStatus.SEQ_ADJUST;
const ST_CONFIRMED = CtStatus.CONFIRMED;
const TV_IGNORE = TcpVerdict.IGNORE;
const TV_INVALID = TcpVerdict.INVALID;
const TV_RESTART = TcpVerdict.RESTART;

/** Default timeouts (ms) for the non-TCP protocols, as Linux's sysctls. */
export const defaultTimeouts = {
  /** nf_conntrack_udp_timeout */
  udpUnreplied: 30_000,
  /** nf_conntrack_udp_timeout_stream */
  udpReplied: 120_000,
  /** nf_conntrack_icmp_timeout / icmpv6 */
  icmp: 30_000,
  /** nf_conntrack_generic_timeout */
  generic: 600_000,
};
export type ConntrackTimeouts = typeof defaultTimeouts;

/** Linux marks a UDP flow assured only once it has lived this long with replies (stream_ts). */
const UDP_STREAM_MS = 2_000;

export interface ConntrackOptions extends ConntrackTableOptions {
  timeouts?: Partial<ConntrackTimeouts>;
  tcp?: TcpTrackerOptions;
  maxExpectations?: number;
}

/** What conntrack decided for one packet. One instance is reused for every packet. */
export class CtResult {
  /** CtState code. */
  state: number = CS_INVALID;
  /** InvalidReason when state is INVALID. */
  reason = 0;
  /** Entry slot, -1 when none (INVALID without entry, UNTRACKED). */
  slot = -1;
  /** Direction of the packet relative to the entry. */
  dir = 0;
  /** The entry was created by this packet and awaits confirm() or abort(). */
  pending = false;
  /** Expectation consumed by this packet's new entry, -1 when none. */
  expectation = -1;
  /** Deadline for a pending entry. */
  deadline = 0;
}

export class Conntrack {
  readonly table: ConntrackTable;
  readonly tcp: TcpTracker;
  readonly expectations: ExpectationTable;
  /** Sequence adjustments of entries a NAT helper resized (seqadj.ts). */
  readonly seqadj = new SeqAdjustments();
  readonly timeouts: ConntrackTimeouts;
  #scratch = new Uint32Array(TUPLE_WORDS * 2);

  constructor(opts: ConntrackOptions) {
    this.table = new ConntrackTable(opts);
    this.tcp = new TcpTracker(opts.tcp ?? {});
    this.expectations = new ExpectationTable(opts.maxExpectations ?? 4096);
    this.timeouts = { ...defaultTimeouts, ...opts.timeouts };
    this.table.onHelperEntryGone = (slot) => {
      this.expectations.removeMaster(slot);
      this.seqadj.delete(slot);
    };
  }

  /** Track one parsed packet. `len` is the packet's length in bytes, for the counters. */
  process(pkt: PacketFields, now: number, res: CtResult): void {
    res.pending = false;
    res.slot = -1;
    res.dir = 0;
    res.reason = 0;
    res.expectation = -1;
    if (pkt.invalid !== 0) return this.#invalid(res, pkt.invalid);
    if (pkt.isLaterFragment) return this.#invalid(res, IR_FRAGMENT);
    if (pkt.isIcmpError) return this.#related(pkt, res);

    const t = this.table;
    const w = this.#scratch;
    writePacketTuple(pkt, w, 0);
    const node = t.lookup(w, 0);
    if (node >= 0) {
      if (this.#existing(pkt, now, node >> 1, node & 1, res)) return;
      // RESTART: the old TIME_WAIT/CLOSE entry was destroyed; fall through and create anew.
    }
    this.#create(pkt, now, res);
  }

  /** The filter accepted the first packet: link the pending entry into the table. */
  confirm(res: CtResult): void {
    if (!res.pending) return;
    res.pending = false;
    const t = this.table;
    let master = -1;
    if (res.expectation >= 0) {
      master = this.expectations.take(res.expectation);
      t.master[res.slot] = master;
    }
    t.confirm(res.slot, res.deadline);
    // The master's expectations changed (this one used): the standby's list must follow.
    if (master >= 0 && (t.statusOf(master) & ST_CONFIRMED) !== 0) t.sink.ctUpdate(t, master, CH_HELPER);
  }

  /** The first packet was dropped: forget the pending entry. */
  abort(res: CtResult): void {
    if (!res.pending) return;
    res.pending = false;
    this.table.release(res.slot);
  }

  /** Expire entries and expectations whose time has come. */
  advance(now: number): number {
    return this.table.advance(now);
  }

  #invalid(res: CtResult, reason: number): void {
    res.state = CS_INVALID;
    res.reason = reason;
  }

  /** Packet of a known entry. Returns false when the entry was restarted (caller creates anew). */
  #existing(pkt: PacketFields, now: number, slot: number, dir: number, res: CtResult): boolean {
    const t = this.table;
    let changes = 0;
    let timeout: number;
    const proto = pkt.proto;
    // A takeover in progress: the peer's entry becomes ours at its first packet (table.adoptReplicated).
    if (t.adoptReplicated && (t.statusOf(slot) & ST_REPLICATED) !== 0) {
      t.clearStatus(slot, ST_REPLICATED);
      if (proto === P_TCP) this.tcp.setTolerant(t.tcp, slot);
    }
    if (proto === P_TCP) {
      // A NAT helper resized this flow's payload: the tracker reads acks in the sender's numbers.
      if ((t.statusOf(slot) & ST_SEQ_ADJUST) !== 0) this.#untrackAck(pkt, slot, dir);
      const v = this.tcp.track(t.tcp, slot, dir as 0 | 1, pkt, now);
      if (v === TV_INVALID) {
        // An out-of-window FIN/RST answering the peer's: the kernel shortens a dead connection's timeout.
        if (this.tcp.lastTimeoutCap) {
          if (now + this.tcp.lastTimeout < t.deadlineOf(slot)) {
            t.setDeadline(slot, now + this.tcp.lastTimeout);
            t.sink.ctUpdate(t, slot, CH_TIMEOUT);
          }
        }
        res.slot = slot;
        res.dir = dir;
        this.#invalid(res, this.tcp.lastReason);
        return true;
      }
      if (v === TV_RESTART) {
        t.destroy(slot, DE_RESTART);
        return false;
      }
      if (v === TV_IGNORE) {
        res.slot = slot;
        res.dir = dir;
        res.state = ctStateOf(t.statusOf(slot), dir);
        return true;
      }
      const tr = this.tcp;
      const cur = t.deadlineOf(slot);
      // -1: leave the timeout alone; a cap only shortens it (kernel's nf_tcp_handle_invalid);
      // lastDestroy: the opening was answered by a RST, the entry goes at the next tick.
      timeout = tr.lastDestroy ? 0 : tr.lastTimeout < 0 ? cur - now : tr.lastTimeoutCap ? Math.min(cur - now, tr.lastTimeout) : tr.lastTimeout;
      changes |= CH_WINDOW;
      if (this.tcp.lastStateChanged) changes |= CH_STATE;
      if (this.tcp.lastAssured && (t.statusOf(slot) & ST_ASSURED) === 0) {
        t.addStatus(slot, ST_ASSURED);
        changes |= CH_STATE;
      }
    } else if (proto === P_UDP) {
      // Linux nf_conntrack_udp_packet: the unreplied timeout until a reply has been seen (the
      // reply itself still gets it: SEEN_REPLY is set after the protocol handler) and the flow is
      // older than 2 s; then the stream timeout, and ASSURED.
      const st = t.statusOf(slot);
      timeout = this.timeouts.udpUnreplied;
      if ((st & ST_SEEN_REPLY) !== 0 && now - t.start[slot] > UDP_STREAM_MS) {
        timeout = this.timeouts.udpReplied;
        if ((st & ST_ASSURED) === 0) {
          t.addStatus(slot, ST_ASSURED);
          changes |= CH_STATE;
        }
      }
    } else if (proto === P_ICMP || proto === P_ICMPV6) {
      timeout = this.timeouts.icmp;
    } else {
      timeout = this.timeouts.generic;
    }
    if (dir === DIR_REPLY && (t.statusOf(slot) & ST_SEEN_REPLY) === 0) {
      t.addStatus(slot, ST_SEEN_REPLY);
      changes |= CH_STATE;
    }
    t.account(slot, dir, pkt.ipLength);
    t.setDeadline(slot, now + timeout);
    changes |= CH_COUNTERS | CH_TIMEOUT;
    res.slot = slot;
    res.dir = dir;
    res.state = ctStateOf(t.statusOf(slot), dir);
    t.sink.ctUpdate(t, slot, changes);
    return true;
  }

  #untrackAck(pkt: PacketFields, slot: number, dir: number): void {
    const a = this.seqadj.get(slot, this.table.id[slot]);
    if (a !== undefined && (pkt.tcpFlags & F_ACK) !== 0) pkt.tcpAck = SeqAdjustments.untrackAck(a, dir, pkt.tcpAck);
  }

  #create(pkt: PacketFields, now: number, res: CtResult): void {
    const t = this.table;
    const w = this.#scratch;
    const proto = pkt.proto;
    // Cheap refusals before taking a slot (which may evict another entry when the table is full).
    if (proto === P_TCP) {
      const f = pkt.tcpFlags;
      // Linux tcp_new: only SYN (or, when loose, a mid-stream ACK) may open a connection.
      if ((f & (F_RST | F_FIN)) !== 0 || (f & (F_SYN | F_ACK)) === (F_SYN | F_ACK)) {
        return this.#invalid(res, IR_TCP_STATE);
      }
    } else if (proto === P_ICMP || proto === P_ICMPV6) {
      if (!icmpIsRequest(pkt.family, pkt.icmpType)) return this.#invalid(res, IR_ICMP_UNTRACKED);
    }
    if (!invertTuple(w, 0, w, TUPLE_WORDS)) return this.#invalid(res, IR_NO_TUPLE);
    const exp = this.expectations.match(w, 0, now, t.id);
    const slot = t.allocate(now, w, 0);
    if (slot < 0) return this.#invalid(res, IR_TABLE_FULL);
    t.tuples.set(w, t.tupleOffset(slot, 0));
    let timeout: number;
    if (proto === P_TCP) {
      const tr = this.tcp;
      if (!tr.newEntry(t.tcp, slot, pkt) || tr.track(t.tcp, slot, 0, pkt, now) === TV_INVALID) {
        const reason = tr.lastReason || IR_TCP_STATE;
        t.release(slot);
        return this.#invalid(res, reason);
      }
      timeout = tr.lastTimeout >= 0 ? tr.lastTimeout : tr.timeoutOf(tr.lastState);
      if (tr.lastAssured) t.addStatus(slot, ST_ASSURED);
    } else if (proto === P_UDP) {
      timeout = this.timeouts.udpUnreplied;
    } else if (proto === P_ICMP || proto === P_ICMPV6) {
      timeout = this.timeouts.icmp;
    } else {
      timeout = this.timeouts.generic;
    }
    t.account(slot, 0, pkt.ipLength);
    res.slot = slot;
    res.dir = 0;
    res.pending = true;
    res.deadline = now + timeout;
    if (exp >= 0) {
      t.addStatus(slot, ST_EXPECTED);
      // A RELATED connection carries its master's connmark (Linux init_conntrack copies it).
      t.setMark(slot, t.markOf(this.expectations.masterOf(exp)));
      res.expectation = exp;
      res.state = CS_RELATED;
    } else {
      res.state = CS_NEW;
    }
  }

  /** ICMP error: RELATED to the flow it quotes, if that flow is tracked (Linux icmp_error_message). */
  #related(pkt: PacketFields & { inner?: PacketFields }, res: CtResult): void {
    const inner = pkt.inner;
    if (inner === undefined || inner.invalid !== 0) return this.#invalid(res, IR_BAD_ICMP_INNER);
    const w = this.#scratch;
    if (!writePacketTuple(inner, w, TUPLE_WORDS)) return this.#invalid(res, IR_ICMP_UNTRACKED);
    // The quoted packet travelled the other way: the error belongs to the inverse direction.
    if (!invertTuple(w, TUPLE_WORDS, w, 0)) return this.#invalid(res, IR_ICMP_UNTRACKED);
    const node = this.table.lookup(w, 0);
    if (node < 0) return this.#invalid(res, IR_ICMP_UNTRACKED);
    res.slot = node >> 1;
    res.dir = node & 1;
    res.state = CS_RELATED;
  }
}

/** Linux resolve_normal_ct: reply direction or seen reply -> ESTABLISHED; expected -> RELATED. */
function ctStateOf(status: number, dir: number): number {
  if (dir === DIR_REPLY || (status & ST_SEEN_REPLY) !== 0) return CS_ESTABLISHED;
  if ((status & ST_EXPECTED) !== 0) return CS_RELATED;
  return CS_NEW;
}

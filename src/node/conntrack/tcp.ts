/**
 * The TCP connection tracker: Linux's nf_conntrack_proto_tcp.c (tcp_new, nf_conntrack_tcp_packet)
 * on our array-of-structs store (one 64-byte record per entry, tcp-store.ts). Per packet it reads
 * the state table (tcp-states.ts), handles the kernel's special cells (ignored segments,
 * reopening, challenge ACKs, simultaneous open, resets), checks the windows (tcp-window.ts) and
 * picks the timeout.
 *
 * Nothing here allocates per packet: results are left in the tracker's `last*` fields, valid
 * until the next call.
 *
 * Usage by the engine, per TCP packet:
 *   miss: tracker.newEntry(store, slot, seg) ? track(store, slot, ORIGINAL, seg, now) : INVALID
 *   hit:  tracker.track(store, slot, dir, seg, now)
 *         RESTART -> destroy the entry, look the packet up again (it will create a new entry)
 *         lastDestroy -> destroy the entry after forwarding the packet
 */
import { InvalidReason, TcpFlag } from '../packet/fields.js';
import { TcpState } from './state.js';
import * as tcpConfig from './tcp-config.js';
import { resolveTcpConfig, tcpTimeoutVector, type TcpTrackerConfig, type TcpTrackerOptions } from './tcp-config.js';
import { TcpFlagClass, TcpTransition, tcpFlagClass, tcpTransition } from './tcp-states.js';
import * as layout from './tcp-store.js';
import { TcpDirFlag, TcpEntryFlag, TcpLastFlag, type TcpStateStore } from './tcp-store.js';
import * as tcpWindow from './tcp-window.js';
import {
  TcpDetail,
  TcpWindowChecker,
  WindowAction,
  learnSynOptions,
  seqBefore,
  segmentEnd,
  type TcpSegment,
} from './tcp-window.js';

// The numeric constants of other modules, as module-local consts. V8 (Node 20) reads an imported
// binding through its module cell, with a TDZ check, at every use even in optimised code, while a
// module-local const costs nothing: local copies took the fast path from 63 to 48 ns/segment
// (bench/tcp.ts, 1k flows). Same for the flag objects' members the fast path uses (below).
const {
  B_ENTRY_FLAGS,
  B_LAST_DIR,
  B_LAST_FLAGS,
  B_LAST_INDEX,
  B_LAST_WSCALE,
  B_RETRANS,
  B_STATE,
  B_TD_FLAGS,
  B_TD_SCALE,
  TCP_MAX_WSCALE,
  TCP_BASE_BYTES,
  TCP_BASE_WORDS,
  TCP_STRIDE_BYTES,
  TCP_STRIDE_WORDS,
  W_LAST_ACK,
  W_LAST_END,
  W_LAST_SEQ,
  W_LAST_WIN,
  W_TD_END,
  W_TD_MAXACK,
  W_TD_MAXEND,
  W_TD_MAXWIN,
} = layout;
const { TCP_TIMEOUT_RETRANS, TCP_TIMEOUT_UNACK } = tcpConfig;
const { MAX_ACK_WINDOW_CONST } = tcpWindow;

export * from './tcp-config.js';
export * from './tcp-states.js';
export * from './tcp-store.js';
export * from './tcp-window.js';

/** What the caller does with the packet and the entry. */
export const TcpVerdict = {
  /** Valid: forward; the entry was updated (state, windows, timeout in lastTimeout). */
  ACCEPT: 0,
  /** Invalid: the entry is unchanged; the reason is in lastReason (and lastDetail). */
  INVALID: 1,
  /**
   * Forward, but nothing was learnt and the timeout is not refreshed: a segment that may be
   * valid or not, whose answer will tell (the kernel's "ignored" packets). Reason in lastDetail.
   */
  IGNORE: 2,
  /**
   * A SYN re-opening a closed (TIME_WAIT/CLOSE) or aborted connection: destroy this entry and
   * process the packet again, which creates a new one (the kernel's -NF_REPEAT).
   */
  RESTART: 3,
} as const;
export type TcpVerdictCode = (typeof TcpVerdict)[keyof typeof TcpVerdict];
export const tcpVerdictNames = ['accept', 'invalid', 'ignore', 'restart'] as const;

const sNO = TcpState.NONE;
const sSS = TcpState.SYN_SENT;
const sSR = TcpState.SYN_RECV;
const sES = TcpState.ESTABLISHED;
const sLA = TcpState.LAST_ACK;
const sTW = TcpState.TIME_WAIT;
const sCL = TcpState.CLOSE;
const sS2 = TcpState.SYN_SENT2;

// Flag values of the fast path, local for the reason given above the imports.
const ACK = TcpFlag.ACK;
const CLASS_ACK = TcpFlagClass.ACK;
const DATA_UNACK = TcpDirFlag.DATA_UNACKNOWLEDGED;
const MAXACK_SET = TcpDirFlag.MAXACK_SET;
const REASON_NONE = InvalidReason.NONE;
const DETAIL_NONE = TcpDetail.NONE;
const ACCEPT = TcpVerdict.ACCEPT;

/** Fast path: of these flags, exactly ACK (no SYN, FIN or RST; PSH, URG, ECE, CWR may be set). */
const FAST_FLAGS_MASK = TcpFlag.ACK | TcpFlag.SYN | TcpFlag.FIN | TcpFlag.RST;
/** Fast path: of these entry flags, exactly SEEN_REPLY and ASSURED (so not TOLERANT). */
const FAST_ENTRY_MASK = TcpEntryFlag.TOLERANT | TcpEntryFlag.SEEN_REPLY | TcpEntryFlag.ASSURED;
const FAST_ENTRY_FLAGS = TcpEntryFlag.SEEN_REPLY | TcpEntryFlag.ASSURED;

export class TcpTracker {
  readonly config: TcpTrackerConfig;
  /** Timeout of each state, then the RETRANS and UNACK caps, in ms. */
  private readonly timeouts: Float64Array;
  private readonly window = new TcpWindowChecker();

  /** Timeout to apply to the entry in ms; -1 means leave the current timeout alone. */
  lastTimeout = -1;
  /**
   * When true, lastTimeout is a cap: set the entry's remaining time to min(remaining, lastTimeout).
   * Only ever set with an INVALID verdict: an out-of-window FIN or RST answering the other side's
   * FIN or RST on an assured entry, where the kernel's nf_tcp_handle_invalid shortens the timeout
   * of the dead connection. The caller should apply it even though the packet is dropped.
   */
  lastTimeoutCap = false;
  /** InvalidReason of the last INVALID verdict (or of a refused newEntry); NONE otherwise. */
  lastReason: number = InvalidReason.NONE;
  /** Finer TcpDetail for INVALID, IGNORE and lenient ACCEPT verdicts: one counter each. */
  lastDetail: number = TcpDetail.NONE;
  /** The entry became ASSURED with this packet (IPS_ASSURED): emit the event, exempt from early drop. */
  lastAssured = false;
  /** The TCP state changed with this packet (the kernel's IPCT_PROTOINFO event). */
  lastStateChanged = false;
  /** State after the packet. */
  lastState: number = TcpState.NONE;
  /**
   * Destroy the entry now, after forwarding the packet: the only answer to the opening was a RST
   * (the kernel's nf_ct_kill_acct in nf_conntrack_tcp_packet). lastTimeout is 0 as well.
   */
  lastDestroy = false;

  constructor(options: TcpTrackerOptions = {}) {
    this.config = resolveTcpConfig(options);
    this.timeouts = tcpTimeoutVector(this.config.timeouts);
  }

  /** Timeout in ms for a state (TcpState code). */
  timeoutOf(state: number): number {
    return this.timeouts[state];
  }

  /**
   * May this packet (seen in the original direction, no entry yet) create an entry? A SYN opens
   * one; with `loose`, an ACK picks up a connection mid-stream. Initialises the slot as the
   * kernel's tcp_new; the caller then passes the same packet to track(..., ORIGINAL, ...).
   * When refused, lastReason is TCP_STATE and the slot is untouched.
   */
  newEntry(store: TcpStateStore, slot: number, seg: TcpSegment): boolean {
    this.resetResult();
    const next = tcpTransition(0, tcpFlagClass(seg.tcpFlags), sNO);
    if (next === TcpTransition.INVALID || (next !== sSS && !this.config.loose)) {
      this.lastReason = InvalidReason.TCP_STATE;
      this.lastDetail = TcpDetail.STATE;
      return false;
    }
    store.clear(slot);
    const u32 = store.u32;
    const u8 = store.u8;
    const b = slot * TCP_STRIDE_WORDS + TCP_BASE_WORDS;
    const p = (slot * TCP_STRIDE_BYTES + TCP_BASE_BYTES);
    const end = segmentEnd(seg);
    const win = seg.tcpWindow & 0xffff;
    const maxwin = win === 0 ? 1 : win;
    u32[b + W_TD_END] = end;
    u32[b + W_TD_MAXWIN] = maxwin;
    if (next === sSS) {
      u32[b + W_TD_MAXEND] = end;
      learnSynOptions(store, slot, 0, seg);
    } else {
      // Mid-stream: the history is lost; the window scale is unknown, so be liberal about the
      // windows of this connection and assume SACK (kernel's tcp_new).
      u32[b + W_TD_MAXEND] = (end + maxwin) >>> 0;
      u8[p + B_TD_FLAGS] = TcpDirFlag.SACK_PERM | TcpDirFlag.BE_LIBERAL;
      u8[p + B_TD_FLAGS + 1] = TcpDirFlag.SACK_PERM | TcpDirFlag.BE_LIBERAL;
    }
    u8[p + B_LAST_INDEX] = TcpFlagClass.NONE;
    return true;
  }

  /**
   * Track one segment of an existing entry. Returns a TcpVerdict code; see the `last*` fields.
   * `now` (ms) is accepted for the engine's uniform tracker interface; TCP tracking needs no clock.
   *
   * Almost every packet of a firewall is an in-window ACK or data segment of an established,
   * assured connection; this handles that case inline, doing exactly what trackFull() would do
   * for it (the state table maps ESTABLISHED + ACK to ESTABLISHED in both directions, no special
   * cell applies, the four bounds of tcp-window.ts pass, learn() runs, no entry flag changes).
   * Anything else, including a segment failing any bound, goes to trackFull() untouched. The
   * tcp-fastpath property test compares both, store bytes and results, on random sequences.
   */
  track(store: TcpStateStore, slot: number, dir: number, seg: TcpSegment, now: number): number {
    const u8 = store.u8;
    const p = (slot * TCP_STRIDE_BYTES + TCP_BASE_BYTES);
    const flags = seg.tcpFlags;
    if (
      u8[p + B_STATE] !== sES ||
      (flags & FAST_FLAGS_MASK) !== ACK ||
      (u8[p + B_ENTRY_FLAGS] & FAST_ENTRY_MASK) !== FAST_ENTRY_FLAGS
    ) {
      return this.trackFull(store, slot, dir, seg, now);
    }
    const u32 = store.u32;
    const b = slot * TCP_STRIDE_WORDS + TCP_BASE_WORDS;
    const s = b + dir;
    const r = b + (dir ^ 1);
    const sEnd = u32[s + W_TD_END];
    const sMaxend = u32[s + W_TD_MAXEND];
    const sMaxwin = u32[s + W_TD_MAXWIN];
    const rEnd = u32[r + W_TD_END];
    const rMaxwin = u32[r + W_TD_MAXWIN];
    const seq = seg.tcpSeq >>> 0;
    const ack = seg.tcpAck >>> 0;
    // No SYN, no FIN: segmentEnd() is seq + payload.
    const end = (seq + seg.payloadLength) >>> 0;
    const maxAckWin = sMaxwin > MAX_ACK_WINDOW_CONST ? sMaxwin : MAX_ACK_WINDOW_CONST;
    // The bounds I, III, II, IV of TcpWindowChecker.bounds, written as the sign of one modular
    // difference each: seqBefore(a, b) is ((a - b) | 0) < 0, seqAfter(a, b) is ((b - a) | 0) < 0,
    // and the >>> 0 inside the originals changes nothing modulo 2^32. A zero maxwin means a
    // direction never seen (mid-stream pickup): the checker has a branch for it, so leave it that.
    if (
      sMaxwin === 0 ||
      rMaxwin === 0 ||
      ((seq - sMaxend - 1) | 0) >= 0 ||
      ((ack - rEnd - 1) | 0) >= 0 ||
      ((sEnd - rMaxwin - 1 - end) | 0) >= 0 ||
      ((rEnd - maxAckWin - 1 - ack) | 0) >= 0
    ) {
      return this.trackFull(store, slot, dir, seg, now);
    }

    // In window: TcpWindowChecker.learn for a non-SYN ACK-class segment, same order of updates.
    const ps = p + dir;
    const pr = p + (dir ^ 1);
    const winRaw = seg.tcpWindow & 0xffff;
    const win = (winRaw << u8[ps + B_TD_SCALE]) >>> 0;
    if (sMaxwin < win) u32[s + W_TD_MAXWIN] = win;
    let sFlags = u8[ps + B_TD_FLAGS];
    if (((sEnd - end) | 0) < 0) {
      u32[s + W_TD_END] = end;
      sFlags |= DATA_UNACK;
    }
    if ((sFlags & MAXACK_SET) === 0) {
      u32[s + W_TD_MAXACK] = ack;
      sFlags |= MAXACK_SET;
    } else if (((u32[s + W_TD_MAXACK] - ack) | 0) < 0) {
      u32[s + W_TD_MAXACK] = ack;
    }
    u8[ps + B_TD_FLAGS] = sFlags;
    // rMaxwin is not zero here (checked above).
    if (((sMaxend - end) | 0) < 0) u32[r + W_TD_MAXWIN] = (rMaxwin + end - sMaxend) >>> 0;
    const edge = (ack + win) >>> 0;
    if (((u32[r + W_TD_MAXEND] - 1 - edge) | 0) < 0) u32[r + W_TD_MAXEND] = win === 0 ? (edge + 1) >>> 0 : edge;
    let rFlags = u8[pr + B_TD_FLAGS];
    if (ack === rEnd) {
      rFlags &= ~DATA_UNACK;
      u8[pr + B_TD_FLAGS] = rFlags;
    }
    let retrans: number;
    if (
      u8[p + B_LAST_DIR] === dir &&
      u32[b + W_LAST_SEQ] === seq &&
      u32[b + W_LAST_ACK] === ack &&
      u32[b + W_LAST_END] === end &&
      u32[b + W_LAST_WIN] === winRaw
    ) {
      retrans = u8[p + B_RETRANS];
      if (retrans < 255) u8[p + B_RETRANS] = ++retrans;
    } else {
      u8[p + B_LAST_DIR] = dir;
      u32[b + W_LAST_SEQ] = seq;
      u32[b + W_LAST_ACK] = ack;
      u32[b + W_LAST_END] = end;
      u32[b + W_LAST_WIN] = winRaw;
      u8[p + B_RETRANS] = retrans = 0;
    }
    // trackFull's commit: B_LAST_DIR is dir by now, B_STATE stays ESTABLISHED.
    u8[p + B_LAST_INDEX] = CLASS_ACK;

    // trackFull's timeout choice for ESTABLISHED and an ACK; W_LAST_WIN is winRaw by now.
    const t = this.timeouts;
    const tES = t[sES];
    let timeout = tES;
    if (retrans >= this.config.maxRetrans && tES > t[TCP_TIMEOUT_RETRANS]) {
      timeout = t[TCP_TIMEOUT_RETRANS];
    } else if (((sFlags | rFlags) & DATA_UNACK) !== 0 && tES > t[TCP_TIMEOUT_UNACK]) {
      timeout = t[TCP_TIMEOUT_UNACK];
    } else if (winRaw === 0 && tES > t[TCP_TIMEOUT_RETRANS]) {
      timeout = t[TCP_TIMEOUT_RETRANS];
    }
    // Every result field, as resetResult() then an ACCEPT without a state change would leave them.
    this.lastTimeout = timeout;
    this.lastTimeoutCap = false;
    this.lastReason = REASON_NONE;
    this.lastDetail = DETAIL_NONE;
    this.lastAssured = false;
    this.lastStateChanged = false;
    this.lastState = sES;
    this.lastDestroy = false;
    return ACCEPT;
  }

  /**
   * track() without its fast path: the whole of the kernel's nf_conntrack_tcp_packet for any
   * segment. Public so that tests can check the fast path against it; callers use track().
   */
  trackFull(store: TcpStateStore, slot: number, dir: number, seg: TcpSegment, _now: number): number {
    this.resetResult();
    // One record per entry: compute its bases once, index every field from them (tcp-store.ts).
    const u32 = store.u32;
    const u8 = store.u8;
    const b = slot * TCP_STRIDE_WORDS + TCP_BASE_WORDS;
    const p = (slot * TCP_STRIDE_BYTES + TCP_BASE_BYTES);
    const stored = u8[p + B_STATE];
    let oldState = stored;
    const index = tcpFlagClass(seg.tcpFlags);
    let newState = tcpTransition(dir, index, oldState);
    const ack = seg.tcpAck >>> 0;
    const seq = seg.tcpSeq >>> 0;
    const ef = u8[p + B_ENTRY_FLAGS];
    const tolerant = (ef & TcpEntryFlag.TOLERANT) !== 0;
    let skipWindow = false;

    if (newState === sSS && oldState >= sTW) {
      // RFC 1122 4.2.2.13: a SYN may reopen a connection in TIME-WAIT (we ignore its conditions,
      // we are in TIME_WAIT anyway). Also a client aborting (RST) and starting over.
      if (
        ((u8[p + B_TD_FLAGS] | u8[p + B_TD_FLAGS + 1]) & TcpDirFlag.CLOSE_INIT) !== 0 ||
        (u8[p + B_LAST_DIR] === dir && u8[p + B_LAST_INDEX] === TcpFlagClass.RST)
      ) {
        this.lastDetail = TcpDetail.RESTART;
        this.lastState = stored;
        return TcpVerdict.RESTART;
      }
      newState = TcpTransition.IGNORE;
    }

    if (newState === TcpTransition.IGNORE) {
      const lastDir = u8[p + B_LAST_DIR];
      if (
        index === TcpFlagClass.SYNACK &&
        u8[p + B_LAST_INDEX] === TcpFlagClass.SYN &&
        lastDir !== dir &&
        ack === u32[b + W_LAST_END]
      ) {
        // This SYN/ACK acknowledges a SYN we ignored: client and server are in sync and we are
        // not. Get in sync from the values noted with that SYN.
        oldState = sSS;
        newState = sSR;
        const lastEnd = u32[b + W_LAST_END];
        const lastWin = u32[b + W_LAST_WIN];
        u32[b + W_TD_END + lastDir] = lastEnd;
        u32[b + W_TD_MAXEND + lastDir] = lastEnd;
        u32[b + W_TD_MAXWIN + lastDir] = lastWin === 0 ? 1 : lastWin;
        u8[p + B_TD_SCALE + lastDir] = u8[p + B_LAST_WSCALE];
        u8[p + B_LAST_FLAGS] &= ~TcpLastFlag.EXP_CHALLENGE_ACK;
        u8[p + B_TD_FLAGS + lastDir] = u8[p + B_LAST_FLAGS];
        store.resetDir(slot, dir);
      } else {
        this.noteIgnored(store, slot, dir, index, oldState, seg);
        if (dir === 1) u8[p + B_ENTRY_FLAGS] |= TcpEntryFlag.SEEN_REPLY;
        this.lastDetail = TcpDetail.IGNORED_STATE;
        this.lastState = stored;
        return TcpVerdict.IGNORE;
      }
    } else if (newState === TcpTransition.INVALID) {
      this.lastReason = InvalidReason.TCP_STATE;
      this.lastDetail = TcpDetail.STATE;
      this.lastState = stored;
      return TcpVerdict.INVALID;
    } else if (newState === sTW) {
      // RFC 5961 4: a stack answers a spurious SYN with a challenge ACK; in LAST_ACK that ACK
      // must not be taken for the last ACK.
      if (
        oldState === sLA &&
        index === TcpFlagClass.ACK &&
        u8[p + B_LAST_DIR] !== dir &&
        u8[p + B_LAST_INDEX] === TcpFlagClass.SYN &&
        (u8[p + B_LAST_FLAGS] & TcpLastFlag.EXP_CHALLENGE_ACK) !== 0
      ) {
        u8[p + B_LAST_FLAGS] &= ~TcpLastFlag.EXP_CHALLENGE_ACK;
        if (dir === 1) u8[p + B_ENTRY_FLAGS] |= TcpEntryFlag.SEEN_REPLY;
        this.lastDetail = TcpDetail.CHALLENGE_ACK;
        this.lastState = stored;
        return TcpVerdict.IGNORE;
      }
    } else if (newState === sS2) {
      // The table cannot express a simultaneous open; remember it for SYN_RECV.
      u8[p + B_LAST_FLAGS] |= TcpLastFlag.SIMULTANEOUS_OPEN;
    } else if (newState === sSR) {
      if (dir === 1 && index === TcpFlagClass.ACK && (u8[p + B_LAST_FLAGS] & TcpLastFlag.SIMULTANEOUS_OPEN) !== 0) {
        newState = sES;
      }
    } else if (newState === sCL && index === TcpFlagClass.RST) {
      const rst = this.checkRst(store, slot, dir, oldState, seq, ack, tolerant);
      if (rst === RST_INVALID) {
        this.lastReason = InvalidReason.TCP_WINDOW;
        this.lastDetail = TcpDetail.RST_SEQ;
        this.lastState = stored;
        return TcpVerdict.INVALID;
      }
      if (rst === RST_TOLERATED) {
        if (dir === 1) u8[p + B_ENTRY_FLAGS] |= TcpEntryFlag.SEEN_REPLY;
        this.lastDetail = TcpDetail.TOLERANT_RST;
        this.lastState = stored;
        return TcpVerdict.IGNORE;
      }
      if ((rst & RST_KEEP_STATE) !== 0) newState = oldState;
      if ((rst & RST_SKIP_WINDOW) !== 0) skipWindow = true;
    }

    if (!skipWindow) {
      const res = this.window.check(store, slot, dir, index, seg, this.config.liberal);
      this.lastDetail = this.window.detail;
      if (res === WindowAction.IGNORE) {
        if (dir === 1) u8[p + B_ENTRY_FLAGS] |= TcpEntryFlag.SEEN_REPLY;
        this.lastState = stored;
        return TcpVerdict.IGNORE;
      }
      if (res === WindowAction.INVALID) {
        this.handleInvalid(store, slot, dir, index);
        this.lastReason = InvalidReason.TCP_WINDOW;
        this.lastState = stored;
        return TcpVerdict.INVALID;
      }
    }

    // From here on the segment is in window.
    u8[p + B_LAST_INDEX] = index;
    u8[p + B_LAST_DIR] = dir;
    u8[p + B_STATE] = newState;
    this.lastState = newState;
    this.lastStateChanged = newState !== stored;
    if (oldState !== newState && newState === TcpState.FIN_WAIT) u8[p + B_TD_FLAGS + dir] |= TcpDirFlag.CLOSE_INIT;

    const t = this.timeouts;
    let timeout: number;
    if (u8[p + B_RETRANS] >= this.config.maxRetrans && t[newState] > t[TCP_TIMEOUT_RETRANS]) {
      timeout = t[TCP_TIMEOUT_RETRANS];
    } else if (index === TcpFlagClass.RST) {
      timeout = t[sCL];
    } else if (
      ((u8[p + B_TD_FLAGS] | u8[p + B_TD_FLAGS + 1]) & TcpDirFlag.DATA_UNACKNOWLEDGED) !== 0 &&
      t[newState] > t[TCP_TIMEOUT_UNACK]
    ) {
      timeout = t[TCP_TIMEOUT_UNACK];
    } else if (u32[b + W_LAST_WIN] === 0 && t[newState] > t[TCP_TIMEOUT_RETRANS]) {
      // A zero window held for long: probes only (RFC 1122 4.2.2.17).
      timeout = t[TCP_TIMEOUT_RETRANS];
    } else {
      timeout = t[newState];
    }

    if ((ef & TcpEntryFlag.SEEN_REPLY) === 0) {
      if ((seg.tcpFlags & TcpFlag.RST) !== 0) {
        // The only answer (or the opener itself) is a RST: no connection; drop the entry at once.
        this.lastDestroy = true;
        this.lastTimeout = 0;
        return TcpVerdict.ACCEPT;
      }
      if (index === TcpFlagClass.SYN && oldState === sSS) {
        // A retransmitted SYN does not renew the timeout, or port reuse by a client or a NAT in
        // front of it could keep the entry alive for ever.
        this.lastTimeout = -1;
        if (dir === 1) u8[p + B_ENTRY_FLAGS] |= TcpEntryFlag.SEEN_REPLY;
        return TcpVerdict.ACCEPT;
      }
      // Picked up mid-stream with no reply yet: do not hold it for days.
      if (newState === sES && timeout > t[TCP_TIMEOUT_UNACK]) timeout = t[TCP_TIMEOUT_UNACK];
    } else if ((ef & TcpEntryFlag.ASSURED) === 0 && (oldState === sSR || oldState === sES) && newState === sES) {
      // A valid ACK in ESTABLISHED after SYN_RECV, or a valid answer on a picked-up connection.
      u8[p + B_ENTRY_FLAGS] |= TcpEntryFlag.ASSURED;
      this.lastAssured = true;
    }
    if (dir === 1) u8[p + B_ENTRY_FLAGS] |= TcpEntryFlag.SEEN_REPLY;
    this.lastTimeout = timeout;
    return TcpVerdict.ACCEPT;
  }

  /**
   * Make the entry tolerant until resynced: after a takeover the replicated window data may be
   * behind the live connection. Window checks then never reject; out-of-window segments re-learn
   * the window data; the flag clears once both directions pass the strict check.
   */
  setTolerant(store: TcpStateStore, slot: number): void {
    const i = (slot * TCP_STRIDE_BYTES + TCP_BASE_BYTES) + B_ENTRY_FLAGS;
    store.u8[i] =
      (store.u8[i] | TcpEntryFlag.TOLERANT) & ~(TcpEntryFlag.TOLERANT_OK_ORIGINAL | TcpEntryFlag.TOLERANT_OK_REPLY);
  }

  isTolerant(store: TcpStateStore, slot: number): boolean {
    return (store.byteOf(slot, B_ENTRY_FLAGS) & TcpEntryFlag.TOLERANT) !== 0;
  }

  isAssured(store: TcpStateStore, slot: number): boolean {
    return (store.byteOf(slot, B_ENTRY_FLAGS) & TcpEntryFlag.ASSURED) !== 0;
  }

  hasSeenReply(store: TcpStateStore, slot: number): boolean {
    return (store.byteOf(slot, B_ENTRY_FLAGS) & TcpEntryFlag.SEEN_REPLY) !== 0;
  }

  /** States the table may evict first when full (the kernel's tcp_can_early_drop): closing ones. */
  canEarlyDrop(store: TcpStateStore, slot: number): boolean {
    return isClosing(store.stateOf(slot));
  }

  private resetResult(): void {
    this.lastTimeout = -1;
    this.lastTimeoutCap = false;
    this.lastReason = InvalidReason.NONE;
    this.lastDetail = TcpDetail.NONE;
    this.lastAssured = false;
    this.lastStateChanged = false;
    this.lastDestroy = false;
  }

  /**
   * Note an ignored segment, so that its answer can resync us (kernel's IGNORE case):
   * a) a SYN in ORIGINAL: client and server may be in sync but we are not; if the SYN is valid
   *    the server answers SYN/ACK and we resync from what we note here; if not, a RST or an
   *    RFC 5961 challenge ACK follows;
   * b) a SYN/ACK in REPLY; c) an ACK in REPLY after the initial SYN (half-open connection).
   */
  private noteIgnored(store: TcpStateStore, slot: number, dir: number, index: number, oldState: number, seg: TcpSegment): void {
    const u32 = store.u32;
    const u8 = store.u8;
    const b = slot * TCP_STRIDE_WORDS + TCP_BASE_WORDS;
    const p = (slot * TCP_STRIDE_BYTES + TCP_BASE_BYTES);
    u8[p + B_LAST_INDEX] = index;
    u8[p + B_LAST_DIR] = dir;
    u32[b + W_LAST_SEQ] = seg.tcpSeq >>> 0;
    u32[b + W_LAST_END] = segmentEnd(seg);
    u32[b + W_LAST_WIN] = seg.tcpWindow & 0xffff;
    if (index === TcpFlagClass.SYN && dir === 0) {
      let lf = 0;
      let ws = 0;
      if (seg.tcpWscale >= 0) {
        lf |= TcpDirFlag.WINDOW_SCALE;
        ws = seg.tcpWscale > TCP_MAX_WSCALE ? TCP_MAX_WSCALE : seg.tcpWscale;
      }
      if (seg.tcpSackPermitted) lf |= TcpDirFlag.SACK_PERM;
      // In LAST_ACK the answer may be a challenge ACK that must not count as the last ACK.
      if (oldState === sLA) lf |= TcpLastFlag.EXP_CHALLENGE_ACK;
      u8[p + B_LAST_FLAGS] = lf;
      u8[p + B_LAST_WSCALE] = ws;
    }
    // A possible challenge ACK answering the SYN: a RST with this sequence may follow.
    if (oldState === sSS && index === TcpFlagClass.ACK && dir === 1) u32[b + W_LAST_ACK] = seg.tcpAck >>> 0;
  }

  /**
   * RST checks before the window (kernel's CLOSE case, RFC 5961 3.2): a RST must carry exactly
   * the sequence the other side expects, or at least lie at or past what it acknowledged.
   */
  private checkRst(
    store: TcpStateStore,
    slot: number,
    dir: number,
    oldState: number,
    seq: number,
    ack: number,
    tolerant: boolean,
  ): number {
    // Closing: the tuple may already be reused and our data outdated; let the RST close it.
    if (isClosing(oldState)) return RST_SKIP_WINDOW;
    const u32 = store.u32;
    const u8 = store.u8;
    const b = slot * TCP_STRIDE_WORDS + TCP_BASE_WORDS;
    const p = (slot * TCP_STRIDE_BYTES + TCP_BASE_BYTES);
    const rdir = dir ^ 1;
    const lastIndex = u8[p + B_LAST_INDEX];
    const ef = u8[p + B_ENTRY_FLAGS];
    const established = oldState === sES && (ef & TcpEntryFlag.ASSURED) !== 0;
    // td_maxack is outdated when we let a SYN through just before.
    if ((u8[p + B_TD_FLAGS + rdir] & TcpDirFlag.MAXACK_SET) !== 0 && lastIndex !== TcpFlagClass.SYN) {
      const maxack = u32[b + W_TD_MAXACK + rdir];
      // SEQ 0 before ESTABLISHED: most likely the answer to a SYN we let through.
      if (seq === 0 && !established) return RST_WINDOW;
      if (seqBefore(seq, maxack)) return tolerant ? RST_TOLERATED : RST_INVALID;
      if (!established || seq === maxack) return RST_WINDOW;
      // Part of a train: "P 235946583:235946602(19) ack 42" then "R 235946602:235946602(0) ack 42".
      if (lastIndex === TcpFlagClass.ACK && u8[p + B_LAST_DIR] === dir && seq === u32[b + W_LAST_END]) {
        return RST_WINDOW;
      }
      // In window but not exact: keep the state, so that the endpoint's challenge ACK
      // (RFC 5961 3.2) and the peer's exact RST can follow.
      return RST_KEEP_STATE | this.rstAnswersIgnored(store, slot, oldState, ack, seq, ef);
    }
    return this.rstAnswersIgnored(store, slot, oldState, ack, seq, ef);
  }

  /** RST answering a SYN or ACK we let through (ignored) earlier: close without the window check. */
  private rstAnswersIgnored(store: TcpStateStore, slot: number, oldState: number, ack: number, seq: number, ef: number): number {
    const u32 = store.u32;
    const u8 = store.u8;
    const b = slot * TCP_STRIDE_WORDS + TCP_BASE_WORDS;
    const p = (slot * TCP_STRIDE_BYTES + TCP_BASE_BYTES);
    const lastIndex = u8[p + B_LAST_INDEX];
    if (
      (((ef & TcpEntryFlag.SEEN_REPLY) !== 0 && lastIndex === TcpFlagClass.SYN) ||
        ((ef & TcpEntryFlag.ASSURED) === 0 && lastIndex === TcpFlagClass.ACK)) &&
      ack === u32[b + W_LAST_END]
    ) {
      return RST_SKIP_WINDOW;
    }
    // Reset answering a challenge ACK we let through in SYN_SENT.
    if (oldState === sSS && lastIndex === TcpFlagClass.ACK && u8[p + B_LAST_DIR] === 1 && seq === u32[b + W_LAST_ACK]) {
      return RST_SKIP_WINDOW;
    }
    return RST_WINDOW;
  }

  /**
   * An invalid FIN or RST answering the other side's FIN or RST on an assured entry: both ends
   * have given up but we disagree on the windows; shorten the timeout to the UNACK cap so the dead
   * entry goes soon (kernel's nf_tcp_handle_invalid).
   */
  private handleInvalid(store: TcpStateStore, slot: number, dir: number, index: number): void {
    const u8 = store.u8;
    const p = (slot * TCP_STRIDE_BYTES + TCP_BASE_BYTES);
    if ((u8[p + B_ENTRY_FLAGS] & TcpEntryFlag.ASSURED) === 0) return;
    if (index !== TcpFlagClass.RST && index !== TcpFlagClass.FIN) return;
    const lastIndex = u8[p + B_LAST_INDEX];
    if (u8[p + B_LAST_DIR] !== dir && (lastIndex === TcpFlagClass.FIN || lastIndex === TcpFlagClass.RST)) {
      this.lastTimeout = this.timeouts[TCP_TIMEOUT_UNACK];
      this.lastTimeoutCap = true;
    } else {
      u8[p + B_LAST_INDEX] = index;
      u8[p + B_LAST_DIR] = dir;
    }
  }
}

/** Outcomes of TcpTracker.checkRst: WINDOW (check as usual), or bits, or INVALID / TOLERATED. */
const RST_WINDOW = 0;
/** Close without the window check. */
const RST_SKIP_WINDOW = 1;
/** Accept (when in window) but keep the old state. */
const RST_KEEP_STATE = 2;
const RST_INVALID = 4;
const RST_TOLERATED = 8;

function isClosing(state: number): boolean {
  return state >= TcpState.FIN_WAIT && state <= sCL;
}

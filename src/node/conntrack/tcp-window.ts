/**
 * TCP window tracking after Guido van Rooij's "Real Stateful TCP Packet Filtering in IP Filter",
 * with the bounds as Linux's tcp_in_window (net/netfilter/nf_conntrack_proto_tcp.c) has them:
 * a segment must intersect the receiver's window, and its ACK must lie between what the
 * receiver has sent and a window behind that.
 *
 *   td_end    = max(seq + len) seen from the sender
 *   td_maxend = max(ack + max(win, 1)) seen from the receiver: the right edge the sender may fill
 *   td_maxwin = max(max(win, 1)) seen from the sender, widened when data passes td_maxend
 *
 *   I.   upper bound for data:  seq <= sender.td_maxend
 *   II.  lower bound for data:  seq + len >= sender.td_end - receiver.td_maxwin
 *   III. upper bound for ack:   ack <= receiver.td_end
 *   IV.  lower bound for ack:   ack >= receiver.td_end - MAXACKWINDOW(sender)
 *
 * SACK blocks would raise the ack used in III/IV (RFC 2018); the parsed fields do not carry them,
 * so the plain ACK is used (the bound is then only stricter when a receiver SACKs data past its ACK,
 * which III already allows since SACKed data was seen).
 *
 * Sequence numbers are 32-bit and wrap (RFC 793 3.3): every comparison goes through before/after,
 * every sum through >>> 0.
 *
 * Store access (see tcp-store.ts): the entry is one 64-byte record. Per segment the record's word
 * base b = slot << 4 and byte base p = slot * 64 are computed once; a direction's fields are then
 * at u32[s + W_TD_*] / u8[ps + B_TD_*] with s = b + dir, ps = p + dir (sender) and r, pr likewise
 * for the receiver (dir ^ 1).
 */
import { TcpFlag, type PacketFields } from '../packet/fields.js';
import { TcpState } from './state.js';
import { TcpFlagClass } from './tcp-states.js';
import * as layout from './tcp-store.js';
import { TcpDirFlag, TcpEntryFlag, type TcpStateStore } from './tcp-store.js';

// Module-local copies of the record layout: V8 (Node 20) loads an imported binding through its
// module cell with a TDZ check at every use, even in optimised code; a module-local const is free
// (see the same note in tcp.ts).
const {
  B_ENTRY_FLAGS,
  B_LAST_DIR,
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

/** The segment fields the tracker reads. Plain objects do in tests. */
export type TcpSegment = Pick<
  PacketFields,
  'tcpFlags' | 'tcpSeq' | 'tcpAck' | 'tcpWindow' | 'tcpWscale' | 'tcpSackPermitted' | 'payloadLength'
>;

/** True when sequence number a comes before b, modulo 2^32 (RFC 793 3.3; kernel's before()). */
export function seqBefore(a: number, b: number): boolean {
  return ((a - b) | 0) < 0;
}

/** True when a comes after b, modulo 2^32 (kernel's after()). */
export function seqAfter(a: number, b: number): boolean {
  return ((b - a) | 0) < 0;
}

/** Sequence number just past the segment: seq + data + 1 for SYN + 1 for FIN (kernel's segment_seq_plus_len). */
export function segmentEnd(seg: TcpSegment): number {
  const f = seg.tcpFlags;
  return (seg.tcpSeq + seg.payloadLength + ((f & TcpFlag.SYN) !== 0 ? 1 : 0) + ((f & TcpFlag.FIN) !== 0 ? 1 : 0)) >>> 0;
}

/** Floor of the ack lower bound (IV): the kernel's MAXACKWINCONST, "what about big packets?". */
export const MAX_ACK_WINDOW_CONST = 66000;

/** Why a segment was rejected, ignored, or let through despite the window; one counter each. */
export const TcpDetail = {
  NONE: 0,
  /** The state table has no transition for this segment (TcpTransition.INVALID). */
  STATE: 1,
  /** I failed: data beyond the receiver's window. */
  SEQ_OVER_UPPER: 2,
  /** III failed: ACK for data the receiver never sent. */
  ACK_OVER_UPPER: 3,
  /** II failed: data already acknowledged, retransmitted (ignored). */
  SEQ_UNDER_LOWER: 4,
  /** IV failed: overly delayed ACK (ignored). */
  ACK_UNDER_LOWER: 5,
  /** I failed by less than a window: a TCP that overruns the window (ignored, td_end still learnt). */
  OVERSHOOT: 6,
  /** RST whose sequence is below what the other side acknowledged: blind reset (RFC 5961 3.2). */
  RST_SEQ: 7,
  /** The state table says IGNORE (e.g. SYN on an established flow, retransmitted SYN/ACK). */
  IGNORED_STATE: 8,
  /** An ACK in LAST_ACK answering an ignored SYN: an RFC 5961 challenge ACK, not the last ACK. */
  CHALLENGE_ACK: 9,
  /** Tolerant mode: out of window, window data re-learnt from the segment and the segment accepted. */
  TOLERANT_RELEARN: 10,
  /** Tolerant mode: a RST out of window, let through without closing the entry (the endpoint decides). */
  TOLERANT_RST: 11,
  /** Out of window but accepted: liberal mode or a picked-up connection (BE_LIBERAL). */
  LIBERAL: 12,
  /** A SYN re-opening a closed entry: the caller replaces the entry. */
  RESTART: 13,
} as const;
export type TcpDetailCode = (typeof TcpDetail)[keyof typeof TcpDetail];
export const tcpDetailNames = [
  'none',
  'state',
  'seq_over_upper',
  'ack_over_upper',
  'seq_under_lower',
  'ack_under_lower',
  'overshoot',
  'rst_seq',
  'ignored_state',
  'challenge_ack',
  'tolerant_relearn',
  'tolerant_rst',
  'liberal',
  'restart',
] as const;

/** Outcome of the window check, as the kernel's enum nf_ct_tcp_action. */
export const WindowAction = {
  ACCEPT: 0,
  IGNORE: 1,
  INVALID: 2,
} as const;

const OK = TcpDetail.NONE;

/**
 * Take a SYN's options into a direction's data (kernel's tcp_options): window scale (capped at
 * 14, RFC 7323 2.3) and SACK-permitted. Other flags are cleared, BE_LIBERAL kept.
 */
export function learnSynOptions(store: TcpStateStore, slot: number, dir: number, seg: TcpSegment): void {
  const u8 = store.u8;
  const pd = (slot * TCP_STRIDE_BYTES + TCP_BASE_BYTES) + dir;
  let flags = u8[pd + B_TD_FLAGS] & TcpDirFlag.BE_LIBERAL;
  let scale = 0;
  if (seg.tcpSackPermitted) flags |= TcpDirFlag.SACK_PERM;
  if (seg.tcpWscale >= 0) {
    scale = seg.tcpWscale > TCP_MAX_WSCALE ? TCP_MAX_WSCALE : seg.tcpWscale;
    flags |= TcpDirFlag.WINDOW_SCALE;
  }
  u8[pd + B_TD_SCALE] = scale;
  u8[pd + B_TD_FLAGS] = flags;
}

/**
 * Window checker. One per tracker; the result's detail is left in `detail`, so nothing is
 * allocated per segment.
 */
export class TcpWindowChecker {
  /** TcpDetail of the last check (NONE when it passed cleanly). */
  detail: number = OK;

  /**
   * Check a segment against the windows and, when it passes, learn from it (kernel's
   * tcp_in_window). Returns a WindowAction. The entry's state must still be the old state.
   */
  check(store: TcpStateStore, slot: number, dir: number, index: number, seg: TcpSegment, liberal: boolean): number {
    const u32 = store.u32;
    const u8 = store.u8;
    const b = slot * TCP_STRIDE_WORDS + TCP_BASE_WORDS;
    const p = (slot * TCP_STRIDE_BYTES + TCP_BASE_BYTES);
    const s = b + dir;
    const r = b + (dir ^ 1);
    const ps = p + dir;
    const pr = p + (dir ^ 1);
    const flags = seg.tcpFlags;
    const isSyn = (flags & TcpFlag.SYN) !== 0;
    const isAck = (flags & TcpFlag.ACK) !== 0;
    const isRst = (flags & TcpFlag.RST) !== 0;
    const winRaw = seg.tcpWindow & 0xffff;
    const state = u8[p + B_STATE];
    let seq = seg.tcpSeq >>> 0;
    let ack = seg.tcpAck >>> 0;
    let end = segmentEnd(seg);
    this.detail = OK;

    if (u32[s + W_TD_MAXWIN] === 0) {
      if (isSyn) {
        // SYN/ACK answering the SYN, or the reply's SYN in a simultaneous open.
        this.initSender(store, slot, s, ps, pr, seg, end, winRaw, dir);
        if (!isAck) return WindowAction.ACCEPT; // simultaneous open: nothing to check against yet
      } else {
        // Mid-stream: the history is lost to us, so learn what we can from this segment.
        this.pickupSender(u32, s, r, u8[ps + B_TD_SCALE], end, winRaw, ack);
      }
    } else if (isSyn && seqAfter(end, u32[s + W_TD_END]) && (state === TcpState.SYN_SENT || state === TcpState.SYN_RECV)) {
      // RFC 793 3.4: a restarted TCP "need not wait at all; it must only be sure to use sequence
      // numbers larger than those recently used": re-learn this direction from the new SYN(/ACK).
      this.initSender(store, slot, s, ps, pr, seg, end, winRaw, dir);
      if (dir === 1 && !isAck) return WindowAction.ACCEPT;
    }

    if (!isAck) {
      // No ACK: pretend it acknowledged everything (nothing to check).
      ack = u32[r + W_TD_END];
    } else if (isRst && ack === 0) {
      // Broken stacks set ACK on a RST with a zero ack value.
      ack = u32[r + W_TD_END];
    }
    if (isRst && seq === 0 && state === TcpState.SYN_SENT) {
      // RST answering a SYN (RFC 793 3.4, reset generation for a SYN_SENT peer).
      seq = u32[s + W_TD_END];
      end = seq;
    }

    let res = this.bounds(u32, s, r, seq, end, ack);
    const tolerant = (u8[p + B_ENTRY_FLAGS] & TcpEntryFlag.TOLERANT) !== 0;
    if (res !== OK) {
      if (tolerant) {
        if (isRst) {
          // Stale data cannot tell a late reset from a blind one: pass it to the endpoint, whose
          // own check (RFC 5961 3.2) decides, but keep the entry.
          this.detail = TcpDetail.TOLERANT_RST;
          return WindowAction.IGNORE;
        }
        this.relearn(u32, s, r, end, isSyn ? winRaw : (winRaw << u8[ps + B_TD_SCALE]) >>> 0, ack);
        u8[p + B_ENTRY_FLAGS] &= ~(TcpEntryFlag.TOLERANT_OK_ORIGINAL | TcpEntryFlag.TOLERANT_OK_REPLY);
        this.detail = TcpDetail.TOLERANT_RELEARN;
        res = this.bounds(u32, s, r, seq, end, ack);
        if (res !== OK) return WindowAction.ACCEPT; // never reject while tolerant
      } else {
        if (res === TcpDetail.OVERSHOOT) {
          // Work around TCPs that send more than the window allows: learn td_end anyway, so
          // that the receiver's ACK of these bytes passes III later.
          u32[s + W_TD_END] = end;
          u8[ps + B_TD_FLAGS] |= TcpDirFlag.DATA_UNACKNOWLEDGED;
        }
        if (liberal || (u8[ps + B_TD_FLAGS] & TcpDirFlag.BE_LIBERAL) !== 0) {
          this.detail = TcpDetail.LIBERAL;
          return WindowAction.ACCEPT; // as the kernel: accepted, but nothing learnt
        }
        this.detail = res;
        return res === TcpDetail.SEQ_OVER_UPPER || res === TcpDetail.ACK_OVER_UPPER
          ? WindowAction.INVALID
          : WindowAction.IGNORE;
      }
    } else if (tolerant) {
      this.confirmTolerant(u8, p, dir);
    }

    this.learn(u32, u8, b, p, s, r, ps, pr, dir, index, isSyn, isAck, seq, end, ack, winRaw);
    return WindowAction.ACCEPT;
  }

  /** The four bounds; returns OK or the TcpDetail of the first that fails. Pure. */
  private bounds(u32: Uint32Array, s: number, r: number, seq: number, end: number, ack: number): number {
    const sEnd = u32[s + W_TD_END];
    const sMaxend = u32[s + W_TD_MAXEND];
    const sMaxwin = u32[s + W_TD_MAXWIN];
    const rEnd = u32[r + W_TD_END];
    const rMaxwin = u32[r + W_TD_MAXWIN];
    const maxAckWin = sMaxwin > MAX_ACK_WINDOW_CONST ? sMaxwin : MAX_ACK_WINDOW_CONST;
    if (!seqBefore(seq, (sMaxend + 1) >>> 0)) {
      const overshot = (end - sMaxend + 1) >>> 0;
      if (
        rMaxwin !== 0 &&
        seqAfter(end, (sEnd - rMaxwin - 1) >>> 0) &&
        seqAfter(ack, (rEnd - maxAckWin - 1) >>> 0) &&
        overshot <= rMaxwin &&
        seqBefore(ack, (rEnd + 1) >>> 0)
      ) {
        return TcpDetail.OVERSHOOT;
      }
      return TcpDetail.SEQ_OVER_UPPER;
    }
    if (!seqBefore(ack, (rEnd + 1) >>> 0)) return TcpDetail.ACK_OVER_UPPER;
    if (rMaxwin !== 0 && !seqAfter(end, (sEnd - rMaxwin - 1) >>> 0)) return TcpDetail.SEQ_UNDER_LOWER;
    if (!seqAfter(ack, (rEnd - maxAckWin - 1) >>> 0)) return TcpDetail.ACK_UNDER_LOWER;
    return OK;
  }

  /** Update both directions' data from an accepted segment (second half of tcp_in_window). */
  private learn(
    u32: Uint32Array,
    u8: Uint8Array,
    b: number,
    p: number,
    s: number,
    r: number,
    ps: number,
    pr: number,
    dir: number,
    index: number,
    isSyn: boolean,
    isAck: boolean,
    seq: number,
    end: number,
    ack: number,
    winRaw: number,
  ): void {
    // RFC 7323 2.2: the window field of a SYN is never scaled.
    const win = isSyn ? winRaw : (winRaw << u8[ps + B_TD_SCALE]) >>> 0;
    if (u32[s + W_TD_MAXWIN] < win) u32[s + W_TD_MAXWIN] = win;
    if (seqAfter(end, u32[s + W_TD_END])) {
      u32[s + W_TD_END] = end;
      u8[ps + B_TD_FLAGS] |= TcpDirFlag.DATA_UNACKNOWLEDGED;
    }
    if (isAck) {
      if ((u8[ps + B_TD_FLAGS] & TcpDirFlag.MAXACK_SET) === 0) {
        u32[s + W_TD_MAXACK] = ack;
        u8[ps + B_TD_FLAGS] |= TcpDirFlag.MAXACK_SET;
      } else if (seqAfter(ack, u32[s + W_TD_MAXACK])) {
        u32[s + W_TD_MAXACK] = ack;
      }
    }
    // The receiver accepted bytes past the edge we knew: its window was larger than we thought.
    if (u32[r + W_TD_MAXWIN] !== 0 && seqAfter(end, u32[s + W_TD_MAXEND])) {
      u32[r + W_TD_MAXWIN] = (u32[r + W_TD_MAXWIN] + end - u32[s + W_TD_MAXEND]) >>> 0;
    }
    const edge = (ack + win) >>> 0;
    if (seqAfter(edge, (u32[r + W_TD_MAXEND] - 1) >>> 0)) {
      // A zero window still admits a one-byte probe (RFC 1122 4.2.2.17).
      u32[r + W_TD_MAXEND] = win === 0 ? (edge + 1) >>> 0 : edge;
    }
    if (ack === u32[r + W_TD_END]) u8[pr + B_TD_FLAGS] &= ~TcpDirFlag.DATA_UNACKNOWLEDGED;

    // Retransmissions: the same ACK-class segment again and again means the peer is gone.
    if (index === TcpFlagClass.ACK) {
      if (
        u8[p + B_LAST_DIR] === dir &&
        u32[b + W_LAST_SEQ] === seq &&
        u32[b + W_LAST_ACK] === ack &&
        u32[b + W_LAST_END] === end &&
        u32[b + W_LAST_WIN] === winRaw
      ) {
        if (u8[p + B_RETRANS] < 255) u8[p + B_RETRANS]++;
      } else {
        u8[p + B_LAST_DIR] = dir;
        u32[b + W_LAST_SEQ] = seq;
        u32[b + W_LAST_ACK] = ack;
        u32[b + W_LAST_END] = end;
        u32[b + W_LAST_WIN] = winRaw;
        u8[p + B_RETRANS] = 0;
      }
    }
  }

  /** First SYN(/ACK) of a direction (kernel's tcp_init_sender). */
  private initSender(
    store: TcpStateStore,
    slot: number,
    s: number,
    ps: number,
    pr: number,
    seg: TcpSegment,
    end: number,
    win: number,
    dir: number,
  ): void {
    const u32 = store.u32;
    const u8 = store.u8;
    u32[s + W_TD_END] = end;
    u32[s + W_TD_MAXEND] = end;
    u32[s + W_TD_MAXWIN] = win === 0 ? 1 : win;
    learnSynOptions(store, slot, dir, seg);
    // RFC 7323 2.2: scaling applies only when both SYNs carried the option.
    if (
      dir === 1 &&
      !((u8[ps + B_TD_FLAGS] & TcpDirFlag.WINDOW_SCALE) !== 0 && (u8[pr + B_TD_FLAGS] & TcpDirFlag.WINDOW_SCALE) !== 0)
    ) {
      u8[ps + B_TD_SCALE] = 0;
      u8[pr + B_TD_SCALE] = 0;
    }
  }

  /** First segment of a direction seen mid-stream (loose pickup, kernel's "history is lost" branch). */
  private pickupSender(u32: Uint32Array, s: number, r: number, scale: number, end: number, winRaw: number, ack: number): void {
    u32[s + W_TD_END] = end;
    const swin = (winRaw << scale) >>> 0;
    const maxwin = swin === 0 ? 1 : swin;
    u32[s + W_TD_MAXWIN] = maxwin;
    u32[s + W_TD_MAXEND] = (end + maxwin) >>> 0;
    if (u32[r + W_TD_MAXWIN] === 0) {
      // Nothing seen from the other side yet: make III and IV pass until it speaks.
      u32[r + W_TD_END] = ack;
      u32[r + W_TD_MAXEND] = ack;
    } else if (ack === ((u32[r + W_TD_END] + 1) >>> 0)) {
      // Likely the answer to a keepalive (one byte below td_end): needed for III.
      u32[r + W_TD_END] = ack;
    }
  }

  /**
   * Tolerant mode: the segment failed the bounds against data that may be stale (replicated before
   * a takeover). Re-learn the sender as on a pickup, and move the receiver's td_end to the
   * segment's ACK when the ACK lies outside what we believed the receiver had sent.
   */
  private relearn(u32: Uint32Array, s: number, r: number, end: number, swin: number, ack: number): void {
    const maxwin = swin === 0 ? 1 : swin;
    u32[s + W_TD_END] = end;
    u32[s + W_TD_MAXWIN] = maxwin;
    u32[s + W_TD_MAXEND] = (end + maxwin) >>> 0;
    const maxAckWin = maxwin > MAX_ACK_WINDOW_CONST ? maxwin : MAX_ACK_WINDOW_CONST;
    const rEnd = u32[r + W_TD_END];
    const rMaxwin = u32[r + W_TD_MAXWIN];
    if (rMaxwin === 0 || seqAfter(ack, rEnd) || !seqAfter(ack, (rEnd - maxAckWin - 1) >>> 0)) {
      u32[r + W_TD_END] = ack;
      if (rMaxwin === 0 || seqAfter(ack, u32[r + W_TD_MAXEND])) u32[r + W_TD_MAXEND] = ack;
    }
  }

  /** Tolerant mode: this direction passed the strict bounds; once both have, the entry is resynced. */
  private confirmTolerant(u8: Uint8Array, p: number, dir: number): void {
    const bit = dir === 0 ? TcpEntryFlag.TOLERANT_OK_ORIGINAL : TcpEntryFlag.TOLERANT_OK_REPLY;
    let ef = u8[p + B_ENTRY_FLAGS] | bit;
    const both = TcpEntryFlag.TOLERANT_OK_ORIGINAL | TcpEntryFlag.TOLERANT_OK_REPLY;
    if ((ef & both) === both) ef &= ~(TcpEntryFlag.TOLERANT | both);
    u8[p + B_ENTRY_FLAGS] = ef;
  }
}

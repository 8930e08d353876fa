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
 */
import { TcpFlag, type PacketFields } from '../packet/fields.js';
import { TcpState } from './state.js';
import { TcpFlagClass } from './tcp-states.js';
import { TCP_MAX_WSCALE, TcpDirFlag, TcpEntryFlag, type TcpStateStore } from './tcp-store.js';

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
export function learnSynOptions(store: TcpStateStore, d: number, seg: TcpSegment): void {
  store.tdScale[d] = 0;
  store.tdFlags[d] &= TcpDirFlag.BE_LIBERAL;
  if (seg.tcpSackPermitted) store.tdFlags[d] |= TcpDirFlag.SACK_PERM;
  if (seg.tcpWscale >= 0) {
    store.tdScale[d] = seg.tcpWscale > TCP_MAX_WSCALE ? TCP_MAX_WSCALE : seg.tcpWscale;
    store.tdFlags[d] |= TcpDirFlag.WINDOW_SCALE;
  }
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
    const s = slot * 2 + dir;
    const r = slot * 2 + (dir ^ 1);
    const flags = seg.tcpFlags;
    const isSyn = (flags & TcpFlag.SYN) !== 0;
    const isAck = (flags & TcpFlag.ACK) !== 0;
    const isRst = (flags & TcpFlag.RST) !== 0;
    const winRaw = seg.tcpWindow & 0xffff;
    const state = store.state[slot];
    let seq = seg.tcpSeq >>> 0;
    let ack = seg.tcpAck >>> 0;
    let end = segmentEnd(seg);
    this.detail = OK;

    if (store.tdMaxwin[s] === 0) {
      if (isSyn) {
        // SYN/ACK answering the SYN, or the reply's SYN in a simultaneous open.
        this.initSender(store, s, r, seg, end, winRaw, dir);
        if (!isAck) return WindowAction.ACCEPT; // simultaneous open: nothing to check against yet
      } else {
        // Mid-stream: the history is lost to us, so learn what we can from this segment.
        this.pickupSender(store, s, r, end, winRaw, ack);
      }
    } else if (isSyn && seqAfter(end, store.tdEnd[s]) && (state === TcpState.SYN_SENT || state === TcpState.SYN_RECV)) {
      // RFC 793 3.4: a restarted TCP "need not wait at all; it must only be sure to use sequence
      // numbers larger than those recently used": re-learn this direction from the new SYN(/ACK).
      this.initSender(store, s, r, seg, end, winRaw, dir);
      if (dir === 1 && !isAck) return WindowAction.ACCEPT;
    }

    if (!isAck) {
      // No ACK: pretend it acknowledged everything (nothing to check).
      ack = store.tdEnd[r];
    } else if (isRst && ack === 0) {
      // Broken stacks set ACK on a RST with a zero ack value.
      ack = store.tdEnd[r];
    }
    if (isRst && seq === 0 && state === TcpState.SYN_SENT) {
      // RST answering a SYN (RFC 793 3.4, reset generation for a SYN_SENT peer).
      seq = store.tdEnd[s];
      end = seq;
    }

    let res = this.bounds(store, s, r, seq, end, ack);
    const tolerant = (store.entryFlags[slot] & TcpEntryFlag.TOLERANT) !== 0;
    if (res !== OK) {
      if (tolerant) {
        if (isRst) {
          // Stale data cannot tell a late reset from a blind one: pass it to the endpoint, whose
          // own check (RFC 5961 3.2) decides, but keep the entry.
          this.detail = TcpDetail.TOLERANT_RST;
          return WindowAction.IGNORE;
        }
        this.relearn(store, s, r, end, isSyn ? winRaw : (winRaw << store.tdScale[s]) >>> 0, ack);
        store.entryFlags[slot] &= ~(TcpEntryFlag.TOLERANT_OK_ORIGINAL | TcpEntryFlag.TOLERANT_OK_REPLY);
        this.detail = TcpDetail.TOLERANT_RELEARN;
        res = this.bounds(store, s, r, seq, end, ack);
        if (res !== OK) return WindowAction.ACCEPT; // never reject while tolerant
      } else {
        if (res === TcpDetail.OVERSHOOT) {
          // Work around TCPs that send more than the window allows: learn td_end anyway, so
          // that the receiver's ACK of these bytes passes III later.
          store.tdEnd[s] = end;
          store.tdFlags[s] |= TcpDirFlag.DATA_UNACKNOWLEDGED;
        }
        if (liberal || (store.tdFlags[s] & TcpDirFlag.BE_LIBERAL) !== 0) {
          this.detail = TcpDetail.LIBERAL;
          return WindowAction.ACCEPT; // as the kernel: accepted, but nothing learnt
        }
        this.detail = res;
        return res === TcpDetail.SEQ_OVER_UPPER || res === TcpDetail.ACK_OVER_UPPER
          ? WindowAction.INVALID
          : WindowAction.IGNORE;
      }
    } else if (tolerant) {
      this.confirmTolerant(store, slot, dir);
    }

    this.learn(store, slot, s, r, dir, index, isSyn, isAck, seq, end, ack, winRaw);
    return WindowAction.ACCEPT;
  }

  /** The four bounds; returns OK or the TcpDetail of the first that fails. Pure. */
  private bounds(store: TcpStateStore, s: number, r: number, seq: number, end: number, ack: number): number {
    const sEnd = store.tdEnd[s];
    const sMaxend = store.tdMaxend[s];
    const rEnd = store.tdEnd[r];
    const rMaxwin = store.tdMaxwin[r];
    const maxAckWin = store.tdMaxwin[s] > MAX_ACK_WINDOW_CONST ? store.tdMaxwin[s] : MAX_ACK_WINDOW_CONST;
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
    store: TcpStateStore,
    slot: number,
    s: number,
    r: number,
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
    const win = isSyn ? winRaw : (winRaw << store.tdScale[s]) >>> 0;
    if (store.tdMaxwin[s] < win) store.tdMaxwin[s] = win;
    if (seqAfter(end, store.tdEnd[s])) {
      store.tdEnd[s] = end;
      store.tdFlags[s] |= TcpDirFlag.DATA_UNACKNOWLEDGED;
    }
    if (isAck) {
      if ((store.tdFlags[s] & TcpDirFlag.MAXACK_SET) === 0) {
        store.tdMaxack[s] = ack;
        store.tdFlags[s] |= TcpDirFlag.MAXACK_SET;
      } else if (seqAfter(ack, store.tdMaxack[s])) {
        store.tdMaxack[s] = ack;
      }
    }
    // The receiver accepted bytes past the edge we knew: its window was larger than we thought.
    if (store.tdMaxwin[r] !== 0 && seqAfter(end, store.tdMaxend[s])) {
      store.tdMaxwin[r] = (store.tdMaxwin[r] + end - store.tdMaxend[s]) >>> 0;
    }
    const edge = (ack + win) >>> 0;
    if (seqAfter(edge, (store.tdMaxend[r] - 1) >>> 0)) {
      // A zero window still admits a one-byte probe (RFC 1122 4.2.2.17).
      store.tdMaxend[r] = win === 0 ? (edge + 1) >>> 0 : edge;
    }
    if (ack === store.tdEnd[r]) store.tdFlags[r] &= ~TcpDirFlag.DATA_UNACKNOWLEDGED;

    // Retransmissions: the same ACK-class segment again and again means the peer is gone.
    if (index === TcpFlagClass.ACK) {
      if (
        store.lastDir[slot] === dir &&
        store.lastSeq[slot] === seq &&
        store.lastAck[slot] === ack &&
        store.lastEnd[slot] === end &&
        store.lastWin[slot] === winRaw
      ) {
        if (store.retrans[slot] < 255) store.retrans[slot]++;
      } else {
        store.lastDir[slot] = dir;
        store.lastSeq[slot] = seq;
        store.lastAck[slot] = ack;
        store.lastEnd[slot] = end;
        store.lastWin[slot] = winRaw;
        store.retrans[slot] = 0;
      }
    }
  }

  /** First SYN(/ACK) of a direction (kernel's tcp_init_sender). */
  private initSender(store: TcpStateStore, s: number, r: number, seg: TcpSegment, end: number, win: number, dir: number): void {
    store.tdEnd[s] = end;
    store.tdMaxend[s] = end;
    store.tdMaxwin[s] = win === 0 ? 1 : win;
    learnSynOptions(store, s, seg);
    // RFC 7323 2.2: scaling applies only when both SYNs carried the option.
    if (
      dir === 1 &&
      !((store.tdFlags[s] & TcpDirFlag.WINDOW_SCALE) !== 0 && (store.tdFlags[r] & TcpDirFlag.WINDOW_SCALE) !== 0)
    ) {
      store.tdScale[s] = 0;
      store.tdScale[r] = 0;
    }
  }

  /** First segment of a direction seen mid-stream (loose pickup, kernel's "history is lost" branch). */
  private pickupSender(store: TcpStateStore, s: number, r: number, end: number, winRaw: number, ack: number): void {
    store.tdEnd[s] = end;
    const swin = (winRaw << store.tdScale[s]) >>> 0;
    store.tdMaxwin[s] = swin === 0 ? 1 : swin;
    store.tdMaxend[s] = (end + store.tdMaxwin[s]) >>> 0;
    if (store.tdMaxwin[r] === 0) {
      // Nothing seen from the other side yet: make III and IV pass until it speaks.
      store.tdEnd[r] = ack;
      store.tdMaxend[r] = ack;
    } else if (ack === ((store.tdEnd[r] + 1) >>> 0)) {
      // Likely the answer to a keepalive (one byte below td_end): needed for III.
      store.tdEnd[r] = ack;
    }
  }

  /**
   * Tolerant mode: the segment failed the bounds against data that may be stale (replicated before
   * a takeover). Re-learn the sender as on a pickup, and move the receiver's td_end to the
   * segment's ACK when the ACK lies outside what we believed the receiver had sent.
   */
  private relearn(store: TcpStateStore, s: number, r: number, end: number, swin: number, ack: number): void {
    store.tdEnd[s] = end;
    store.tdMaxwin[s] = swin === 0 ? 1 : swin;
    store.tdMaxend[s] = (end + store.tdMaxwin[s]) >>> 0;
    const maxAckWin = store.tdMaxwin[s] > MAX_ACK_WINDOW_CONST ? store.tdMaxwin[s] : MAX_ACK_WINDOW_CONST;
    const rEnd = store.tdEnd[r];
    if (store.tdMaxwin[r] === 0 || seqAfter(ack, rEnd) || !seqAfter(ack, (rEnd - maxAckWin - 1) >>> 0)) {
      store.tdEnd[r] = ack;
      if (store.tdMaxwin[r] === 0 || seqAfter(ack, store.tdMaxend[r])) store.tdMaxend[r] = ack;
    }
  }

  /** Tolerant mode: this direction passed the strict bounds; once both have, the entry is resynced. */
  private confirmTolerant(store: TcpStateStore, slot: number, dir: number): void {
    const bit = dir === 0 ? TcpEntryFlag.TOLERANT_OK_ORIGINAL : TcpEntryFlag.TOLERANT_OK_REPLY;
    let ef = store.entryFlags[slot] | bit;
    const both = TcpEntryFlag.TOLERANT_OK_ORIGINAL | TcpEntryFlag.TOLERANT_OK_REPLY;
    if ((ef & both) === both) ef &= ~(TcpEntryFlag.TOLERANT | both);
    store.entryFlags[slot] = ef;
  }
}

/**
 * The TCP conntrack state machine as a table, after Linux's tcp_conntracks[][][] in
 * net/netfilter/nf_conntrack_proto_tcp.c (kernel 6.x): indexed by direction, by the class the
 * segment's flags reduce to, and by the old state, giving the new state or a marker.
 *
 * The table only says what a segment *would* do; the tracker (tcp.ts) still checks the segment
 * against the tracked windows (tcp-window.ts) before it commits the transition, and handles the
 * IGNORE and SYN_SENT-from-TIME_WAIT cells specially, as the kernel's nf_conntrack_tcp_packet does.
 *
 * We are the man in the middle: every segment passes us but may be lost after us, so the table
 * guesses the state of the current sender. Cells marked INVALID are segments we regard as truly
 * invalid; cells marked IGNORE may be valid or not, and the receiver will answer them with a RST or
 * a SYN/ACK that tells us which (kernel comment above tcp_conntracks).
 */
import { TcpFlag } from '../packet/fields.js';
import { TcpState } from './state.js';

/** Flag classes, numbered like the kernel's enum tcp_bit_set. */
export const TcpFlagClass = {
  SYN: 0,
  SYNACK: 1,
  FIN: 2,
  ACK: 3,
  RST: 4,
  NONE: 5,
} as const;
export type TcpFlagClassCode = (typeof TcpFlagClass)[keyof typeof TcpFlagClass];
export const tcpFlagClassNames = ['SYN', 'SYNACK', 'FIN', 'ACK', 'RST', 'NONE'] as const;
/** Number of flag classes (rows per direction). */
export const TCP_FLAG_CLASSES = 6;
/** Number of TCP states (columns): NONE..SYN_SENT2. */
export const TCP_STATES = 10;

/**
 * Markers beside the TcpState codes in the table. Numbered like the kernel's TCP_CONNTRACK_MAX
 * (used there as sIV) and TCP_CONNTRACK_IGNORE, so they never collide with a state code.
 */
export const TcpTransition = {
  /** The segment is invalid in this state: the packet is INVALID, the entry is unchanged. */
  INVALID: 10,
  /** The segment may or may not be valid: let it through, change nothing, note it. */
  IGNORE: 11,
} as const;
/** A table cell: a TcpState code or a TcpTransition marker. */
export type TcpTransitionCode =
  | (typeof TcpState)[keyof typeof TcpState]
  | (typeof TcpTransition)[keyof typeof TcpTransition];

/**
 * Reduce TCP flags to a class, in the kernel's priority order (get_conntrack_index): RST wins,
 * then SYN (with or without ACK), then FIN, then ACK; anything else (no flags, only PSH/URG...)
 * is NONE.
 */
export function tcpFlagClass(flags: number): TcpFlagClassCode {
  if ((flags & TcpFlag.RST) !== 0) return TcpFlagClass.RST;
  if ((flags & TcpFlag.SYN) !== 0) return (flags & TcpFlag.ACK) !== 0 ? TcpFlagClass.SYNACK : TcpFlagClass.SYN;
  if ((flags & TcpFlag.FIN) !== 0) return TcpFlagClass.FIN;
  if ((flags & TcpFlag.ACK) !== 0) return TcpFlagClass.ACK;
  return TcpFlagClass.NONE;
}

/**
 * Valid flag combinations, ignoring PSH, ECE and CWR, as the kernel's tcp_valid_flags[] (tcp_error):
 * SYN, SYN|URG, SYN|ACK, RST, RST|ACK, FIN|ACK, FIN|ACK|URG, ACK, ACK|URG. Everything else
 * (SYN|FIN, no flags, FIN without ACK, ...) is a scan or a broken stack: InvalidReason.BAD_TCP_FLAGS.
 */
const validFlags = new Uint8Array(0x40);
validFlags[TcpFlag.SYN] = 1;
validFlags[TcpFlag.SYN | TcpFlag.URG] = 1;
validFlags[TcpFlag.SYN | TcpFlag.ACK] = 1;
validFlags[TcpFlag.RST] = 1;
validFlags[TcpFlag.RST | TcpFlag.ACK] = 1;
validFlags[TcpFlag.FIN | TcpFlag.ACK] = 1;
validFlags[TcpFlag.FIN | TcpFlag.ACK | TcpFlag.URG] = 1;
validFlags[TcpFlag.ACK] = 1;
validFlags[TcpFlag.ACK | TcpFlag.URG] = 1;

/** True when the flag byte is a combination a real TCP stack sends (kernel's tcp_error check). */
export function tcpFlagsValid(flags: number): boolean {
  return validFlags[flags & ~(TcpFlag.PSH | TcpFlag.ECE | TcpFlag.CWR) & 0x3f] === 1;
}

// No cell leads back to NONE, so it has no short name here.
const sSS = TcpState.SYN_SENT;
const sSR = TcpState.SYN_RECV;
const sES = TcpState.ESTABLISHED;
const sFW = TcpState.FIN_WAIT;
const sCW = TcpState.CLOSE_WAIT;
const sLA = TcpState.LAST_ACK;
const sTW = TcpState.TIME_WAIT;
const sCL = TcpState.CLOSE;
const sS2 = TcpState.SYN_SENT2;
const sIV = TcpTransition.INVALID;
const sIG = TcpTransition.IGNORE;

type C = TcpTransitionCode;
/** One row: the new state for each old state, in TcpState order (NONE..SYN_SENT2). */
type StateRow = readonly [C, C, C, C, C, C, C, C, C, C];
/** One direction: a row per flag class, in TcpFlagClass order. */
type DirTable = readonly [StateRow, StateRow, StateRow, StateRow, StateRow, StateRow];

/**
 * TCP_TRANSITIONS[dir][flagClass][oldState] -> new state or marker. Same cells as the kernel's
 * tcp_conntracks (6.x), one comment per cell.
 */
export const TCP_TRANSITIONS: readonly [DirTable, DirTable] = [
  // ---------------------------------------------------------------- ORIGINAL (the initiator)
  [
    /* SYN */ [
      sSS, // NONE -> SYN_SENT: initialise a new connection.
      sSS, // SYN_SENT -> SYN_SENT: retransmitted SYN.
      sIG, // SYN_RECV -> IGNORE: SYN outside SYN_SENT; the receiver replies RST, or we are out of sync.
      sIG, // ESTABLISHED -> IGNORE: SYN in window is an error the receiver answers (RST or RFC 5961
      //      challenge ACK), or we hold a dead connection and the client opens a new one.
      sIG, // FIN_WAIT -> IGNORE: as ESTABLISHED.
      sIG, // CLOSE_WAIT -> IGNORE: as ESTABLISHED.
      sIG, // LAST_ACK -> IGNORE: as ESTABLISHED; the reply may be a challenge ACK (noted by the tracker).
      sSS, // TIME_WAIT -> SYN_SENT: reopened connection (RFC 1122 4.2.2.13); tracker may restart.
      sSS, // CLOSE -> SYN_SENT: reopened connection after a reset; tracker may restart.
      sS2, // SYN_SENT2 -> SYN_SENT2: late retransmitted SYN in a simultaneous open.
    ],
    /* SYNACK */ [
      sIV, // NONE -> INVALID: too late and no reason to do anything.
      sIV, // SYN_SENT -> INVALID: the client cannot send SYN and then SYN/ACK.
      sSR, // SYN_RECV -> SYN_RECV: late retransmitted SYN/ACK in a simultaneous open.
      sIV, // ESTABLISHED -> INVALID: SYN/ACK sent by the client.
      sIV, // FIN_WAIT -> INVALID: SYN/ACK sent by the client.
      sIV, // CLOSE_WAIT -> INVALID: SYN/ACK sent by the client.
      sIV, // LAST_ACK -> INVALID: SYN/ACK sent by the client.
      sIV, // TIME_WAIT -> INVALID: SYN/ACK sent by the client.
      sIV, // CLOSE -> INVALID: SYN/ACK sent by the client.
      sSR, // SYN_SENT2 -> SYN_RECV: SYN/ACK answering the reply's SYN in a simultaneous open.
    ],
    /* FIN */ [
      sIV, // NONE -> INVALID: too late and no reason to do anything.
      sIV, // SYN_SENT -> INVALID: the client may not FIN before it has seen a SYN/ACK.
      sFW, // SYN_RECV -> FIN_WAIT: close started.
      sFW, // ESTABLISHED -> FIN_WAIT: close started.
      sLA, // FIN_WAIT -> LAST_ACK: FIN seen in both directions (or a retransmitted FIN), waiting for the last ACK.
      sLA, // CLOSE_WAIT -> LAST_ACK: the other side closed before; now both have.
      sLA, // LAST_ACK -> LAST_ACK: retransmitted FIN.
      sTW, // TIME_WAIT -> TIME_WAIT: retransmitted FIN; stay.
      sCL, // CLOSE -> CLOSE: stay closed.
      sIV, // SYN_SENT2 -> INVALID: no FIN before the handshake completes.
    ],
    /* ACK */ [
      sES, // NONE -> ESTABLISHED: assumed (mid-stream pickup, nf_conntrack_tcp_loose).
      sIV, // SYN_SENT -> INVALID: ACK without SYN/ACK seen.
      sES, // SYN_RECV -> ESTABLISHED: the third packet of the handshake.
      sES, // ESTABLISHED -> ESTABLISHED: data or ACK.
      sCW, // FIN_WAIT -> CLOSE_WAIT: the close request is acknowledged.
      sCW, // CLOSE_WAIT -> CLOSE_WAIT: more data or ACKs from the half-open side.
      sTW, // LAST_ACK -> TIME_WAIT: last ACK detected (unless an RFC 5961 challenge ACK; tracker checks).
      sTW, // TIME_WAIT -> TIME_WAIT: retransmitted last ACK.
      sCL, // CLOSE -> CLOSE: stay closed.
      sIV, // SYN_SENT2 -> INVALID: ACK before any SYN/ACK in a simultaneous open.
    ],
    /* RST */ [
      sIV, // NONE -> INVALID: a RST cannot create an entry.
      sCL, // SYN_SENT -> CLOSE: the client aborts its open.
      sCL, // SYN_RECV -> CLOSE: reset (window checked first).
      sCL, // ESTABLISHED -> CLOSE: reset (window and exact sequence checked first).
      sCL, // FIN_WAIT -> CLOSE: reset while closing.
      sCL, // CLOSE_WAIT -> CLOSE: reset while closing.
      sCL, // LAST_ACK -> CLOSE: reset while closing.
      sCL, // TIME_WAIT -> CLOSE: reset in TIME_WAIT.
      sCL, // CLOSE -> CLOSE: another reset.
      sCL, // SYN_SENT2 -> CLOSE: reset during a simultaneous open.
    ],
    /* NONE */ [
      sIV, // NONE -> INVALID: a segment without SYN, ACK, FIN or RST is never valid.
      sIV, // SYN_SENT -> INVALID: no flags.
      sIV, // SYN_RECV -> INVALID: no flags.
      sIV, // ESTABLISHED -> INVALID: no flags (a null scan).
      sIV, // FIN_WAIT -> INVALID: no flags.
      sIV, // CLOSE_WAIT -> INVALID: no flags.
      sIV, // LAST_ACK -> INVALID: no flags.
      sIV, // TIME_WAIT -> INVALID: no flags.
      sIV, // CLOSE -> INVALID: no flags.
      sIV, // SYN_SENT2 -> INVALID: no flags.
    ],
  ],
  // ---------------------------------------------------------------- REPLY (the responder)
  [
    /* SYN */ [
      sIV, // NONE -> INVALID: never reached (entries are created by the original direction).
      sS2, // SYN_SENT -> SYN_SENT2: simultaneous open.
      sIV, // SYN_RECV -> INVALID: SYN sent by the server after its SYN/ACK.
      sIV, // ESTABLISHED -> INVALID: SYN sent by the server.
      sIV, // FIN_WAIT -> INVALID: SYN sent by the server.
      sIV, // CLOSE_WAIT -> INVALID: SYN sent by the server.
      sIV, // LAST_ACK -> INVALID: SYN sent by the server.
      sSS, // TIME_WAIT -> SYN_SENT: reopened connection, the server may have switched role; tracker may restart.
      sIV, // CLOSE -> INVALID: the server may not reopen a reset connection.
      sS2, // SYN_SENT2 -> SYN_SENT2: retransmitted simultaneous SYN.
    ],
    /* SYNACK */ [
      sIV, // NONE -> INVALID: never reached.
      sSR, // SYN_SENT -> SYN_RECV: standard open.
      sIG, // SYN_RECV -> IGNORE: retransmitted SYN/ACK.
      sIG, // ESTABLISHED -> IGNORE: late retransmitted SYN/ACK, or one answering an ignored SYN.
      sIG, // FIN_WAIT -> IGNORE: might be a SYN/ACK answering an ignored SYN.
      sIG, // CLOSE_WAIT -> IGNORE: might answer an ignored SYN.
      sIG, // LAST_ACK -> IGNORE: might answer an ignored SYN.
      sIG, // TIME_WAIT -> IGNORE: might answer an ignored SYN (then the tracker resyncs).
      sIG, // CLOSE -> IGNORE: might answer an ignored SYN.
      sSR, // SYN_SENT2 -> SYN_RECV: simultaneous open.
    ],
    /* FIN */ [
      sIV, // NONE -> INVALID: never reached.
      sIV, // SYN_SENT -> INVALID: the server may not FIN before its SYN/ACK.
      sFW, // SYN_RECV -> FIN_WAIT: close started.
      sFW, // ESTABLISHED -> FIN_WAIT: close started.
      sLA, // FIN_WAIT -> LAST_ACK: FIN seen in both directions.
      sLA, // CLOSE_WAIT -> LAST_ACK: the half-open side closes too.
      sLA, // LAST_ACK -> LAST_ACK: retransmitted FIN.
      sTW, // TIME_WAIT -> TIME_WAIT: retransmitted FIN; stay.
      sCL, // CLOSE -> CLOSE: stay closed.
      sIV, // SYN_SENT2 -> INVALID: no FIN before the handshake completes.
    ],
    /* ACK */ [
      sIV, // NONE -> INVALID: never reached.
      sIG, // SYN_SENT -> IGNORE: might be a half-open connection (or a challenge ACK to the SYN).
      sSR, // SYN_RECV -> SYN_RECV: might answer a late resent SYN.
      sES, // ESTABLISHED -> ESTABLISHED: data or ACK.
      sCW, // FIN_WAIT -> CLOSE_WAIT: the close request is acknowledged.
      sCW, // CLOSE_WAIT -> CLOSE_WAIT: more data or ACKs.
      sTW, // LAST_ACK -> TIME_WAIT: last ACK detected (unless an RFC 5961 challenge ACK; tracker checks).
      sTW, // TIME_WAIT -> TIME_WAIT: retransmitted last ACK.
      sCL, // CLOSE -> CLOSE: stay closed.
      sIG, // SYN_SENT2 -> IGNORE: might be a half-open connection.
    ],
    /* RST */ [
      sIV, // NONE -> INVALID: never reached.
      sCL, // SYN_SENT -> CLOSE: the server refuses the connection.
      sCL, // SYN_RECV -> CLOSE: reset (window checked first).
      sCL, // ESTABLISHED -> CLOSE: reset (window and exact sequence checked first).
      sCL, // FIN_WAIT -> CLOSE: reset while closing.
      sCL, // CLOSE_WAIT -> CLOSE: reset while closing.
      sCL, // LAST_ACK -> CLOSE: reset while closing.
      sCL, // TIME_WAIT -> CLOSE: reset in TIME_WAIT.
      sCL, // CLOSE -> CLOSE: another reset.
      sCL, // SYN_SENT2 -> CLOSE: reset during a simultaneous open.
    ],
    /* NONE */ [
      sIV, // NONE -> INVALID: no flags.
      sIV, // SYN_SENT -> INVALID: no flags.
      sIV, // SYN_RECV -> INVALID: no flags.
      sIV, // ESTABLISHED -> INVALID: no flags.
      sIV, // FIN_WAIT -> INVALID: no flags.
      sIV, // CLOSE_WAIT -> INVALID: no flags.
      sIV, // LAST_ACK -> INVALID: no flags.
      sIV, // TIME_WAIT -> INVALID: no flags.
      sIV, // CLOSE -> INVALID: no flags.
      sIV, // SYN_SENT2 -> INVALID: no flags.
    ],
  ],
] as const;

/**
 * The same table flattened for the hot path: index (dir * 6 + flagClass) * 10 + oldState.
 * One typed-array read per packet instead of three nested array reads.
 */
export const TCP_TRANSITIONS_FLAT: Uint8Array = (() => {
  const flat = new Uint8Array(2 * TCP_FLAG_CLASSES * TCP_STATES);
  for (let dir = 0; dir < 2; dir++) {
    for (let cls = 0; cls < TCP_FLAG_CLASSES; cls++) {
      for (let st = 0; st < TCP_STATES; st++) {
        flat[(dir * TCP_FLAG_CLASSES + cls) * TCP_STATES + st] = TCP_TRANSITIONS[dir][cls][st];
      }
    }
  }
  return flat;
})();

/** New state (or TcpTransition marker) for a segment of this class in this direction and state. */
export function tcpTransition(dir: number, flagClass: number, oldState: number): number {
  return TCP_TRANSITIONS_FLAT[(dir * TCP_FLAG_CLASSES + flagClass) * TCP_STATES + oldState];
}

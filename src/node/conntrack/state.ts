/**
 * Connection states as iptables' `-m conntrack --ctstate` names them, and the TCP tracker's states
 * as Linux's nf_conntrack_proto_tcp numbers them (enum tcp_conntrack), so that operators see the
 * names they know.
 */

/** Packet's relation to a tracked connection (ctstate). */
export const CtState = {
  NEW: 0,
  ESTABLISHED: 1,
  RELATED: 2,
  INVALID: 3,
  /** Exempted by a NOTRACK rule. */
  UNTRACKED: 4,
} as const;
export type CtStateCode = (typeof CtState)[keyof typeof CtState];
export const ctStateNames = ['NEW', 'ESTABLISHED', 'RELATED', 'INVALID', 'UNTRACKED'] as const;

/** TCP conntrack states, numbered like Linux's enum tcp_conntrack. */
export const TcpState = {
  NONE: 0,
  SYN_SENT: 1,
  SYN_RECV: 2,
  ESTABLISHED: 3,
  FIN_WAIT: 4,
  CLOSE_WAIT: 5,
  LAST_ACK: 6,
  TIME_WAIT: 7,
  CLOSE: 8,
  /** Linux's SYN_SENT2: simultaneous open, SYN seen in both directions. */
  SYN_SENT2: 9,
} as const;
export type TcpStateCode = (typeof TcpState)[keyof typeof TcpState];
export const tcpStateNames = [
  'NONE',
  'SYN_SENT',
  'SYN_RECV',
  'ESTABLISHED',
  'FIN_WAIT',
  'CLOSE_WAIT',
  'LAST_ACK',
  'TIME_WAIT',
  'CLOSE',
  'SYN_SENT2',
] as const;

/** Direction of a packet relative to the entry: the one that created it, or the answer. */
export const Dir = { ORIGINAL: 0, REPLY: 1 } as const;
export type DirCode = 0 | 1;

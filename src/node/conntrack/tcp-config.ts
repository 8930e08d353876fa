/**
 * Configuration of the TCP tracker: one timeout per state and the kernel's sysctls
 * (net.netfilter.nf_conntrack_tcp_*), with the kernel's defaults.
 */
import { TcpState } from './state.js';

/** Timeouts in milliseconds; the kernel's tcp_timeouts[] (nf_conntrack_tcp_timeout_* sysctls). */
export interface TcpTimeouts {
  synSent: number;
  synRecv: number;
  established: number;
  finWait: number;
  closeWait: number;
  lastAck: number;
  timeWait: number;
  close: number;
  synSent2: number;
  /** Cap once maxRetrans identical segments were seen, or the receiver's window is zero. */
  retrans: number;
  /** Cap while data is unacknowledged (and for picked-up connections without a reply yet). */
  unacknowledged: number;
}

export interface TcpTrackerConfig {
  timeouts: TcpTimeouts;
  /** Identical ACK-class segments without progress before the retrans timeout applies (nf_conntrack_tcp_max_retrans). */
  maxRetrans: number;
  /** Accept out-of-window segments (nf_conntrack_tcp_be_liberal); only the RST sequence check still rejects. */
  liberal: boolean;
  /** Pick up established connections mid-stream from an ACK (nf_conntrack_tcp_loose). */
  loose: boolean;
}

const SEC = 1000;
const MIN = 60 * SEC;
const DAY = 24 * 60 * MIN;

/** Linux's defaults (nf_conntrack_proto_tcp.c, tcp_timeouts[]). */
export const DEFAULT_TCP_TIMEOUTS: Readonly<TcpTimeouts> = Object.freeze({
  synSent: 2 * MIN,
  synRecv: 60 * SEC,
  established: 5 * DAY,
  finWait: 2 * MIN,
  closeWait: 60 * SEC,
  lastAck: 30 * SEC,
  timeWait: 2 * MIN,
  close: 10 * SEC,
  synSent2: 2 * MIN,
  // RFC 1122 4.2.3.5: R2 at least 100 s; Linux's 15 retries take ~13-30 min.
  retrans: 5 * MIN,
  unacknowledged: 5 * MIN,
});

export const DEFAULT_TCP_CONFIG: Readonly<TcpTrackerConfig> = Object.freeze({
  timeouts: DEFAULT_TCP_TIMEOUTS,
  maxRetrans: 3,
  liberal: false,
  loose: true,
});

/** A config the caller may give: any field left out takes the default. */
export interface TcpTrackerOptions {
  timeouts?: Partial<TcpTimeouts>;
  maxRetrans?: number;
  liberal?: boolean;
  loose?: boolean;
}

/** Raised when a tracker option is out of range; the message names the option and the range. */
export class TcpConfigError extends Error {
  readonly code = 'TCP_CONFIG_INVALID';
  readonly path: string;
  constructor(path: string, message: string) {
    super(`${path}: ${message}`);
    this.name = 'TcpConfigError';
    this.path = path;
  }
}

/** Largest timeout accepted: 2^31 ms (~24.8 days) is the limit of Node's timers and of most wheels. */
export const TCP_MAX_TIMEOUT_MS = 0x7fffffff;

/** Merge options over the defaults and check every value; throws TcpConfigError on the first bad one. */
export function resolveTcpConfig(options: TcpTrackerOptions = {}): TcpTrackerConfig {
  const timeouts: TcpTimeouts = { ...DEFAULT_TCP_TIMEOUTS, ...(options.timeouts ?? {}) };
  for (const key of Object.keys(DEFAULT_TCP_TIMEOUTS) as (keyof TcpTimeouts)[]) {
    const v = timeouts[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > TCP_MAX_TIMEOUT_MS) {
      throw new TcpConfigError(
        `timeouts.${key}`,
        `${String(v)} is not a whole number of milliseconds between 0 and ${TCP_MAX_TIMEOUT_MS}; the default is ${DEFAULT_TCP_TIMEOUTS[key]}`,
      );
    }
  }
  const maxRetrans = options.maxRetrans ?? DEFAULT_TCP_CONFIG.maxRetrans;
  if (!Number.isInteger(maxRetrans) || maxRetrans < 0 || maxRetrans > 255) {
    throw new TcpConfigError('maxRetrans', `${String(maxRetrans)} is not an integer between 0 and 255; the default is 3`);
  }
  const liberal = options.liberal ?? DEFAULT_TCP_CONFIG.liberal;
  const loose = options.loose ?? DEFAULT_TCP_CONFIG.loose;
  if (typeof liberal !== 'boolean') throw new TcpConfigError('liberal', 'must be true or false');
  if (typeof loose !== 'boolean') throw new TcpConfigError('loose', 'must be true or false');
  return { timeouts, maxRetrans, liberal, loose };
}

/** Index of the retrans cap in the tracker's timeout vector (after the ten states). */
export const TCP_TIMEOUT_RETRANS = 10;
/** Index of the unacknowledged-data cap in the tracker's timeout vector. */
export const TCP_TIMEOUT_UNACK = 11;

/** Timeouts as a vector indexed by TcpState code, then RETRANS and UNACK, for the hot path. */
export function tcpTimeoutVector(t: TcpTimeouts): Float64Array {
  const v = new Float64Array(12);
  // NONE never times out as such; the kernel uses the SYN_SENT value for it.
  v[TcpState.NONE] = t.synSent;
  v[TcpState.SYN_SENT] = t.synSent;
  v[TcpState.SYN_RECV] = t.synRecv;
  v[TcpState.ESTABLISHED] = t.established;
  v[TcpState.FIN_WAIT] = t.finWait;
  v[TcpState.CLOSE_WAIT] = t.closeWait;
  v[TcpState.LAST_ACK] = t.lastAck;
  v[TcpState.TIME_WAIT] = t.timeWait;
  v[TcpState.CLOSE] = t.close;
  v[TcpState.SYN_SENT2] = t.synSent2;
  v[TCP_TIMEOUT_RETRANS] = t.retrans;
  v[TCP_TIMEOUT_UNACK] = t.unacknowledged;
  return v;
}

/**
 * The master's periodic adverts on a native thread of their own (native/pacer): the election
 * (election.ts) decides, this sends. A JavaScript thread stops for its isolate's garbage
 * collections and competes for the cores with the packet path; with a 10 ms interval, 30 ms of
 * silence is a takeover by the backup, and a master with a 1 M entry table had its advert timer
 * fire 31-40 ms late (bench/RESULTS.md, run L). The pacer thread allocates nothing and runs
 * SCHED_FIFO where the node may (CAP_SYS_NICE; as keepalived's vrrp_rt_priority), else at the
 * election thread's nice value.
 *
 * Every advert goes through it, the election's own ones too (send()), so one counter numbers them
 * all (the peers' replay check needs them increasing). The thread stops by itself when it woke
 * over three intervals late (the process was frozen: the backup may be master now) or when the
 * election did not renew its lease (its thread hung): check() says so, and the election yields.
 */
import type { Socket } from 'node:dgram';
import { parseAddress } from '../node/packet/address.js';
import { loadAddon, socketFd } from '../native.js';
import type { Keyring } from '../sync/auth.js';
import { ADVERT_BYTES } from './advert.js';

/** native/pacer/twinwall_pacer.c */
interface PacerAddon {
  create(fds: number[], addrs: number[], port: number, key: ArrayBuffer, keyId: number, rtPriority: number, nice: number | undefined): object;
  send(p: object, buf: Buffer): number;
  pace(p: object, intervalMs: number, leaseMs: number): void;
  renew(p: object, leaseMs: number): void;
  state(p: object): Float64Array;
  close(p: object): void;
  STATE_COUNT: number;
  setCallerRealtime(priority: number): number;
}

/** Indexes of the addon's state(). */
const S = { PACING: 0, STOPPED: 1, SENT: 2, SENT_NOW: 3, SEQ: 4, LATE_MAX_US: 5, LATE: 6, ERRORS: 7, POLICY: 8, SCHED_ERRNO: 9, STOP_LATE_US: 10, SINCE_SENT_US: 11 } as const;
const STATE_COUNT = 12;

export class AdvertPacerError extends Error {
  readonly code = 'ADVERT_PACER';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AdvertPacerError';
  }
}

/** Why the thread stopped repeating the advert by itself. */
export type PacerStop = 'frozen' | 'lease';

export interface PacerState {
  pacing: boolean;
  /** Set when the thread stopped by itself, until the next pace(). */
  stopped: PacerStop | null;
  /** How late the wake-up that stopped it was (ms). */
  stopLateMs: number;
  /** Adverts sent by the thread, and by send(). */
  sent: number;
  sentNow: number;
  seq: number;
  /** How long ago the last advert went out, by either (ms; null: none yet). */
  sinceSentMs: number | null;
  /** The thread's wake-ups: at worst this late past their due time (ms); how many over one interval. */
  lateMaxMs: number;
  late: number;
  /** sendto() failures (a link down; the other links carry on). */
  errors: number;
  /** 'fifo' (real time) or 'normal' (then at the nice value), and why real time was refused. */
  scheduling: 'fifo' | 'normal';
  schedError: string | null;
}

export interface AdvertPacerLink {
  /** The link's sending socket (bound, multicast interface set): the pacer sends on a dup of it. */
  socket: Socket;
  /** Where adverts go on this link: the group, or the peer's address (unicast). */
  dest: string;
}

export interface AdvertPacerOptions {
  port: number;
  keys: Keyring;
  /** SCHED_FIFO priority 1-99 of the thread; 0: normal scheduling. */
  rtPriority: number;
  /** The thread's nice value under normal scheduling (or when real time is refused). */
  nice?: number;
}

let addon: PacerAddon | null = null;

/**
 * Put the calling thread (a node's main thread: packet path and sync) in SCHED_RR at `priority`
 * (1-99; 0: back to normal scheduling), as conntrackd's and keepalived's Scheduler settings do:
 * other work on the machine (kernel threads such as kdamond, other processes) then no longer
 * preempts it for milliseconds at a time. Returns 0, or the errno (EPERM without CAP_SYS_NICE).
 * Keep it below the advert pacer's priority, so the pacer still preempts it on a shared core.
 */
export function setThreadRealtime(priority: number): number {
  return pacerAddon().setCallerRealtime(priority);
}

function pacerAddon(): PacerAddon {
  if (addon === null) {
    addon = loadAddon<PacerAddon>('pacer', 'twinwall_pacer');
    if (addon.STATE_COUNT !== STATE_COUNT) throw new AdvertPacerError(`native/pacer reports ${addon.STATE_COUNT} counters, this code reads ${STATE_COUNT}: rebuild it with bash scripts/setup.sh`);
  }
  return addon;
}

const errnoNames: Record<number, string> = { 1: 'EPERM (needs CAP_SYS_NICE or an RLIMIT_RTPRIO)', 13: 'EACCES', 22: 'EINVAL' };

export class AdvertPacer {
  readonly #a: PacerAddon;
  readonly #p: object;
  #open = true;

  constructor(links: AdvertPacerLink[], o: AdvertPacerOptions) {
    this.#a = pacerAddon();
    const fds: number[] = [];
    const addrs: number[] = [];
    for (const l of links) {
      const fd = socketFd(l.socket);
      if (fd < 0) throw new AdvertPacerError('advert pacer: a link socket has no descriptor (not bound yet, or closed): bind it first');
      const a = parseAddress(l.dest);
      if (a.family !== 4) throw new AdvertPacerError(`advert pacer: ${l.dest} is not an IPv4 address: the election runs over IPv4`);
      fds.push(fd);
      addrs.push(a.words[0]);
    }
    if (!Number.isInteger(o.rtPriority) || o.rtPriority < 0 || o.rtPriority > 99) throw new AdvertPacerError(`advert pacer: real-time priority ${o.rtPriority} is not an integer 0-99`);
    this.#p = this.#a.create(fds, addrs, o.port, o.keys.sendKeyState, o.keys.sendId, o.rtPriority, o.nice);
  }

  /**
   * Send an encoded advert (encodeAdvert's datagram: its sequence number and tag are replaced)
   * on every link now, and keep it as the one the thread repeats. Returns its sequence number.
   */
  send(advert: Buffer): number {
    if (!this.#open) return 0;
    if (advert.length < ADVERT_BYTES) throw new AdvertPacerError(`advert pacer: an advert has ${ADVERT_BYTES} bytes before its tag, got ${advert.length}`);
    return this.#a.send(this.#p, advert);
  }

  /** Repeat the last advert every intervalMs from now + intervalMs while the lease (leaseMs from now) runs. */
  start(intervalMs: number, leaseMs: number): void {
    if (this.#open) this.#a.pace(this.#p, intervalMs, Math.max(1, Math.ceil(leaseMs)));
  }

  stop(): void {
    if (this.#open) this.#a.pace(this.#p, 0, 1);
  }

  /** The lease runs until leaseMs from now. */
  renew(leaseMs: number): void {
    if (this.#open) this.#a.renew(this.#p, Math.max(1, Math.ceil(leaseMs)));
  }

  state(): PacerState {
    const s = this.#open ? this.#a.state(this.#p) : new Float64Array(STATE_COUNT);
    const err = s[S.SCHED_ERRNO];
    return {
      pacing: s[S.PACING] === 1,
      stopped: s[S.STOPPED] === 1 ? 'frozen' : s[S.STOPPED] === 2 ? 'lease' : null,
      stopLateMs: s[S.STOP_LATE_US] / 1000,
      sent: s[S.SENT], sentNow: s[S.SENT_NOW], seq: s[S.SEQ],
      sinceSentMs: s[S.SINCE_SENT_US] < 0 ? null : s[S.SINCE_SENT_US] / 1000,
      lateMaxMs: s[S.LATE_MAX_US] / 1000, late: s[S.LATE], errors: s[S.ERRORS],
      scheduling: s[S.POLICY] === 1 ? 'fifo' : 'normal',
      schedError: err === 0 ? null : `errno ${err}${errnoNames[err] !== undefined ? ` ${errnoNames[err]}` : ''}`,
    };
  }

  /** Stops and joins the thread; the link sockets stay open (they are the caller's). */
  close(): void {
    if (!this.#open) return;
    this.#open = false;
    this.#a.close(this.#p);
  }
}

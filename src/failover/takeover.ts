/**
 * What a change of role does to this node, in the order that loses nothing (DESIGN.md, "How
 * takeover works"):
 *
 *  - becoming MASTER: the replicated entries become live first (this node's own from now on, so
 *    its sync sends their changes to the peer; TCP ones tolerant until each flow has been seen in
 *    both directions, since window data a refresh old must not reset a live transfer), then the
 *    virtual addresses are claimed and announced;
 *  - leaving MASTER (to BACKUP, FAULT, or stopping): the addresses are released first, then this
 *    node's entries become replicated (the peer's from now on: its updates and its resync
 *    overwrite or sweep them).
 *
 * Steps run one after the other even when transitions come quickly (a promise chain): a release
 * never overtakes the claim before it.
 *
 * A large table (over EAGER_MAX entries) is not made live in one loop before the claim: that loop
 * runs on the main thread, 13-18 ms per 100 k entries the first time in the drill lab (cold code,
 * 192-byte records), 100+ ms at a million, all of it added to the outage. Instead every entry is
 * made live at its first packet (the conntrack does it while table.adoptReplicated is set, before
 * tracking the packet: no packet sees a REPLICATED entry on the new master), the addresses are
 * claimed at once, and a sweep makes the rest live in slices of SWEEP_SLICE slots between the
 * event loop's turns (packets, sync, adverts go on in between).
 */
import { CtStatus, type ConntrackTable } from '../node/conntrack/index.js';
import { TW_PROTO } from '../node/conntrack/tuple.js';
import type { TcpTracker } from '../node/conntrack/tcp.js';
import { Role, roleNames, type RoleCode } from './advert.js';
import type { VirtualAddresses } from './vip.js';

export interface TakeoverStep {
  to: string;
  /** Entries whose role changed (live, or replicated). */
  entries: number;
  /** ms for the entries, and for the addresses (claim and the first announcement, or release). */
  entriesMs: number;
  addressesMs: number;
  /** Entries made live at their first packet and by a sweep after the claim (a large table): `entries` is the table's size then. */
  lazy?: boolean;
  /** Master still after a second master was heard: `entries` TCP entries made tolerant again, the addresses claimed again. */
  reclaim?: boolean;
  error?: string;
}

const TCP = 6;
/** Tables up to this many entries are made live in one loop before the claim (a few ms at most). */
export const EAGER_MAX = 65536;
/**
 * Slots per slice of the sweep after a lazy takeover (0.6-0.7 ms of work at 1 M entries), one
 * slice per turn of the event loop (setImmediate: the check phase, right after the poll phase
 * where the NFQUEUE binding hands over its batches), so packets wait for one slice at most.
 * History: with the npm nfqueue binding (one packet per turn) setImmediate-chained 32 k-slot
 * slices held every TCP flow until the sweep ended; then slices on setTimeout(0) let packets
 * through, but a slice that takes over a millisecond makes the next timer due within the same
 * timers phase, so Node ran several slices back to back: packets waited 2-6 ms for ~80 ms after
 * a 1 M takeover (lab captures), and the flows stalled 52-76 ms at a 16-25 ms outage.
 */
export const SWEEP_SLICE = 512;

/** The sweep after a lazy takeover: entries it made live, ms from its start to its end, slices. */
export interface SweepDone {
  entries: number;
  ms: number;
  slices: number;
  /** The node left master before the sweep ended. */
  cancelled: boolean;
}

export class Takeover {
  #chain: Promise<void> = Promise.resolve();
  /** The last steps, newest last (for status and logs). */
  readonly steps: TakeoverStep[] = [];
  onStep: ((s: TakeoverStep) => void) | null = null;
  onSweep: ((s: SweepDone) => void) | null = null;
  /** The sweep running after a lazy takeover (cleared when it ends or is cancelled). */
  #sweep: { cancelled: boolean } | null = null;

  /** `eagerMax`: tables larger than this go the lazy way (default EAGER_MAX). */
  constructor(readonly table: ConntrackTable, readonly tcp: TcpTracker, readonly vips: VirtualAddresses, readonly opts: { eagerMax?: number } = {}) {}

  /** Resolves once every step queued so far is done. */
  idle(): Promise<void> {
    return this.#chain;
  }

  /** The election's transition; returns when this one's steps are done. */
  transition(from: RoleCode, to: RoleCode): Promise<void> {
    const step = to === Role.MASTER
      ? (from === Role.MASTER ? () => this.#reclaim() : () => this.#becomeMaster())
      : from === Role.MASTER ? () => this.#leaveMaster(to) : null;
    if (step === null) return this.#chain;
    this.#chain = this.#chain.then(step);
    return this.#chain;
  }

  async #becomeMaster(): Promise<void> {
    const t0 = performance.now();
    const t = this.table;
    let n = t.count;
    const lazy = n > (this.opts.eagerMax ?? EAGER_MAX);
    if (lazy) {
      // A large table: entries live at their first packet and by the sweep after the claim.
      t.adoptReplicated = true;
    } else {
      n = 0;
      t.forEach((slot) => {
        if ((t.statusOf(slot) & CtStatus.REPLICATED) === 0) return;
        t.clearStatus(slot, CtStatus.REPLICATED);
        if (this.#isTcp(slot)) this.tcp.setTolerant(t.tcp, slot);
        n++;
      });
    }
    await this.#claim({ to: roleNames[Role.MASTER], entries: n, entriesMs: performance.now() - t0, addressesMs: 0, ...(lazy ? { lazy } : {}) });
    if (lazy) this.#startSweep();
  }

  /**
   * Master still, after a second master was heard (a split brain healing): the other forwarded
   * some of the traffic meanwhile, and its updates did not touch our live entries, so our TCP
   * window data may be behind the flows. Every TCP entry goes tolerant again (re-learnt from
   * the next segments), then the addresses are claimed and announced again. Found by the
   * compose pause drill: after the paused master preempted back and the peer took over once
   * more, the master's strict window checks dropped every flow (tcp_window: 4164).
   */
  async #reclaim(): Promise<void> {
    const t0 = performance.now();
    const t = this.table;
    let n = 0;
    t.forEach((slot) => {
      if ((t.statusOf(slot) & CtStatus.REPLICATED) !== 0) return;
      if (!this.#isTcp(slot)) return;
      this.tcp.setTolerant(t.tcp, slot);
      n++;
    });
    await this.#claim({ to: roleNames[Role.MASTER], entries: n, entriesMs: performance.now() - t0, addressesMs: 0, reclaim: true });
  }

  /** Claim and announce the addresses; record the step with the time they took (or the error). */
  async #claim(s: TakeoverStep): Promise<void> {
    const t1 = performance.now();
    try {
      await this.vips.claim();
    } catch (e) {
      s.error = (e as Error).message;
    }
    s.addressesMs = performance.now() - t1;
    this.#record(s);
  }

  #isTcp(slot: number): boolean {
    const t = this.table;
    return (t.tuples[t.tupleOffset(slot, 0) + TW_PROTO] & 0xff) === TCP;
  }

  #startSweep(): void {
    const t = this.table;
    const token = { cancelled: false };
    this.#sweep = token;
    const t0 = performance.now();
    const done: SweepDone = { entries: 0, ms: 0, slices: 0, cancelled: false };
    let slot = 0;
    const slice = (): void => {
      if (token.cancelled) {
        done.cancelled = true;
      } else {
        const end = Math.min(slot + SWEEP_SLICE, t.highWater);
        for (; slot < end; slot++) {
          if ((t.statusOf(slot) & (CtStatus.CONFIRMED | CtStatus.REPLICATED)) !== (CtStatus.CONFIRMED | CtStatus.REPLICATED)) continue;
          t.clearStatus(slot, CtStatus.REPLICATED);
          if (this.#isTcp(slot)) this.tcp.setTolerant(t.tcp, slot);
          done.entries++;
        }
        done.slices++;
        if (slot < t.highWater) {
          setImmediate(slice);
          return;
        }
        t.adoptReplicated = false;
        this.#sweep = null;
      }
      done.ms = performance.now() - t0;
      this.onSweep?.(done);
    };
    setImmediate(slice);
  }

  async #leaveMaster(to: RoleCode): Promise<void> {
    const t0 = performance.now();
    // A sweep still running stops here: the entries are about to be the peer's again.
    if (this.#sweep) this.#sweep.cancelled = true;
    this.#sweep = null;
    this.table.adoptReplicated = false;
    const s: TakeoverStep = { to: roleNames[to], entries: 0, entriesMs: 0, addressesMs: 0 };
    try {
      await this.vips.release();
    } catch (e) {
      s.error = (e as Error).message;
    }
    const t1 = performance.now();
    s.addressesMs = t1 - t0;
    const t = this.table;
    t.forEach((slot) => {
      if ((t.statusOf(slot) & CtStatus.REPLICATED) !== 0) return;
      t.addStatus(slot, CtStatus.REPLICATED);
      s.entries++;
    });
    s.entriesMs = performance.now() - t1;
    this.#record(s);
  }

  #record(s: TakeoverStep): void {
    this.steps.push(s);
    if (this.steps.length > 32) this.steps.shift();
    this.onStep?.(s);
  }
}

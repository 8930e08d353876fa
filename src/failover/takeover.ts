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
  error?: string;
}

const TCP = 6;

export class Takeover {
  #chain: Promise<void> = Promise.resolve();
  /** The last steps, newest last (for status and logs). */
  readonly steps: TakeoverStep[] = [];
  onStep: ((s: TakeoverStep) => void) | null = null;

  constructor(readonly table: ConntrackTable, readonly tcp: TcpTracker, readonly vips: VirtualAddresses) {}

  /** Resolves once every step queued so far is done. */
  idle(): Promise<void> {
    return this.#chain;
  }

  /** The election's transition; returns when this one's steps are done. */
  transition(from: RoleCode, to: RoleCode): Promise<void> {
    const step = to === Role.MASTER ? () => this.#becomeMaster() : from === Role.MASTER ? () => this.#leaveMaster(to) : null;
    if (step === null) return this.#chain;
    this.#chain = this.#chain.then(step);
    return this.#chain;
  }

  async #becomeMaster(): Promise<void> {
    const t0 = performance.now();
    const t = this.table;
    let n = 0;
    t.forEach((slot) => {
      if ((t.statusOf(slot) & CtStatus.REPLICATED) === 0) return;
      t.clearStatus(slot, CtStatus.REPLICATED);
      if ((t.tuples[t.tupleOffset(slot, 0) + TW_PROTO] & 0xff) === TCP) this.tcp.setTolerant(t.tcp, slot);
      n++;
    });
    const t1 = performance.now();
    const s: TakeoverStep = { to: roleNames[Role.MASTER], entries: n, entriesMs: t1 - t0, addressesMs: 0 };
    try {
      await this.vips.claim();
    } catch (e) {
      s.error = (e as Error).message;
    }
    s.addressesMs = performance.now() - t1;
    this.#record(s);
  }

  async #leaveMaster(to: RoleCode): Promise<void> {
    const t0 = performance.now();
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

/**
 * Elections on a simulated clock and network, for the state machine's tests: nodes exchange real
 * (encoded, signed) adverts with a delivery delay; links can be cut; a node can be killed
 * (SIGKILL: it stops sending and hearing, its timers are gone), paused and resumed (SIGSTOP /
 * SIGCONT: its timers fire late, all at once), stopped and started.
 */
import { Keyring } from '../../src/sync/index.js';
import { Election, Role, addressBytes, encodeAdvert, type Advert, type ElectionClock, type ElectionOptions, type RoleCode } from '../../src/failover/index.js';

export const KEY = { id: 1, secret: Buffer.from('0123456789abcdef0123456789abcdef') };

interface Timer {
  at: number;
  seq: number;
  fn: () => void;
  owner: SimNode | null;
  cancelled: boolean;
}

export class SimClock {
  now = 0;
  #timers: Timer[] = [];
  #seq = 0;

  add(fn: () => void, ms: number, owner: SimNode | null): Timer {
    const t: Timer = { at: this.now + Math.max(0, ms), seq: this.#seq++, fn, owner, cancelled: false };
    this.#timers.push(t);
    return t;
  }

  /** Run every timer due until `now + ms` in time order (a paused owner's wait until it resumes). */
  advance(ms: number): void {
    const end = this.now + ms;
    for (;;) {
      let best = -1;
      for (let i = 0; i < this.#timers.length; i++) {
        const t = this.#timers[i];
        if (t.cancelled || (t.owner !== null && (t.owner.paused || t.owner.dead))) continue;
        if (t.at > end) continue;
        if (best < 0 || t.at < this.#timers[best].at || (t.at === this.#timers[best].at && t.seq < this.#timers[best].seq)) best = i;
      }
      if (best < 0) break;
      const t = this.#timers[best];
      this.#timers.splice(best, 1);
      // A timer of a node that was paused fires when it resumes, late.
      this.now = Math.max(this.now, t.at);
      t.fn();
    }
    this.#timers = this.#timers.filter((t) => !t.cancelled && !(t.owner !== null && t.owner.dead));
    this.now = end;
  }
}

export class SimNode implements ElectionClock {
  readonly election: Election;
  readonly log: { at: number; from: RoleCode; to: RoleCode; reason: string }[] = [];
  dead = false;
  paused = false;
  readonly keys: Keyring;
  readonly #buf = Buffer.alloc(64);

  constructor(readonly net: SimNet, readonly id: number, o: Omit<Partial<ElectionOptions>, 'address'> & { priority: number; address: string }) {
    this.keys = o.keys ?? new Keyring([KEY], 1);
    this.election = new Election(
      {
        nodeId: id, groupId: 1, advertIntervalMs: net.intervalMs, preempt: true, preemptDelayMs: 0, epoch: net.clock.now + id, keys: this.keys, clock: this,
        ...o,
        address: addressBytes(o.address),
      },
      {
        advertise: (a: Readonly<Advert>) => {
          if (this.dead) return;
          net.send(this, Buffer.from(encodeAdvert(a, this.keys, this.#buf)));
        },
        transition: (from, to, reason) => this.log.push({ at: net.clock.now, from, to, reason }),
      },
    );
  }

  now(): number {
    return this.net.clock.now;
  }

  setTimer(fn: () => void, ms: number): unknown {
    return this.net.clock.add(fn, ms, this);
  }

  clearTimer(h: unknown): void {
    (h as Timer).cancelled = true;
  }

  get role(): RoleCode {
    return this.election.role;
  }

  /** When this node last became master (or -1). */
  becameMasterAt(): number {
    for (let i = this.log.length - 1; i >= 0; i--) if (this.log[i].to === Role.MASTER) return this.log[i].at;
    return -1;
  }
}

export class SimNet {
  readonly clock = new SimClock();
  readonly nodes: SimNode[] = [];
  /** Cut pairs, as "a-b" with a < b. */
  readonly cut = new Set<string>();
  /** Every datagram sent, for tests that replay or garble them. */
  readonly wire: { from: number; buf: Buffer }[] = [];
  /** Delivery delay, ms. */
  delayMs = 0.05;

  constructor(readonly intervalMs: number) {}

  add(id: number, o: Omit<Partial<ElectionOptions>, 'address'> & { priority: number; address: string }): SimNode {
    const n = new SimNode(this, id, o);
    this.nodes.push(n);
    return n;
  }

  send(from: SimNode, buf: Buffer): void {
    this.wire.push({ from: from.id, buf });
    for (const to of this.nodes) {
      if (to === from || this.isCut(from.id, to.id)) continue;
      this.clock.add(() => {
        if (!to.dead && !to.paused) to.election.receive(buf);
      }, this.delayMs, null);
    }
  }

  /** Deliver a datagram to one node now (forged, garbled, replayed). */
  inject(to: SimNode, buf: Buffer): void {
    to.election.receive(buf);
  }

  isCut(a: number, b: number): boolean {
    return this.cut.has(a < b ? `${a}-${b}` : `${b}-${a}`);
  }

  setCut(a: number, b: number, cut: boolean): void {
    const k = a < b ? `${a}-${b}` : `${b}-${a}`;
    if (cut) this.cut.add(k);
    else this.cut.delete(k);
  }

  masters(): SimNode[] {
    return this.nodes.filter((n) => !n.dead && n.role === Role.MASTER);
  }

  run(ms: number): void {
    this.clock.advance(ms);
  }
}

/**
 * Elections on a simulated clock and network, for the state machine's tests: nodes exchange real
 * (encoded, signed) adverts with a delivery delay; links can be cut; a node can be killed
 * (SIGKILL: it stops sending and hearing, its timers are gone), paused and resumed (SIGSTOP /
 * SIGCONT: its timers fire late, all at once), stopped and started. A node may have a pacer (the
 * master's adverts on a thread of their own, as advert-pacer.ts): then its election thread alone
 * can be held (a GC, a busy core: `held`), its datagrams queued meanwhile, the pacer running on.
 */
import { Keyring } from '../../src/sync/index.js';
import {
  Election, Role, addressBytes, encodeAdvert, type Advert, type ElectionClock, type ElectionOptions, type ElectionPacer, type RoleCode,
} from '../../src/failover/index.js';

export const KEY = { id: 1, secret: Buffer.from('0123456789abcdef0123456789abcdef') };

interface Timer {
  at: number;
  seq: number;
  fn: () => void;
  owner: SimNode | null;
  /** A pacer's timer: runs while its node's election thread is held (not while paused). */
  thread: boolean;
  cancelled: boolean;
}

export class SimClock {
  now = 0;
  #timers: Timer[] = [];
  #seq = 0;

  add(fn: () => void, ms: number, owner: SimNode | null, thread = false): Timer {
    const t: Timer = { at: this.now + Math.max(0, ms), seq: this.#seq++, fn, owner, thread, cancelled: false };
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
        if (t.cancelled || (t.owner !== null && (t.owner.paused || t.owner.dead || (t.owner.held && !t.thread)))) continue;
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
  /** The election thread alone is held (its timers wait, datagrams queue); a pacer runs on. */
  held = false;
  readonly backlog: Buffer[] = [];
  readonly keys: Keyring;
  readonly pacer: SimPacer | null;
  readonly #buf = Buffer.alloc(64);

  constructor(readonly net: SimNet, readonly id: number, o: Omit<Partial<ElectionOptions>, 'address'> & { priority: number; address: string; paced?: boolean }) {
    this.keys = o.keys ?? new Keyring([KEY], 1);
    const pacer = o.paced === true ? new SimPacer(this) : null;
    this.pacer = pacer;
    this.election = new Election(
      {
        nodeId: id, groupId: 1, advertIntervalMs: net.intervalMs, preempt: true, preemptDelayMs: 0, epoch: net.clock.now + id, keys: this.keys, clock: this,
        ...o,
        address: addressBytes(o.address),
      },
      {
        advertise: (a: Readonly<Advert>) => {
          if (this.dead) return;
          if (pacer !== null) pacer.send(a);
          else net.send(this, Buffer.from(encodeAdvert(a, this.keys, this.#buf)));
        },
        transition: (from, to, reason) => this.log.push({ at: net.clock.now, from, to, reason }),
        ...(pacer !== null ? { pacer } : {}),
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

  /** The election thread runs again: the datagrams queued meanwhile first, then its overdue timers. */
  release(): void {
    this.held = false;
    for (const b of this.backlog.splice(0)) this.election.receive(b);
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

  add(id: number, o: Omit<Partial<ElectionOptions>, 'address'> & { priority: number; address: string; paced?: boolean }): SimNode {
    const n = new SimNode(this, id, o);
    this.nodes.push(n);
    return n;
  }

  send(from: SimNode, buf: Buffer): void {
    this.wire.push({ from: from.id, buf });
    for (const to of this.nodes) {
      if (to === from || this.isCut(from.id, to.id)) continue;
      this.clock.add(() => {
        if (to.dead || to.paused) return;
        if (to.held) to.backlog.push(buf);
        else to.election.receive(buf);
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

/**
 * advert-pacer.ts on the simulated clock: every advert through it, numbered by one counter; as
 * master it repeats the last one every interval on its own timers (which run while the node's
 * election thread is held), stops by itself when it wakes over three intervals late (the node
 * was paused) or its lease ran out.
 */
export class SimPacer implements ElectionPacer {
  #last: Advert | null = null;
  #seq = 0;
  #timer: Timer | null = null;
  #interval = 0;
  #due = 0;
  #leaseUntil = 0;
  #lastSent = -1;
  #stopped: 'frozen' | 'lease' | null = null;
  #lateMax = 0;
  #late = 0;
  #sent = 0;
  readonly #buf = Buffer.alloc(64);

  constructor(readonly node: SimNode) {}

  send(a: Readonly<Advert>): void {
    this.#last = { ...a, address: Buffer.from(a.address) };
    this.#emit();
  }

  #emit(): void {
    const a = this.#last as Advert;
    a.seq = ++this.#seq;
    this.#lastSent = this.node.net.clock.now;
    this.node.net.send(this.node, Buffer.from(encodeAdvert(a, this.node.keys, this.#buf)));
  }

  start(intervalMs: number, leaseMs: number): void {
    const now = this.node.net.clock.now;
    this.#interval = intervalMs;
    this.#leaseUntil = now + leaseMs;
    this.#stopped = null;
    this.#arm(now + intervalMs);
  }

  #arm(due: number): void {
    const clock = this.node.net.clock;
    this.#due = due;
    if (this.#timer !== null) this.#timer.cancelled = true;
    this.#timer = clock.add(() => {
      this.#timer = null;
      const now = clock.now;
      const late = now - this.#due;
      if (late > 3 * this.#interval) return void (this.#stopped = 'frozen');
      if (now > this.#leaseUntil) return void (this.#stopped = 'lease');
      this.#lateMax = Math.max(this.#lateMax, late);
      if (late > this.#interval) this.#late++;
      this.#sent++;
      this.#emit();
      this.#arm(now + this.#interval);
    }, due - clock.now, this.node, true);
  }

  stop(): void {
    if (this.#timer !== null) this.#timer.cancelled = true;
    this.#timer = null;
  }

  renew(leaseMs: number): void {
    this.#leaseUntil = this.node.net.clock.now + leaseMs;
  }

  get pacing(): boolean {
    return this.#timer !== null;
  }

  state(): ReturnType<ElectionPacer['state']> {
    const now = this.node.net.clock.now;
    return {
      stopped: this.#stopped, sinceSentMs: this.#lastSent < 0 ? null : now - this.#lastSent,
      lateMaxMs: this.#lateMax, late: this.#late, sent: this.#sent,
    };
  }
}

/**
 * The election of one node: which of the pair is MASTER (owns the virtual addresses and
 * forwards) and which is BACKUP, after VRRPv3 (RFC 5798 section 6.4) in milliseconds.
 *
 *  - INIT -> BACKUP at start, with the master-down timer armed: 3 x the master's advert interval
 *    + skew, skew = (256 - priority) x interval / 256, so the higher priority wins a race.
 *  - BACKUP: an advert with priority 0 from the master it follows (the master steps down) makes it
 *    master at once (a pair has no other backup to leave the race to); from another node it cuts
 *    the timer to the skew time; an advert from a master of higher or equal priority (or any,
 *    without preemption, or within the preemption delay) re-arms it; a lower one is ignored, so
 *    the timer runs out and this node takes over (preemption). The timer running out -> MASTER.
 *  - MASTER: an advert right away and every interval. An advert of higher priority, or equal
 *    priority from a higher address, -> BACKUP (split brain resolves by priority, then address);
 *    a lower one from another master is answered at once, so that one yields without waiting, and
 *    the addresses are announced again (transition MASTER -> MASTER): the other announced them
 *    when it took over, so the neighbours point to it (keepalived's garp_lower_prio_repeat).
 *    At most once per master-down time. Priority 0 from the other -> advertise at once.
 *  - FAULT: a failed health check (data plane stalled, tracked link down, sync link down, as the
 *    caller decides) leaves MASTER or BACKUP at once (a master says priority 0 first) and never
 *    takes over; when every fault cleared -> BACKUP. Health checks may instead lower the
 *    priority by a weight (keepalived's tracking weights).
 *  - A master repeats its advert every interval: by a pacer where one is given (a native thread,
 *    advert-pacer.ts; our timer then only renews its lease and checks on it), else by our timer.
 *  - A master whose next advert is more than three intervals overdue (seen when its timer fires,
 *    or when an advert comes first; with a pacer, its word) was frozen (SIGSTOP, a stalled machine) long enough for the
 *    backup to have taken over (its master-down time is 3 x interval + skew after our last
 *    advert, skew < interval): it yields to BACKUP instead of forwarding on as a second master.
 *    Less late (a scheduling hiccup on a loaded machine), it goes on: if the backup did take
 *    over, the split brain resolves as above within a delivery.
 *  - Switchover (planned): the master demotes itself to priority 1 and steps down (priority 0):
 *    the backup takes over at once. The demotion lasts until this node is master again.
 *
 * No I/O and no timers of its own: the clock and timers are injected (ElectionClock) and what
 * it decides goes out through ElectionOutput, so the state machine is tested on a simulated clock
 * and runs off the engine's event loop for real (see the README).
 */
import type { Keyring } from '../sync/auth.js';
import {
  AdvertDrop, Role, addressText, decodeAdvert, newAdvert, roleNames, type Advert, type AdvertDropReason, type RoleCode,
} from './advert.js';

export interface ElectionClock {
  now(): number;
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(handle: unknown): void;
}

export interface ElectionOptions {
  nodeId: number;
  /** Adverts of another group (another pair on the same links) are ignored. */
  groupId: number;
  /** 1-254. */
  priority: number;
  /** 1-65535 ms. */
  advertIntervalMs: number;
  /** Take over from a master of lower priority (default true, as VRRP). */
  preempt: boolean;
  /** After becoming BACKUP, let a lower-priority master be for this long before preempting it. */
  preemptDelayMs: number;
  /** This node's address (16 bytes, advert.ts addressBytes): the tie-break. */
  address: Buffer;
  /** Start time of this node (ms since 1970): adverts of an earlier start of a peer are stale. */
  epoch: number;
  keys: Keyring;
  clock: ElectionClock;
}

export interface ElectionOutput {
  /** Send this advert on every link (and, with a pacer, make it the one the pacer repeats). */
  advertise(a: Readonly<Advert>): void;
  /** The role changed (takeover, release, notify hooks). */
  transition(from: RoleCode, to: RoleCode, reason: string): void;
  /**
   * A sender that repeats the master's advert on a thread of its own (advert-pacer.ts), so that
   * a pause of the election's thread (its GC, a busy machine) does not silence the master.
   * Without one, the election's own timer sends every advert.
   */
  pacer?: ElectionPacer;
}

/** What the election needs of a pacer (AdvertPacer; a fake on the simulated clock in tests). */
export interface ElectionPacer {
  /** Repeat the advert last given to advertise() every intervalMs from now + intervalMs while the lease (leaseMs from now) runs. */
  start(intervalMs: number, leaseMs: number): void;
  stop(): void;
  renew(leaseMs: number): void;
  state(): {
    /** Why it stopped repeating by itself: it woke over three intervals late (frozen), or the lease ran out. */
    stopped: 'frozen' | 'lease' | null;
    /** How long ago the last advert went out (ms; null: none yet). */
    sinceSentMs: number | null;
    /** Its wake-ups: at worst this late (ms); how many over one interval late. */
    lateMaxMs: number;
    late: number;
    /** Adverts it sent by itself. */
    sent: number;
  };
}

/**
 * How long a pacer repeats the master's advert without hearing from the election: its thread is
 * held this long (a GC, a loaded machine) without the master going silent; past it, a hung
 * election lets the backup take over.
 */
export function pacerLeaseMs(intervalMs: number): number {
  return Math.max(3 * intervalMs, 200);
}

export class ElectionConfigError extends Error {
  readonly code = 'FAILOVER_CONFIG';
  constructor(message: string) {
    super(message);
    this.name = 'ElectionConfigError';
  }
}

/** What the node knows of the master it follows (BACKUP) or last saw. */
export interface MasterView {
  id: number;
  priority: number;
  intervalMs: number;
  /** ms (own clock) of its last advert. */
  lastSeen: number;
  /** Its start time and its sync address (text), from its adverts: where its peer link listens. */
  epoch: number;
  address: string;
}

export interface ElectionStats {
  advertsSent: number;
  advertsReceived: number;
  drops: Partial<Record<AdvertDropReason, number>>;
  transitions: number;
  /** Adverts from another master while this node was master (two masters seen). */
  splitBrainSeen: number;
  /** Takeovers because the master's process was gone (its peer link closed). */
  peerGone: number;
  /**
   * As master: how late the advert timer fired at worst (ms past its due time), and how many
   * times it fired over one interval late. The thread running the election was held that long;
   * over three intervals the master yields (#yieldIfFrozen), and a backup may take over.
   */
  advertLateMaxMs: number;
  advertsLate: number;
}

function masterView(a: Advert, now: number): MasterView {
  return { id: a.sender, priority: a.priority, intervalMs: a.intervalMs, lastSeen: now, epoch: a.epoch, address: addressText(a.address) };
}

/** Peers whose replay state is kept at most (a pair has one; more is someone else's group). */
const MAX_PEERS = 16;
/** Name of the demotion a switchover sets. */
const SWITCHOVER = 'switchover';

export class Election {
  role: RoleCode = Role.INIT;
  master: MasterView | null = null;
  readonly #stats: ElectionStats = { advertsSent: 0, advertsReceived: 0, drops: {}, transitions: 0, splitBrainSeen: 0, peerGone: 0, advertLateMaxMs: 0, advertsLate: 0 };
  readonly #o: ElectionOptions;
  readonly #out: ElectionOutput;
  readonly #in = newAdvert();
  readonly #adv: Advert;
  /** Master's advert interval as learned from its adverts (own interval until then). */
  #masterIntervalMs: number;
  #masterDown: unknown = null;
  #advertTimer: unknown = null;
  #backupSince = 0;
  /** The master whose adverts this BACKUP ignores to preempt it. */
  #preempting = 0;
  /** When this master's next advert is due (its timer may fire late: see #yieldIfFrozen). */
  #advertDue = 0;
  /** When this master last had its addresses announced (on becoming master, or again). */
  #announcedAt = 0;
  readonly #faults = new Set<string>();
  readonly #penalties = new Map<string, number>();
  readonly #peers = new Map<number, { epoch: number; seq: number }>();

  constructor(o: ElectionOptions, out: ElectionOutput) {
    if (!Number.isInteger(o.priority) || o.priority < 1 || o.priority > 254) throw new ElectionConfigError(`failover priority ${o.priority} is not an integer 1-254`);
    if (!Number.isInteger(o.advertIntervalMs) || o.advertIntervalMs < 1 || o.advertIntervalMs > 65535) {
      throw new ElectionConfigError(`failover advert interval ${o.advertIntervalMs} ms is not an integer 1-65535`);
    }
    if (!Number.isInteger(o.nodeId) || o.nodeId < 1 || o.nodeId > 0xffffffff) throw new ElectionConfigError(`failover node id ${o.nodeId} is not an integer 1-4294967295`);
    if (o.address.length !== 16) throw new ElectionConfigError('failover address must be 16 bytes (addressBytes())');
    this.#o = o;
    this.#out = out;
    this.#masterIntervalMs = o.advertIntervalMs;
    this.#adv = { ...newAdvert(), groupId: o.groupId, intervalMs: o.advertIntervalMs, sender: o.nodeId, epoch: o.epoch, address: o.address };
  }

  /** Counters; with a pacer, its adverts and lateness folded in. */
  get stats(): ElectionStats {
    if (this.#out.pacer !== undefined) this.#takePacerStats(this.#out.pacer);
    return this.#stats;
  }

  /** The priority advertised: configured, less health penalties and demotions, at least 1. */
  get priority(): number {
    let p = this.#o.priority;
    for (const w of this.#penalties.values()) p -= w;
    return Math.max(1, Math.min(254, p));
  }

  get faults(): string[] {
    return [...this.#faults];
  }

  get roleName(): string {
    return roleNames[this.role];
  }

  start(): void {
    if (this.role !== Role.INIT) return;
    if (this.#faults.size > 0) this.#become(Role.FAULT, `fault: ${this.faults.join(', ')}`);
    else this.#becomeBackup('start');
  }

  /** Stop (shutdown): a master steps down first (priority 0), so the backup takes over at once. */
  stop(): void {
    if (this.role === Role.MASTER) this.#advertise(0);
    this.#clearTimers();
    if (this.role !== Role.INIT) this.#become(Role.INIT, 'stop');
  }

  /**
   * While held, this node does not preempt a running master of lower priority (it still takes
   * over when there is no master): the daemon holds it until its state sync has the peer's table,
   * so a restarted node of higher priority does not take the addresses with an empty table.
   */
  holdPreemption(on: boolean): void {
    this.#preemptionHeld = on;
  }

  #preemptionHeld = false;

  /** Planned switchover: the master demotes itself and steps down. Returns false if not master. */
  switchover(): boolean {
    if (this.role !== Role.MASTER) return false;
    this.#penalties.set(SWITCHOVER, 254);
    this.#advertise(0);
    this.#becomeBackup('switchover');
    return true;
  }

  /**
   * A health check's state: `fault` puts the node in FAULT while it lasts; `penalty` lowers the
   * priority by that much; null clears the check.
   */
  setHealth(name: string, state: { fault: true } | { penalty: number } | null): void {
    const wasFault = this.#faults.size > 0;
    const before = this.priority;
    this.#faults.delete(name);
    this.#penalties.delete(name);
    if (state !== null && 'fault' in state) this.#faults.add(name);
    else if (state !== null && state.penalty > 0) this.#penalties.set(name, state.penalty);
    if (this.role === Role.INIT) return;
    const isFault = this.#faults.size > 0;
    if (isFault && this.role !== Role.FAULT) {
      if (this.role === Role.MASTER) this.#advertise(0);
      this.#clearTimers();
      this.#become(Role.FAULT, `fault: ${this.faults.join(', ')}`);
    } else if (!isFault && wasFault) {
      this.#becomeBackup('healthy');
    } else if (this.role === Role.MASTER && this.priority !== before) {
      // Tell the backup at once: with preemption it takes over if now higher.
      this.#advertise(this.priority);
    }
  }

  /** A datagram from any election link. Counted and dropped unless it is a fresh advert of our group. */
  receive(buf: Buffer): void {
    const a = this.#in;
    const bad = decodeAdvert(buf, this.#o.keys, a);
    if (bad !== null) return this.#drop(bad);
    if (a.groupId !== this.#o.groupId) return this.#drop(AdvertDrop.OTHER_GROUP);
    if (a.sender === this.#o.nodeId) return this.#drop(AdvertDrop.OWN);
    const p = this.#peers.get(a.sender);
    if (p !== undefined) {
      if (a.epoch < p.epoch) return this.#drop(AdvertDrop.STALE_EPOCH);
      if (a.epoch === p.epoch && a.seq === p.seq) return this.#drop(AdvertDrop.DUPLICATE);
      if (a.epoch === p.epoch && (a.seq - p.seq) >>> 0 > 0x7fffffff) return this.#drop(AdvertDrop.REPLAY);
      p.epoch = a.epoch;
      p.seq = a.seq;
    } else {
      if (this.#peers.size >= MAX_PEERS) this.#peers.delete(this.#peers.keys().next().value as number);
      this.#peers.set(a.sender, { epoch: a.epoch, seq: a.seq });
    }
    this.#stats.advertsReceived++;
    this.#onAdvert(a);
  }

  /**
   * The master this BACKUP follows is gone: its process closed the peer link (peer-link.ts), so
   * it was killed or crashed and sent no priority 0. Take over at once: the skew time that
   * priority 0 waits for lets the best of several backups win, and a pair has one. Anything else
   * (another node, an older start of the master, this node not BACKUP) is ignored: the link only
   * makes a takeover sooner, the master-down timer still decides everything it cannot see.
   */
  peerGone(id: number, epoch: number, why: string): void {
    const m = this.master;
    if (this.role !== Role.BACKUP || m === null || m.id !== id || m.epoch !== epoch) return;
    this.#stats.peerGone++;
    this.#becomeMaster(`master ${id}'s process is gone (${why})`);
  }

  #onAdvert(a: Advert): void {
    const now = this.#o.clock.now();
    switch (this.role) {
      case Role.BACKUP: {
        if (a.priority === 0) {
          // A master steps down (its links failed, it stops, a switchover). The one this node
          // follows: take over at once. VRRP waits the skew time so that the best of several
          // backups wins; a pair has one backup, and at a 1 s interval the skew alone was 0.6 s of
          // outage. Another node's step-down: the skew time, as VRRP.
          const followed = this.master;
          this.master = null;
          if (followed !== null && followed.id === a.sender) {
            this.#becomeMaster(`master ${a.sender} stepped down`);
            return;
          }
          this.#armMasterDown(this.#skewMs());
          return;
        }
        const mine = this.priority;
        const inDelay = now - this.#backupSince < this.#o.preemptDelayMs;
        if (!this.#o.preempt || a.priority >= mine || inDelay || this.#preemptionHeld) {
          this.master = masterView(a, now);
          this.#masterIntervalMs = a.intervalMs;
          this.#armMasterDown(this.#masterDownMs());
          this.#preempting = 0;
          return;
        }
        // A lower master and preemption: let the timer run out and take over.
        this.master = masterView(a, now);
        this.#preempting = a.sender;
        return;
      }
      case Role.MASTER: {
        if (this.#yieldIfFrozen()) {
          // Then heard as a backup: the other master's advert re-arms our master-down timer.
          this.#onAdvert(a);
          return;
        }
        // Another master: split brain (a partition healed, a node woke from a stall). Priority 0
        // is the other stepping down, having had the addresses.
        if (a.priority !== 0) this.#stats.splitBrainSeen++;
        if (a.priority > this.priority || (a.priority === this.priority && this.#higherThanMe(a))) {
          this.master = masterView(a, now);
          this.#masterIntervalMs = a.intervalMs;
          // Step down as a master does (priority 0): the winner hears that we had the addresses.
          this.#advertise(0);
          this.#becomeBackup(`master ${a.sender} has priority ${a.priority}`);
          return;
        }
        // The other one yields when it hears this. It announced the addresses when it took over,
        // so the neighbours may point to it: announce them again (once per master-down time).
        this.#advertise(this.priority);
        if (now - this.#announcedAt >= this.#masterDownMs()) {
          this.#announcedAt = now;
          this.#out.transition(Role.MASTER, Role.MASTER, `master ${a.sender} ${a.priority === 0 ? 'stepped down' : `with priority ${a.priority} heard`}: announcing the addresses again`);
        }
        return;
      }
      default:
        // INIT, FAULT: remember who is master, nothing else.
        if (a.priority > 0 && a.role === Role.MASTER) this.master = masterView(a, now);
    }
  }

  /** The advert's address is above ours (bytewise, as VRRP compares addresses). */
  #higherThanMe(a: Advert): boolean {
    return Buffer.compare(a.address, this.#o.address) > 0;
  }

  #skewMs(): number {
    return ((256 - this.priority) * this.#masterIntervalMs) / 256;
  }

  #masterDownMs(): number {
    return 3 * this.#masterIntervalMs + this.#skewMs();
  }

  #becomeBackup(reason: string): void {
    this.#clearTimers();
    this.#backupSince = this.#o.clock.now();
    this.#preempting = 0;
    this.#armMasterDown(this.#masterDownMs());
    this.#become(Role.BACKUP, reason);
  }

  #becomeMaster(reason: string): void {
    this.#clearTimers();
    this.#penalties.delete(SWITCHOVER);
    this.master = null;
    this.#announcedAt = this.#o.clock.now();
    this.#become(Role.MASTER, reason);
    // (The transition handler has made the entries live and claimed the addresses by now.)
    if (this.role !== Role.MASTER) return;
    this.#advertise(this.priority);
    this.#armAdvert();
  }

  #armMasterDown(ms: number): void {
    const c = this.#o.clock;
    if (this.#masterDown !== null) c.clearTimer(this.#masterDown);
    this.#masterDown = c.setTimer(() => {
      this.#masterDown = null;
      if (this.role !== Role.BACKUP) return;
      const m = this.master;
      if (m !== null && this.#preempting === m.id) this.#becomeMaster(`preempting master ${m.id} (priority ${m.priority})`);
      else this.#becomeMaster(m === null ? 'no master' : `master ${m.id} silent`);
    }, ms);
  }

  /** A new master's adverts: by the pacer (renewed by our timer) or by our timer. */
  #armAdvert(): void {
    const pacer = this.#out.pacer;
    if (pacer !== undefined) {
      pacer.start(this.#o.advertIntervalMs, pacerLeaseMs(this.#o.advertIntervalMs));
      this.#pacing = true;
    }
    this.#armAdvertTimer();
  }

  #armAdvertTimer(): void {
    const c = this.#o.clock;
    this.#advertDue = c.now() + this.#o.advertIntervalMs;
    this.#advertTimer = c.setTimer(() => {
      this.#advertTimer = null;
      if (this.role !== Role.MASTER) return;
      if (this.#pacing) {
        // The pacer sends; this thread's lateness is its own (a GC), not the master's silence.
        if (this.#yieldIfFrozen()) return;
        this.#out.pacer?.renew(pacerLeaseMs(this.#o.advertIntervalMs));
        this.#armAdvertTimer();
        return;
      }
      const late = c.now() - this.#advertDue;
      if (late > this.#stats.advertLateMaxMs) this.#stats.advertLateMaxMs = late;
      if (late > this.#o.advertIntervalMs) this.#stats.advertsLate++;
      if (this.#yieldIfFrozen()) return;
      this.#advertise(this.priority);
      this.#armAdvertTimer();
    }, this.#o.advertIntervalMs);
  }

  /**
   * A master whose adverts stopped for more than three intervals was frozen (SIGSTOP, a stalled
   * machine) long enough for a backup to take over: forwarding on as a second master would split
   * the flows, so it yields and listens (the other's adverts, or their absence within the
   * master-down time, decide). Checked when the advert timer fires and when an advert arrives
   * first (the timer may come after the datagrams queued while it was frozen). With a pacer, its
   * word decides (it stopped by itself, or its last advert is that old), whichever of its thread
   * and ours wakes first; without, our own timer's lateness.
   */
  #yieldIfFrozen(): boolean {
    if (this.#pacing && this.#out.pacer !== undefined) {
      const s = this.#takePacerStats(this.#out.pacer);
      if (s.stopped === null && (s.sinceSentMs ?? 0) <= 3 * this.#o.advertIntervalMs) return false;
      this.#becomeBackup(s.stopped === 'lease'
        ? `the advert pacer's lease ran out (this thread was held over ${pacerLeaseMs(this.#o.advertIntervalMs)} ms): the peer may have taken over`
        : `stalled${s.sinceSentMs !== null ? ` ${Math.round(s.sinceSentMs)} ms` : ''}: the peer may have taken over`);
      return true;
    }
    const silentMs = this.#o.clock.now() - this.#advertDue;
    if (silentMs <= 3 * this.#o.advertIntervalMs) return false;
    this.#becomeBackup(`stalled ${Math.round(silentMs)} ms: the peer may have taken over`);
    return true;
  }

  /** The pacer's state, its lateness and adverts folded into the stats. */
  #takePacerStats(pacer: ElectionPacer): ReturnType<ElectionPacer['state']> {
    const s = pacer.state();
    this.#stats.advertLateMaxMs = Math.max(this.#stats.advertLateMaxMs, s.lateMaxMs);
    this.#stats.advertsLate = s.late;
    this.#pacerSent = s.sent;
    this.#stats.advertsSent = this.#sentNow + s.sent;
    return s;
  }

  /** Adverts the election sent itself, and the pacer's as last read: advertsSent is their sum. */
  #sentNow = 0;
  #pacerSent = 0;
  #pacing = false;

  #clearTimers(): void {
    const c = this.#o.clock;
    if (this.#masterDown !== null) c.clearTimer(this.#masterDown);
    if (this.#advertTimer !== null) c.clearTimer(this.#advertTimer);
    this.#masterDown = this.#advertTimer = null;
    if (this.#pacing && this.#out.pacer !== undefined) {
      this.#out.pacer.stop();
      this.#pacing = false;
    }
  }

  #advertise(priority: number): void {
    const a = this.#adv;
    a.priority = priority;
    a.role = this.role;
    a.seq = (a.seq + 1) >>> 0;
    this.#sentNow++;
    this.#stats.advertsSent = this.#sentNow + this.#pacerSent;
    this.#out.advertise(a);
  }

  #become(to: RoleCode, reason: string): void {
    const from = this.role;
    if (from === to) return;
    this.role = to;
    this.#stats.transitions++;
    this.#out.transition(from, to, reason);
  }

  #drop(why: AdvertDropReason): void {
    this.#stats.drops[why] = (this.#stats.drops[why] ?? 0) + 1;
  }
}

/**
 * The daemon's failover: the election thread (ElectionRunner) on the configured links, the
 * takeover steps on its transitions (entries live, then addresses claimed and announced; on the
 * way out addresses released first), the notify script, and logs. Started once sync runs (the
 * adverts are signed with the sync keys); stopped first on shutdown, so that a master steps down
 * (priority 0: the peer takes over within its skew time) and releases its addresses before the
 * data plane goes.
 */
import { execFile } from 'node:child_process';
import { networkInterfaces } from 'node:os';
import type { Logger } from 'pino';
import {
  DeathWatch, ElectionRunner, FailoverStartError, Role, Takeover, VirtualAddresses, addressBytes, roleNames, type RoleCode, type WorkerEvent,
} from '../../failover/index.js';
import type { FailoverStatus } from '../control/index.js';
import type { FailoverMetricsView } from '../metrics/index.js';
import type { Engine } from '../engine/index.js';
import type { FailoverConfig } from './failover-config.js';
import type { SyncNode } from '../../sync/index.js';
import type { SyncConfig } from './sync-config.js';

/** This node's IPv4 address on an interface (the election sends from it and joins there). */
function ipv4Of(name: string): string {
  const a = networkInterfaces()[name]?.find((x) => x.family === 'IPv4' && !x.internal);
  if (a === undefined) throw new FailoverStartError(`failover: link ${name} has no IPv4 address (or does not exist); give it one or remove it from failover.links`);
  return a.address;
}

/** How often a starting node checks whether its resync is done (to stop holding preemption). */
const RESYNC_HOLD_POLL_MS = 10;

/** How often the election's counters are fetched for the metrics (they move only per advert). */
const STATUS_POLL_MS = 1000;

export class NodeFailover {
  role: RoleCode = Role.INIT;
  /** What the metrics read: the role now, and the counters as of the last poll. */
  readonly view: FailoverMetricsView = { role: 'init', priority: 0, transitions: {}, advertsSent: 0, advertsReceived: 0, drops: {}, advertLateMaxMs: 0, advertsLate: 0 };
  readonly #poll: NodeJS.Timeout;
  readonly #runner: ElectionRunner;
  readonly #takeover: Takeover;
  readonly #config: FailoverConfig;

  readonly #vips: VirtualAddresses;
  readonly #log: Logger;

  readonly #watch: DeathWatch | null;

  private constructor(runner: ElectionRunner, takeover: Takeover, vips: VirtualAddresses, config: FailoverConfig, log: Logger, watch: DeathWatch | null) {
    this.#watch = watch;
    this.#log = log;
    this.#runner = runner;
    this.#takeover = takeover;
    this.#vips = vips;
    this.#config = config;
    this.view.priority = config.priority;
    this.#poll = setInterval(() => void this.status().catch(() => undefined), STATUS_POLL_MS);
    this.#poll.unref();
  }

  /**
   * `syncNode`: the state sync. Until it holds the peer's whole table (its startup resync done),
   * preemption is held, so a restarted node of higher priority does not take over from the
   * running master before its state is in place (with nobody master the election runs as usual,
   * and as master it has nothing to wait for).
   */
  static async start(c: FailoverConfig, sync: SyncConfig, engine: Engine, log: Logger, syncNode?: SyncNode): Promise<NodeFailover> {
    const links = c.links.map((name) => ({ name, address: ipv4Of(name), ...(c.unicastPeers !== null ? { peer: c.unicastPeers[name] } : {}) }));
    const vips = new VirtualAddresses(c.virtualAddresses);
    // The ip process starts now, not at a takeover (starting a process costs this one tens of ms).
    vips.start();
    for (const f of vips.fallbacks) log.warn(`failover: virtual addresses announced with arping, not by the kernel: ${f}`);
    // A node killed as master (SIGKILL, a crash) left its addresses behind: it starts as backup,
    // so they go before anything is heard (as the data plane replaces its leftover rules).
    await vips.release();
    const takeover = new Takeover(engine.conntrack.table, engine.conntrack.tcp, vips);
    takeover.onStep = (s) => {
      if (s.error) log.error({ step: s }, `failover: ${s.to}: ${s.error}`);
      else if (s.reclaim === true) log.info({ step: s }, `failover: master still (a second master was heard): ${s.entries} TCP entries re-learn their windows, addresses re-announced`);
      else log.info({ step: s }, `failover: ${s.to === 'master' ? `${s.entries} entries live${s.lazy ? ' (each at its first packet or by the sweep)' : ''}, addresses claimed and announced` : `addresses released, ${s.entries} entries now the peer's`}`);
    };
    takeover.onSweep = (s) => log.info({ sweep: s }, `failover: sweep ${s.cancelled ? 'cancelled (no longer master)' : 'done'}: ${s.entries} entries made live in ${s.ms.toFixed(1)} ms, ${s.slices} slices`);
    // The death watch: a master killed outright shuts its peer links down at once (death-watch.ts).
    // Started now, while this process is small (a process start copies its page tables).
    let watch: DeathWatch | null = null;
    if (c.peerLink) {
      watch = DeathWatch.start((code, signal) => log.error({ code, signal }, 'failover: the death watch ended before the daemon: a SIGKILLed master\'s peer links now close only once its memory is freed (tens of ms later)'));
    }
    let self: NodeFailover | null = null;
    const early: Extract<WorkerEvent, { type: 'transition' }>[] = [];
    const onTransition = (e: Extract<WorkerEvent, { type: 'transition' }>): void => {
      if (self === null) early.push(e);
      else self.#transition(e, log);
    };
    const runner = await ElectionRunner.start({
      nodeId: sync.nodeId, groupId: c.groupId, priority: c.priority, advertIntervalMs: c.advertIntervalMs, preempt: c.preempt,
      preemptDelayMs: c.preemptDelayMs, addressHex: addressBytes(sync.address).toString('hex'), epoch: Date.now(),
      keys: sync.keys.map((k) => ({ id: k.id, secretHex: k.secret.toString('hex') })), sendKeyId: sync.sendKey,
      group: c.group, port: c.port, links, stallMs: c.stallMs, track: c.track.map((t) => ({ name: t.interface, weight: t.weight })),
      holdPreemption: syncNode !== undefined, nice: c.threadNice, rtPriority: c.realtimePriority, peerLink: c.peerLink,
      ...(watch !== null ? { deathWatchSock: watch.sock } : {}),
    }, onTransition);
    if (runner.thread.error !== null) log.warn(`failover: ${runner.thread.error}; the election may be late on a busy machine`);
    self = new NodeFailover(runner, takeover, vips, c, log, watch);
    for (const e of early) self.#transition(e, log);
    if (syncNode) self.#holdUntilSynced(syncNode, log);
    log.info({ priority: c.priority, advertIntervalMs: c.advertIntervalMs, thread: runner.thread, links, group: c.unicastPeers !== null ? `unicast:${c.port}` : `${c.group}:${c.port}`, virtualAddresses: c.virtualAddresses }, 'failover: election started');
    return self;
  }

  #hold: NodeJS.Timeout | null = null;

  /** Stop holding preemption once the peer's table is here, or this node is master. */
  #holdUntilSynced(sync: SyncNode, log: Logger): void {
    const check = (): void => {
      const synced = sync.peer?.synced === true;
      if (!synced && this.role !== Role.MASTER) return;
      if (this.#hold !== null) clearInterval(this.#hold);
      this.#hold = null;
      this.#runner.holdPreemption(false);
      log.info(`failover: ${synced ? 'the peer\'s table is here (resync done)' : 'master'}: preemption no longer held`);
    };
    this.#hold = setInterval(check, RESYNC_HOLD_POLL_MS);
    check();
  }

  #transition(e: Extract<WorkerEvent, { type: 'transition' }>, log: Logger): void {
    if (e.from === e.to) {
      // Master still, after a second master was heard: claim and announce the addresses again.
      log.info({ reason: e.reason }, `failover: ${e.reason}`);
      void this.#takeover.transition(e.from, e.to);
      return;
    }
    this.role = e.to;
    const [from, to] = [roleNames[e.from], roleNames[e.to]];
    this.view.role = to;
    this.view.transitions[to] = (this.view.transitions[to] ?? 0) + 1;
    log.info({ from, to, reason: e.reason }, `failover: ${from} -> ${to} (${e.reason})`);
    const steps = this.#takeover.transition(e.from, e.to);
    const script = this.#config.notify;
    if (script !== null) {
      // After the takeover's steps: starting the script is a process start, which holds this
      // thread for tens of ms; the addresses must not wait for it.
      void steps.then(() => execFile(script, [to, from, e.reason], { timeout: 10_000 }, (err, _out, stderr) => {
        if (err) log.error({ err, script, stderr }, `failover: notify script failed on ${from} -> ${to}`);
      }));
    }
  }

  async status(): Promise<FailoverStatus> {
    const s = await this.#runner.status();
    Object.assign(this.view, {
      priority: s.priority, advertsSent: s.stats.advertsSent, advertsReceived: s.stats.advertsReceived, drops: { ...s.stats.drops },
      advertLateMaxMs: s.stats.advertLateMaxMs, advertsLate: s.stats.advertsLate,
    });
    return {
      role: roleNames[s.role], priority: s.priority, faults: s.faults,
      master: s.master === null ? null : { id: s.master.id, priority: s.master.priority },
      stats: { ...s.stats, drops: { ...s.stats.drops } as Record<string, number> },
      peerLink: s.peerLink === null ? null : { ...s.peerLink, refused: { ...s.peerLink.refused } },
      deathWatch: s.deathWatch === null ? null : { ...s.deathWatch, running: this.#watch !== null && this.#watch.exited === null },
      pacer: s.pacer === null ? null : {
        scheduling: s.pacer.scheduling, schedError: s.pacer.schedError, pacing: s.pacer.pacing, sent: s.pacer.sent, sentNow: s.pacer.sentNow,
        lateMaxMs: s.pacer.lateMaxMs, late: s.pacer.late, errors: s.pacer.errors,
      },
      virtualAddresses: this.#config.virtualAddresses.map((v) => ({ ...v })),
      steps: this.#takeover.steps.map((x) => ({ ...x })),
    };
  }

  switchover(): Promise<boolean> {
    return this.#runner.switchover();
  }

  /** Step down (priority 0) and release the addresses, then end the election thread. */
  async stop(): Promise<void> {
    clearInterval(this.#poll);
    if (this.#hold !== null) clearInterval(this.#hold);
    const wasMaster = this.role === Role.MASTER;
    await this.#runner.stop();
    // The stop's own transition (master -> init) has queued the release; make sure of it.
    if (wasMaster && this.role === Role.MASTER) {
      this.role = Role.INIT;
      await this.#takeover.transition(Role.MASTER, Role.INIT);
    }
    await this.#takeover.idle();
    for (const e of this.#vips.close()) this.#log.warn(`failover: arp_notify not put back: ${e}`);
  }
}

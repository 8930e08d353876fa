/**
 * The main thread's handle on the election, which runs in a worker thread of its own
 * (election-worker.ts) so that the packet path never starves it. Transitions come back as
 * events; health checks, switchover and status go in as messages. The main thread's liveness is
 * the data plane's heartbeat: a counter it bumps on its own event loop (every stallMs / 4); if
 * that loop stops for stallMs, the worker puts the node in FAULT and a master steps down.
 */
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { RoleCode } from './advert.js';
import type { ElectionOptions, ElectionStats, MasterView } from './election.js';
import type { PeerLinkStats } from './peer-link.js';
import type { DeathWatchLinks } from './death-watch.js';
import type { PacerState } from './advert-pacer.js';

export interface RunnerLink {
  /** Interface name (for status and errors). */
  name: string;
  /** This node's IPv4 address on the link: the membership and the outgoing interface. */
  address: string;
  /** The peer's address on the link: adverts go to it (unicast) instead of the group. */
  peer?: string;
}

/** The election's settings as plain data (it crosses to the worker thread), and its links. */
export interface RunnerConfig extends Pick<ElectionOptions, 'nodeId' | 'groupId' | 'priority' | 'advertIntervalMs' | 'preempt' | 'preemptDelayMs' | 'epoch'> {
  /** Tie-break address, 16 bytes as hex (advert.ts addressBytes). */
  addressHex: string;
  keys: { id: number; secretHex: string }[];
  sendKeyId: number;
  /** Multicast group and UDP port of the adverts. */
  group: string;
  port: number;
  links: RunnerLink[];
  /** The main loop stuck this long -> FAULT; 0: not watched. */
  stallMs: number;
  /**
   * Interfaces watched (operstate, every min(interval, 100 ms)): down -> FAULT ('link NAME
   * down'), or with a weight the priority lowered by it while down.
   */
  track?: { name: string; weight: number | null }[];
  /** Start with preemption held (Election.holdPreemption), until holdPreemption(false). */
  holdPreemption?: boolean;
  /**
   * The election thread's nice value (-20..19; this thread only, not the process), so that on a
   * machine busy with the packet path and everything else the adverts and timers run on time.
   * Undefined: left as it is.
   */
  nice?: number;
  /**
   * The advert pacer thread's SCHED_FIFO priority (1-99; advert-pacer.ts), so that the master's
   * adverts leave on time whatever the rest of the process does; 0 or undefined: normal
   * scheduling at `nice`. Refused (no CAP_SYS_NICE): normal scheduling, said in the status.
   */
  rtPriority?: number;
  /**
   * The peer link (peer-link.ts): TCP on the election port of the sync address, so a backup
   * learns of its master's death (SIGKILL, crash) at once. Default on; false: the master-down
   * timer alone.
   */
  peerLink?: boolean;
  /**
   * The death watch's socket (death-watch.ts, started by the daemon): the links this node accepts
   * as master are handed to the watcher, which shuts them down the moment this process dies.
   */
  deathWatchSock?: number;
}

export type WorkerRequest =
  | { type: 'health'; name: string; state: { fault: true } | { penalty: number } | null }
  | { type: 'switchover' }
  | { type: 'hold-preemption'; on: boolean }
  | { type: 'status' }
  | { type: 'stop' };

export interface ElectionStatus {
  type: 'status';
  role: RoleCode;
  priority: number;
  faults: string[];
  master: MasterView | null;
  stats: ElectionStats;
  sendErrors: Record<string, number>;
  /** The peer link's state (null when off): up = proved to the master followed. */
  peerLink: (PeerLinkStats & { up: boolean }) | null;
  /** Links handed to the death watch and released (null when it is not running). */
  deathWatch: DeathWatchLinks['stats'] | null;
  /** The advert pacer's thread (null before the sockets opened): scheduling, adverts, lateness, send errors. */
  pacer: PacerState | null;
}

export type WorkerEvent =
  | { type: 'transition'; from: RoleCode; to: RoleCode; reason: string; at: number }
  | ElectionStatus
  | { type: 'switchover'; done: boolean }
  | { type: 'started'; thread: { tid: number | null; nice: number | null; error: string | null } }
  | { type: 'stopped' }
  | { type: 'error'; message: string };

export class FailoverStartError extends Error {
  readonly code = 'FAILOVER_START';
  constructor(message: string) {
    super(message);
    this.name = 'FailoverStartError';
  }
}

/** The compiled worker: next to this file in dist/, or in dist/ when this runs from source (tests). */
const workerPath = fileURLToPath(new URL(import.meta.url.includes('/dist/') ? './election-worker.js' : '../../dist/src/failover/election-worker.js', import.meta.url));

export class ElectionRunner {
  readonly #worker: Worker;
  readonly #beats: Int32Array;
  readonly #beatTimer: NodeJS.Timeout | null;
  /** The election thread's id and nice value as set at start (or why it could not be set). */
  thread: { tid: number | null; nice: number | null; error: string | null } = { tid: null, nice: null, error: null };
  #waiters: { type: WorkerEvent['type']; resolve: (e: WorkerEvent) => void }[] = [];

  private constructor(worker: Worker, heartbeat: SharedArrayBuffer, stallMs: number, onTransition: (e: Extract<WorkerEvent, { type: 'transition' }>) => void) {
    this.#worker = worker;
    this.#beats = new Int32Array(heartbeat);
    this.#beatTimer = stallMs > 0 ? setInterval(() => this.beat(), Math.max(1, stallMs / 4)) : null;
    this.#beatTimer?.unref();
    worker.on('message', (e: WorkerEvent) => {
      if (e.type === 'transition') onTransition(e);
      const i = this.#waiters.findIndex((w) => w.type === e.type);
      if (i >= 0) this.#waiters.splice(i, 1)[0].resolve(e);
    });
  }

  /** Start the election thread; resolves once its sockets are open and it is running. */
  static async start(cfg: RunnerConfig, onTransition: (e: Extract<WorkerEvent, { type: 'transition' }>) => void): Promise<ElectionRunner> {
    const heartbeat = new SharedArrayBuffer(4);
    const worker = new Worker(workerPath, { workerData: { ...cfg, heartbeat } });
    const r = new ElectionRunner(worker, heartbeat, cfg.stallMs, onTransition);
    const first = await Promise.race([
      r.#next('started'),
      r.#next('error'),
      new Promise<WorkerEvent>((_, reject) => worker.once('error', (e) => reject(new FailoverStartError(`failover: the election thread failed: ${e.message}`)))),
    ]);
    if (first.type === 'error') {
      await worker.terminate();
      throw new FailoverStartError(first.message);
    }
    if (first.type === 'started') r.thread = first.thread;
    return r;
  }

  /** The data plane is alive (called by the owner's loop; the runner also beats on its own). */
  beat(): void {
    Atomics.add(this.#beats, 0, 1);
  }

  setHealth(name: string, state: { fault: true } | { penalty: number } | null): void {
    this.#post({ type: 'health', name, state });
  }

  holdPreemption(on: boolean): void {
    this.#post({ type: 'hold-preemption', on });
  }

  async switchover(): Promise<boolean> {
    const p = this.#next('switchover');
    this.#post({ type: 'switchover' });
    return ((await p) as { done: boolean }).done;
  }

  async status(): Promise<ElectionStatus> {
    const p = this.#next('status');
    this.#post({ type: 'status' });
    return (await p) as ElectionStatus;
  }

  /** Step down (a master sends priority 0), close the sockets, end the thread. */
  async stop(): Promise<void> {
    if (this.#beatTimer !== null) clearInterval(this.#beatTimer);
    const p = this.#next('stopped');
    this.#post({ type: 'stop' });
    await Promise.race([p, new Promise((r) => setTimeout(r, 1000))]);
    await this.#worker.terminate();
  }

  #post(m: WorkerRequest): void {
    this.#worker.postMessage(m);
  }

  #next(type: WorkerEvent['type']): Promise<WorkerEvent> {
    return new Promise((resolve) => this.#waiters.push({ type, resolve }));
  }
}

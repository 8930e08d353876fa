/**
 * The firewall node: config in, a running engine out, with its data plane, metrics server,
 * control API, logs and timers. Everything that can be refused (config, ruleset) is checked in the
 * constructor, before anything starts; start() brings the parts up in an order that lets an
 * operator watch (metrics and control first, then the data plane that carries traffic), and
 * stop() takes the data plane down first so the kernel rules go away before anything else.
 *
 * The data plane is injected (a factory): tests pass a fake with the same interface, the daemon
 * the NFQUEUE one. So is the sync transport, when the config has a sync section: the daemon opens
 * UDP on the sync link, tests join two nodes with LoopTransport.
 *
 * Sync: the transport opens first (a port in use refuses the start before anything listens), the
 * SyncNode is created on the engine's table and clock and set as its event sink before the data
 * plane starts (no entry is created unseen), and started (startup resync request, ALIVE) once the
 * data plane is up. At stop it is flushed and closed after the data plane is down.
 */
import { setThreadRealtime } from '../../failover/advert-pacer.js';
import { readFileSync } from 'node:fs';
import { pino, type Logger } from 'pino';
import { Engine, StandbyWarmup, dropReasonNames } from '../engine/index.js';
import { compileRuleset, parseRuleset, RulesetError, RulesetFileError, type CompiledRuleset, type LogSink } from '../filter/index.js';
import { Dataplane, type DataplaneHooks, type DataplaneOptions, type DataplaneStats } from '../dataplane/index.js';
import { invalidReasonName } from '../packet/index.js';
import { ControlServer, TraceHub, type ControlTarget, type FailoverStatus, type RulesetInfo, type SyncStatus } from '../control/index.js';
import { MetricsServer, NodeMetrics } from '../metrics/index.js';
import { nullEventSink } from '../conntrack/index.js';
import { Keyring, SyncNode, compileExemptRules, warmUpResync, type ExemptPredicate, type SyncTransport } from '../../sync/index.js';
import type { NodeConfig } from './config.js';
import { NodeStateError } from './errors.js';
import { sysfsInterfaceName } from './ifaces.js';
import { udpSyncTransport, type SyncTransportFactory } from './sync-link.js';
import { syncStatus } from './sync-status.js';
import { SyncWatch } from './sync-watch.js';
import { NodeFailover } from './failover-link.js';
import { Role } from '../../failover/index.js';

/** What the node needs of a data plane (src/node/dataplane's Dataplane has it). */
export interface DataplanePort {
  start(): Promise<void>;
  stop(): Promise<void>;
  stats(): DataplaneStats;
}

export type DataplaneFactory = (engine: Engine, options: DataplaneOptions, hooks: DataplaneHooks) => DataplanePort;

export const nfqueueDataplane: DataplaneFactory = (engine, options, hooks) => new Dataplane(engine, options, hooks);

export interface FirewallNodeOptions {
  config: NodeConfig;
  /** Default: the NFQUEUE data plane. */
  dataplane?: DataplaneFactory;
  /** Default: pino JSON on stdout at config.logLevel. */
  logger?: Logger;
  /** Milliseconds since the epoch (tests pass a fake clock). */
  clock?: () => number;
  /** Period of engine.tick() (timeouts, expectations); default 1000 ms. */
  tickMs?: number;
  /** ifindex -> interface name for the ruleset; default /sys/class/net. */
  interfaceName?: (ifindex: number) => string | undefined;
  /** Process metrics (event-loop lag...) in /metrics; default true. */
  defaultMetrics?: boolean;
  /** Opens the sync link when the config has a sync section; default UDP (sync-link.ts). */
  syncTransport?: SyncTransportFactory;
}

/** Outcome of a reload: applied, or refused with the ruleset's errors (the old one still runs). */
export type ReloadResult = { ok: true; source: string } | { ok: false; error: RulesetError | RulesetFileError };

type NodeState = 'created' | 'starting' | 'running' | 'stopping' | 'stopped';

export class FirewallNode implements ControlTarget {
  readonly config: NodeConfig;
  readonly engine: Engine;
  readonly traces = new TraceHub();
  readonly log: Logger;
  readonly metrics: NodeMetrics;
  readonly dataplane: DataplanePort;
  readonly #control: ControlServer;
  readonly #metricsServer: MetricsServer | null;
  readonly #interfaceName: (ifindex: number) => string | undefined;
  readonly #tickMs: number;
  readonly #syncTransportFactory: SyncTransportFactory;
  readonly #syncKeys: Keyring | null;
  readonly #syncExempt: ExemptPredicate | undefined;
  #syncTransport: SyncTransport | null = null;
  #sync: SyncNode | null = null;
  #syncWatch: SyncWatch | null = null;
  #failover: NodeFailover | null = null;
  #ruleset: RulesetInfo;
  #tick: NodeJS.Timeout | null = null;
  /** With failover: keeps the packet path's code hot while this node is not master (warmup.ts). */
  #warmup: StandbyWarmup | null = null;
  #state: NodeState = 'created';
  #startedAt = 0;

  /**
   * Throws RulesetFileError / RulesetError (ruleset), DataplaneError (options), SyncKeyError /
   * ExemptRuleError (a sync section that did not come through parseConfig): nothing started.
   */
  constructor(options: FirewallNodeOptions) {
    const config = options.config;
    this.config = config;
    this.log = options.logger ?? pino({ name: 'twinwall', level: config.logLevel, base: { node: config.name } });
    this.#interfaceName = options.interfaceName ?? sysfsInterfaceName();
    this.#tickMs = options.tickMs ?? 1000;
    this.#syncTransportFactory = options.syncTransport ?? udpSyncTransport;
    this.#syncKeys = config.sync ? new Keyring(config.sync.keys, config.sync.sendKey) : null;
    this.#syncExempt = config.sync && config.sync.exempt.length > 0 ? compileExemptRules(config.sync.exempt) : undefined;

    const text = readRulesetText(config.rulesetPath);
    const compiled = this.#compile(text, config.rulesetPath);
    const filterLog = this.log.child({ component: 'filter' });
    const logSink: LogSink = { log: (record) => filterLog.info({ record }, `LOG ${record.prefix}`.trimEnd()) };
    this.engine = new Engine({
      conntrack: config.conntrack,
      ruleset: compiled,
      filter: { logSink, traceSink: this.traces, interfaceName: this.#interfaceName },
      clock: options.clock,
    });
    const huge = this.engine.conntrack.table.hugePagesErrno;
    if (huge > 0) this.log.warn({ errno: huge }, 'the kernel refused huge pages for the preallocated conntrack table (no transparent huge pages?): it runs on 4 KiB pages, slower to preallocate and to look up');
    this.#ruleset = { source: config.rulesetPath, text, loadedAt: this.engine.now() };
    if (config.failover) {
      this.#warmup = new StandbyWarmup(this.engine, () => this.#compile(this.#ruleset.text, this.#ruleset.source), config.conntrack);
    }

    const factory = options.dataplane ?? nfqueueDataplane;
    this.dataplane = factory(
      this.engine,
      {
        queueNum: config.dataplane.queue,
        dataInterfaces: config.dataplane.interfaces,
        failOpen: config.dataplane.failOpen,
        excludedUdpPorts: config.dataplane.excludedUdpPorts,
      },
      { onEngineError: (err) => this.log.error({ err }, 'engine threw on a packet (a bug): packet given the fail verdict') },
    );
    this.metrics = new NodeMetrics(
      {
        engine: this.engine,
        dataplaneDrops: () => dataplaneDrops(this.dataplane.stats()),
        sync: config.sync ? () => this.#sync : undefined,
        failover: config.failover ? () => this.#failover?.view ?? null : undefined,
      },
      { nodeName: config.name, defaultMetrics: options.defaultMetrics },
    );
    this.#metricsServer = config.metrics ? new MetricsServer(this.metrics, config.metrics.host, config.metrics.port) : null;
    this.#control = new ControlServer(this, config.controlSocket, {
      // A part not running yet (the node starting or stopping) is the client's answer, not a fault.
      onError: (err, method, path) => (err instanceof NodeStateError
        ? this.log.info({ method, path, reason: err.message }, 'control request refused')
        : this.log.error({ err, method, path }, 'control API handler failed')),
    });
  }

  #compile(text: string, source: string): CompiledRuleset {
    return compileRuleset(parseRuleset(text, source), { interfaceName: this.#interfaceName, source });
  }

  get state(): NodeState {
    return this.#state;
  }

  /** Where /metrics listens (the port chosen when the config said 0), or null without metrics. */
  metricsAddress(): { host: string; port: number } | null {
    const a = this.#metricsServer?.address();
    return a ? { host: a.address, port: a.port } : null;
  }

  async start(): Promise<void> {
    if (this.#state !== 'created') throw new NodeStateError(`cannot start a node that is ${this.#state}; create a new FirewallNode`);
    // 'starting' until every part runs: the control socket answers meanwhile, and a request for a
    // part not started yet is refused with that state (a client polling a starting node).
    this.#state = 'starting';
    this.#startedAt = this.engine.now();
    try {
      await this.#warmUpSync();
      if (this.config.sync) this.#syncTransport = await this.#syncTransportFactory(this.config.sync);
      await this.#metricsServer?.start();
      await this.#control.start();
      this.#createSync();
      await this.dataplane.start();
      this.#startSync();
      if (this.config.failover && this.config.sync) {
        this.#failover = await NodeFailover.start(this.config.failover, this.config.sync, this.engine, this.log.child({ component: 'failover' }), this.#sync ?? undefined);
      }
    } catch (e) {
      this.log.error({ err: e }, 'start failed; stopping what was started');
      await this.stop();
      throw e;
    }
    this.#state = 'running';
    this.#setRealtime();
    this.#tick = setInterval(() => this.#runTick(), this.#tickMs);
    this.#tick.unref();
    const m = this.metricsAddress();
    this.log.info(
      { queue: this.config.dataplane.queue, interfaces: this.config.dataplane.interfaces, control: this.config.controlSocket, metrics: m, ruleset: this.config.rulesetPath },
      'node started',
    );
  }

  /**
   * node.realtimePriority: this (the main) thread in SCHED_RR, after every other thread of the node
   * was made (threads made later would inherit it). Refused (no CAP_SYS_NICE): a warning, and the
   * node runs on with normal scheduling.
   */
  #setRealtime(): void {
    const prio = this.config.realtimePriority;
    if (prio <= 0) return;
    const err = setThreadRealtime(prio);
    if (err === 0) this.log.info({ policy: 'SCHED_RR', priority: prio }, 'main thread in real-time scheduling (node.realtimePriority)');
    else this.log.warn({ errno: err, priority: prio }, `SCHED_RR ${prio} for the main thread refused (errno ${err}: the node needs CAP_SYS_NICE); it runs with normal scheduling`);
  }

  /** The SyncNode on the engine's table and clock, set as the table's event sink. */
  #createSync(): void {
    const c = this.config.sync;
    if (!c || !this.#syncTransport || !this.#syncKeys) return;
    const sync = new SyncNode(this.engine.conntrack.table, this.#syncTransport, {
      ...c.tuning, nodeId: c.nodeId, keys: this.#syncKeys, mtu: c.mtu, exempt: this.#syncExempt, clock: this.engine.clock,
      helperState: this.engine.helperState,
    });
    sync.onLag = this.metrics.observeSyncLag;
    this.engine.setEventSink(sync.sink);
    this.#sync = sync;
  }

  /**
   * First thing at start, before the sync socket opens and any packet flows: run the resync path
   * between two scratch sync nodes so that V8 has optimised it when the real dump comes
   * (src/sync/warmup.ts). A few hundred ms once.
   */
  async #warmUpSync(): Promise<void> {
    const c = this.config.sync;
    if (!c) return;
    // Scratch tables made as the live one is (an engine's, with this config and ruleset).
    const ruleset = this.#compile(this.#ruleset.text, this.#ruleset.source);
    const newTable = (n: number) => new Engine({
      conntrack: { ...this.config.conntrack, maxEntries: n, initialCapacity: undefined, prefault: false },
      ruleset,
      clock: this.engine.clock,
    }).conntrack.table;
    const r = await warmUpResync({ mtu: c.mtu, clock: this.engine.clock, newTable });
    this.log.info({ ms: Math.round(r.ms), rounds: r.rounds, entries: r.applied }, 'sync code warmed up (scratch resyncs in this process)');
  }

  #startSync(): void {
    const c = this.config.sync;
    if (!c || !this.#sync) return;
    this.#sync.start();
    this.#syncWatch = new SyncWatch(this.#sync, this.log.child({ component: 'sync' }), this.engine.now());
    this.log.info(
      { nodeId: c.nodeId, interface: c.interface, address: c.address, group: c.group, peer: c.peer, port: c.port, mtu: c.mtu, sendKey: c.sendKey, exempt: c.exempt.length },
      `sync started (${c.group !== null ? `multicast ${c.group}` : `unicast to ${c.peer}`}:${c.port}); asking the peer for its table`,
    );
  }

  #runTick(): void {
    try {
      this.engine.tick();
    } catch (err) {
      // Expiry must keep running: log the bug and try again next tick.
      this.log.error({ err }, 'engine.tick() threw');
    }
    if (this.#warmup && this.#failover && this.#failover.role !== Role.MASTER) {
      try {
        this.#warmup.run();
      } catch (err) {
        // The warm-up changes nothing live; a bug in it is logged and the next tick tries again.
        this.log.error({ err }, 'standby warm-up threw');
      }
    }
    try {
      this.#syncWatch?.poll(this.engine.now());
    } catch (err) {
      // Only logging: a bug here must not stop expiry. Report it and go on.
      this.log.error({ err }, 'sync watch threw');
    }
  }

  /** Sends what is pending (best effort), closes the sync link and detaches it from the table. */
  async #stopSync(): Promise<void> {
    const sync = this.#sync;
    const transport = this.#syncTransport;
    this.#syncWatch = null;
    this.#syncTransport = null;
    if (sync) {
      this.engine.setEventSink(nullEventSink);
      sync.sender.flush();
      await sync.close();
      this.log.info({ sent: sync.stats.sent, received: sync.stats.received }, 'sync stopped');
    } else if (transport) {
      await transport.close();
    }
  }

  /** Stops the data plane first (kernel rules removed), then sync, then the servers. Safe to call twice. */
  async stop(): Promise<void> {
    if (this.#state === 'stopped' || this.#state === 'stopping') return;
    this.#state = 'stopping';
    if (this.#tick) clearInterval(this.#tick);
    this.#tick = null;
    this.engine.filter.setTrace(null);
    const failures: unknown[] = [];
    for (const [what, stop] of [
      // First: a master steps down and releases its addresses while it still forwards.
      ['failover', () => this.#failover?.stop() ?? Promise.resolve()],
      ['data plane', () => this.dataplane.stop()],
      ['sync link', () => this.#stopSync()],
      ['control API', () => this.#control.stop()],
      ['metrics server', () => this.#metricsServer?.stop() ?? Promise.resolve()],
    ] as const) {
      try {
        await stop();
      } catch (err) {
        // Keep stopping the rest; report each failure.
        failures.push(err);
        this.log.error({ err }, `stopping the ${what} failed`);
      }
    }
    this.#state = 'stopped';
    this.log.info({ failures: failures.length }, 'node stopped');
    if (failures.length) throw failures[0];
  }

  /**
   * Re-reads the ruleset file (SIGHUP) and swaps it in atomically. A bad one is logged with every
   * error and the running ruleset stays.
   */
  reload(): ReloadResult {
    const source = this.config.rulesetPath;
    try {
      this.applyRuleset(readRulesetText(source), source);
    } catch (e) {
      if (e instanceof RulesetError || e instanceof RulesetFileError) {
        this.log.error({ code: e.code, errors: e instanceof RulesetError ? e.errors : [], file: source }, `ruleset reload refused, the running ruleset stays: ${e.message}`);
        return { ok: false, error: e };
      }
      throw e;
    }
    this.log.info({ file: source }, 'ruleset reloaded');
    return { ok: true, source };
  }

  // ControlTarget

  applyRuleset(text: string, source: string): void {
    const compiled = this.#compile(text, source);
    this.engine.replaceRuleset(compiled);
    this.#ruleset = { source, text, loadedAt: this.engine.now() };
    this.#warmup?.rulesetChanged();
    this.log.info({ source }, 'ruleset applied');
  }

  ruleset(): RulesetInfo {
    return { ...this.#ruleset };
  }

  requestResync(): boolean {
    if (!this.config.sync) return false;
    if (!this.#sync) throw new NodeStateError(`sync is configured but not open: the node is ${this.#state}`);
    this.#sync.requestResync();
    this.log.info('sync: bulk resync asked of the peer (operator)');
    return true;
  }

  async failoverStatus(): Promise<FailoverStatus | null> {
    if (!this.config.failover) return null;
    if (!this.#failover) throw new NodeStateError(`failover is configured but not running: the node is ${this.#state}`);
    return this.#failover.status();
  }

  async switchover(): Promise<boolean | null> {
    if (!this.config.failover) return null;
    if (!this.#failover) throw new NodeStateError(`failover is configured but not running: the node is ${this.#state}`);
    const done = await this.#failover.switchover();
    if (done) this.log.info('failover: planned switchover (operator): stepping down');
    return done;
  }

  /** Null without a sync section. The sync stays readable after stop (its last figures). */
  syncStatus(): SyncStatus | null {
    const c = this.config.sync;
    if (!c) return null;
    if (!this.#sync) throw new NodeStateError(`sync is configured but not open: the node is ${this.#state}`);
    return syncStatus(this.#sync, c, this.engine.now());
  }

  /** The running sync (null without a sync section or before start). */
  get sync(): SyncNode | null {
    return this.#sync;
  }

  stats(): Record<string, unknown> {
    const s = this.engine.stats;
    const t = this.engine.conntrack.table;
    const drops: Record<string, number> = {};
    dropReasonNames.forEach((name, code) => {
      if (code !== 0) drops[name] = s.drops[code];
    });
    const invalid: Record<string, number> = {};
    s.invalid.forEach((n, code) => {
      if (n !== 0) invalid[invalidReasonName(code)] = n;
    });
    return {
      node: this.config.name,
      state: this.#state,
      uptimeSeconds: this.#startedAt ? Math.round((this.engine.now() - this.#startedAt) / 1000) : 0,
      packets: { accepted: s.acceptedPackets, dropped: s.droppedPackets },
      bytes: { accepted: s.acceptedBytes, dropped: s.droppedBytes },
      rejects: s.rejects,
      drops,
      invalid,
      conntrack: { entries: t.count, max: t.maxEntries, fill: t.count / t.maxEntries },
      ruleset: { source: this.#ruleset.source, loadedAt: new Date(this.#ruleset.loadedAt).toISOString() },
      dataplane: this.dataplane.stats(),
    };
  }
}

function readRulesetText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new RulesetFileError(path, e);
  }
}

/** The data plane's losses as drop reasons for twinwall_drops_total. */
export function dataplaneDrops(st: DataplaneStats): Record<string, number> {
  const out: Record<string, number> = { dataplane_engine_error: st.counters.engineErrors, reject_not_sent: st.counters.emitDropped };
  if (st.kernel) {
    out.queue_overflow = st.kernel.queueDropped;
    out.queue_socket_overflow = st.kernel.userDropped;
  }
  return out;
}

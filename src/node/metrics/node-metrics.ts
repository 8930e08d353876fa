/**
 * The node's Prometheus metrics, in a Registry of its own (two nodes in one process do not mix).
 * Every figure is read from the engine's own counters when Prometheus scrapes: nothing is counted
 * on the packet path here. Counters are set from the engine's running totals (reset + inc), so
 * they stay monotonic as long as the engine's totals are.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Engine } from '../engine/index.js';
import { dropReasonNames } from '../engine/index.js';
import { invalidReasonName } from '../packet/index.js';
import { protoName } from '../conntrack/index.js';
import { conntrackCensus } from './conntrack-census.js';
import { registerSyncMetrics } from './sync-metrics.js';
import { registerHelperMetrics } from './helper-metrics.js';
import { registerFailoverMetrics, type FailoverMetricsView } from './failover-metrics.js';
import type { SyncNode } from '../../sync/index.js';

/** What the metrics read besides the engine; each is called at scrape time. */
export interface MetricsSources {
  engine: Engine;
  /** Packets lost before the engine saw them, by reason (queue overflow, user drops...). */
  dataplaneDrops?: () => Record<string, number>;
  /** The node's sync (null until it started); given only when the node has a sync section. */
  sync?: () => SyncNode | null;
  /** What the node knows of its election (null until it started); only with a failover section. */
  failover?: () => FailoverMetricsView | null;
}

export interface NodeMetricsOptions {
  /** Added to every series as the `node` label. */
  nodeName: string;
  /** Process metrics, including event-loop lag (nodejs_eventloop_lag_*); default true. */
  defaultMetrics?: boolean;
}

/** Sets a counter from a total read elsewhere (prom-client has no set() on counters). */
function setCounter(c: Counter<string>, labels: Record<string, string>, value: number): void {
  c.inc(labels, value);
}

export class NodeMetrics {
  readonly registry = new Registry();
  /** Observes a sync lag sample (ms; SyncNode.onLag); does nothing without sync. */
  readonly observeSyncLag: (ms: number) => void = () => {};

  constructor(sources: MetricsSources, options: NodeMetricsOptions) {
    const reg = this.registry;
    reg.setDefaultLabels({ node: options.nodeName });
    const { engine } = sources;
    const stats = engine.stats;

    new Counter({
      name: 'twinwall_packets_total', help: 'Packets through the engine, by verdict.', labelNames: ['verdict'], registers: [reg],
      collect() {
        this.reset();
        setCounter(this, { verdict: 'accept' }, stats.acceptedPackets);
        setCounter(this, { verdict: 'drop' }, stats.droppedPackets);
      },
    });
    new Counter({
      name: 'twinwall_bytes_total', help: 'Bytes through the engine, by verdict.', labelNames: ['verdict'], registers: [reg],
      collect() {
        this.reset();
        setCounter(this, { verdict: 'accept' }, stats.acceptedBytes);
        setCounter(this, { verdict: 'drop' }, stats.droppedBytes);
      },
    });
    new Counter({
      name: 'twinwall_rejects_total', help: 'Packets answered by a REJECT rule (reset or ICMP error sent).', registers: [reg],
      collect() {
        this.reset();
        this.inc(stats.rejects);
      },
    });
    new Counter({
      name: 'twinwall_drops_total',
      help: 'Dropped packets by reason: malformed, ruleset, table_full, ... from the engine; queue_* from the data plane.',
      labelNames: ['reason'], registers: [reg],
      collect() {
        this.reset();
        // Every reason the engine knows, also those at zero, so alerts need no absent().
        dropReasonNames.forEach((name, code) => {
          if (code !== 0) setCounter(this, { reason: name }, stats.drops[code]);
        });
        const dp = sources.dataplaneDrops?.() ?? {};
        for (const [reason, n] of Object.entries(dp)) setCounter(this, { reason }, n);
      },
    });
    new Counter({
      name: 'twinwall_invalid_total', help: 'Packets found INVALID, by reason (parser and conntrack).', labelNames: ['reason'], registers: [reg],
      collect() {
        this.reset();
        for (let code = 1; code < stats.invalid.length; code++) {
          if (stats.invalid[code] !== 0) setCounter(this, { reason: invalidReasonName(code) }, stats.invalid[code]);
        }
      },
    });
    new Gauge({
      name: 'twinwall_conntrack_entries', help: 'Conntrack entries by protocol and state.', labelNames: ['proto', 'state'], registers: [reg],
      collect() {
        this.reset();
        for (const row of conntrackCensus(engine.conntrack.table)) this.set({ proto: row.proto, state: row.state }, row.count);
      },
    });
    new Gauge({
      name: 'twinwall_conntrack_max', help: 'Conntrack table capacity (nf_conntrack_max).', registers: [reg],
      collect() {
        this.set(engine.conntrack.table.maxEntries);
      },
    });
    new Gauge({
      name: 'twinwall_conntrack_fill_ratio', help: 'Conntrack entries / capacity (0..1).', registers: [reg],
      collect() {
        const t = engine.conntrack.table;
        this.set(t.count / t.maxEntries);
      },
    });
    const poolLabels = ['address', 'proto'];
    const perPool = (c: Counter<string> | Gauge<string>, field: 'portsInUse' | 'allocations' | 'exhausted'): void => {
      c.reset();
      for (const p of engine.nat.poolStats()) {
        const labels = { address: p.address, proto: protoName(p.proto) };
        if (c instanceof Gauge) c.set(labels, p[field]);
        else setCounter(c, labels, p[field]);
      }
    };
    new Gauge({
      name: 'twinwall_nat_ports_in_use', help: 'Outside ports (ICMP ids) held by NAT mappings, per SNAT pool.', labelNames: poolLabels, registers: [reg],
      collect() {
        perPool(this, 'portsInUse');
      },
    });
    new Counter({
      name: 'twinwall_nat_allocations_total', help: 'NAT mappings allocated, per SNAT pool.', labelNames: poolLabels, registers: [reg],
      collect() {
        perPool(this, 'allocations');
      },
    });
    new Counter({
      name: 'twinwall_nat_exhausted_total', help: 'New connections refused because the SNAT pool had no free port.', labelNames: poolLabels, registers: [reg],
      collect() {
        perPool(this, 'exhausted');
      },
    });
    const ruleLabels = ['chain', 'rule', 'comment'];
    const perRule = (c: Counter<string>, field: 'packets' | 'bytes'): void => {
      c.reset();
      for (const chain of engine.filter.counters()) {
        for (const r of chain.rules) setCounter(c, { chain: chain.name, rule: String(r.index), comment: r.comment ?? '' }, r[field]);
        const policy = field === 'packets' ? chain.policyPackets : chain.policyBytes;
        setCounter(c, { chain: chain.name, rule: 'policy', comment: chain.policy ?? 'return' }, policy);
      }
    };
    new Counter({
      name: 'twinwall_rule_packets_total', help: 'Packets matched per rule; rule="policy" for the chain policy.', labelNames: ruleLabels, registers: [reg],
      collect() {
        perRule(this, 'packets');
      },
    });
    new Counter({
      name: 'twinwall_rule_bytes_total', help: 'Bytes matched per rule; rule="policy" for the chain policy.', labelNames: ruleLabels, registers: [reg],
      collect() {
        perRule(this, 'bytes');
      },
    });
    registerHelperMetrics(reg, engine);
    if (sources.sync) this.observeSyncLag = registerSyncMetrics(reg, { sync: sources.sync, now: () => engine.now() });
    if (sources.failover) registerFailoverMetrics(reg, sources.failover);
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: reg, eventLoopMonitoringPrecision: 10 });
  }

  /** The exposition text (Prometheus text format 0.0.4). */
  metrics(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

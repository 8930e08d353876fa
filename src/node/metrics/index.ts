/**
 * Prometheus metrics of a node: a Registry per node, figures read from the engine at scrape time,
 * served at GET /metrics. Error code: METRICS_LISTEN_FAILED (MetricsListenError).
 */
export { NodeMetrics } from './node-metrics.js';
export type { MetricsSources, NodeMetricsOptions } from './node-metrics.js';
export { MetricsServer, MetricsListenError } from './server.js';
export { conntrackCensus } from './conntrack-census.js';
export { registerSyncMetrics, unappliedMessages, SYNC_LAG_BUCKETS } from './sync-metrics.js';
export type { SyncMetricsSource } from './sync-metrics.js';
export { registerFailoverMetrics } from './failover-metrics.js';
export type { FailoverMetricsView } from './failover-metrics.js';
export type { CensusRow } from './conntrack-census.js';

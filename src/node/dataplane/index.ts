/**
 * The data plane: NFQUEUE and the kernel rules that feed it. Public surface: the Dataplane, its
 * options and stats, its error, and the parser of the kernel's queue state (for metrics).
 */
export { Dataplane } from './dataplane.js';
export type { DataplaneHooks } from './dataplane.js';
export { DataplaneError } from './errors.js';
export type { DataplaneErrorCode } from './errors.js';
export { resolveDataplaneOptions, DEFAULT_CHAIN } from './options.js';
export type { DataplaneOptions, ResolvedDataplaneOptions } from './options.js';
export { DataplaneCounters } from './stats.js';
export type { DataplaneStats } from './stats.js';
export { parseNfqueueProc, readQueueState, NFQUEUE_PROC } from './queue-proc.js';
export type { QueueState } from './queue-proc.js';
export { RouteTable, routesFromIp } from './routes.js';
export type { RouteEntry } from './routes.js';

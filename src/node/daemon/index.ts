/**
 * The node daemon: config, the FirewallNode that wires engine, data plane, metrics and control
 * API, and its signal handling. Error codes: CONFIG_INVALID (ConfigError), CONFIG_FILE_UNREADABLE
 * (ConfigFileError), NODE_STATE (NodeStateError); the parts' own codes pass through
 * (RULESET_INVALID, DP_*, METRICS_LISTEN_FAILED, CONTROL_SOCKET_FAILED, SYNC_TRANSPORT when the sync link
 * cannot open).
 */
export { parseConfig, loadConfigFile, NodeConfigSchema, DEFAULT_CONTROL_SOCKET, DEFAULT_MAX_ENTRIES } from './config.js';
export type { NodeConfig, NodeConfigDoc, LogLevel } from './config.js';
export { DEFAULT_SYNC_PORT, DEFAULT_SYNC_MTU } from './sync-config.js';
export type { SyncConfig, SyncTuning } from './sync-config.js';
export { ConfigError, ConfigFileError, NodeStateError } from './errors.js';
export type { ConfigIssue } from './errors.js';
export { FirewallNode, nfqueueDataplane, dataplaneDrops } from './node.js';
export type { FirewallNodeOptions, DataplaneFactory, DataplanePort, ReloadResult } from './node.js';
export { udpSyncTransport, checkSyncAddress } from './sync-link.js';
export type { SyncTransportFactory } from './sync-link.js';
export { SyncWatch, SYNC_PEER_LOST_MS } from './sync-watch.js';
export { runUntilSignal } from './signals.js';
export type { SignalSource } from './signals.js';
export { sysfsInterfaceName } from './ifaces.js';

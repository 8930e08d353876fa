/**
 * State sync: the public surface of src/sync (layout and wire format in wire.ts).
 *
 * - wire.ts: the datagram format (header, message types, entries), documented in one place.
 * - entry-codec.ts: entries of UPDATE messages <-> conntrack entry records.
 * - auth.ts: HMAC-SHA256 keyring with key ids (rotation).
 * - sender.ts: event sink, aggregator, packer, resend window, ALIVE, bulk resync dump.
 * - receiver.ts: in-order apply as REPLICATED entries, NACK, resync requests and sweep, REPORT.
 * - transport.ts: multicast or unicast UDP; an in-process pair for tests.
 * - sync-node.ts: one node's sync (both halves), with the input checks.
 * - warmup.ts: scratch resyncs in-process at start, so the real one runs optimised code.
 *
 * Error codes: SYNC_KEY_INVALID (SyncKeyError), SYNC_TRANSPORT (SyncTransportError),
 * SYNC_EXEMPT_INVALID (exemption rules, exempt.ts). Input from
 * the network never throws: it is counted by reason (SyncStats.drops) and dropped.
 */
export { SyncNode, SYNC_DEFAULTS } from './sync-node.js';
export type { SyncNodeOptions } from './sync-node.js';
export { Keyring, SyncKeyError, MIN_KEY_BYTES } from './auth.js';
export type { SyncKey } from './auth.js';
export { UdpTransport, LoopTransport, SyncTransportError } from './transport.js';
export type { SyncTransport, UdpTransportOptions } from './transport.js';
export { SyncStats, RecvDrop } from './stats.js';
export type { PeerView } from './receiver.js';
export { MsgType, SYNC_VERSION } from './wire.js';
export { warmUpResync } from './warmup.js';
export type { ResyncWarmupOptions, ResyncWarmupResult } from './warmup.js';
export { diffRecords, recordDifferences, tableRecords } from './diff.js';
export type { DiffResult } from './diff.js';
export { checkExemptRules, compileExemptRules, ExemptRuleError } from './exempt.js';
export type { ExemptRuleSpec, ExemptIssue, ExemptPredicate } from './exempt.js';

/**
 * The packet engine: the public surface of src/node/engine. Bytes and metadata in; verdict,
 * rewritten bytes, packets to emit and conntrack events out; no I/O inside.
 */
export { Engine, EngineResult, DropReason } from './engine.js';
export type { EngineOptions, PacketMeta, RouteLookup } from './engine.js';
export { EngineStats, dropReasonNames } from './stats.js';
export { StandbyWarmup } from './warmup.js';
export type { WarmupOptions, WarmupStats } from './warmup.js';

/**
 * Failover: the public surface of src/failover (README.md says what each file does).
 *
 * - advert.ts: the election's datagram (VRRPv3-like, authenticated with the sync keys).
 * - election.ts: one node's election state machine (INIT / BACKUP / MASTER / FAULT) on an
 *   injected clock.
 * - advert-pacer.ts: every advert sent, the master's periodic ones from a native thread.
 *
 * Error codes: FAILOVER_CONFIG (ElectionConfigError), ADVERT_PACER (AdvertPacerError). Input from the network never throws: it is
 * counted by reason (Election.stats.drops) and dropped.
 */
export { Election, ElectionConfigError, pacerLeaseMs } from './election.js';
export type { ElectionClock, ElectionOptions, ElectionOutput, ElectionPacer, ElectionStats, MasterView } from './election.js';
export { AdvertPacer, AdvertPacerError } from './advert-pacer.js';
export type { AdvertPacerLink, AdvertPacerOptions, PacerState, PacerStop } from './advert-pacer.js';
export { ADVERT_DATAGRAM_BYTES, AdvertDrop, Role, addressBytes, decodeAdvert, encodeAdvert, newAdvert, roleNames } from './advert.js';
export type { Advert, AdvertDropReason, RoleCode } from './advert.js';
export { ElectionRunner, FailoverStartError } from './runner.js';
export type { ElectionStatus, RunnerConfig, RunnerLink, WorkerEvent } from './runner.js';
export { VirtualAddresses, VipError, checkVirtualAddress } from './vip.js';
export type { AnnounceMethod, Launch, VipOptions, VirtualAddress } from './vip.js';
export { IpBatch } from '../node/dataplane/ip-batch.js';
export type { BatchResult, IpRunner } from '../node/dataplane/ip-batch.js';
export { EAGER_MAX, SWEEP_SLICE, Takeover } from './takeover.js';
export { DeathWatch, DeathWatchLinks } from './death-watch.js';
export type { SweepDone, TakeoverStep } from './takeover.js';

/**
 * Connection tracking: the public surface of src/node/conntrack.
 *
 * - conntrack.ts: Conntrack, per-packet tracking (lookup or create, protocol trackers, ct state),
 *   pending entries confirmed or aborted after the filter; UDP, ICMP and generic tracking.
 * - table.ts: ConntrackTable, entries as 192-byte records plus cold arrays, a seeded
 *   open-addressing hash index, early drop, connlimit counts, invariants (verify).
 * - tcp*.ts: the TCP tracker after Linux's nf_conntrack_proto_tcp (state table, window tracking,
 *   64-byte per-entry store, tolerant-until-resynced mode for takeover).
 * - entry-record.ts: one entry as 48 words (save/restore, sync), checked before import.
 * - expect.ts: expectations (RELATED connections announced by helpers).
 * - timers.ts: the coarse timer wheel behind entry timeouts.
 * - events.ts: the event sink (new / update with what changed / destroy with why): sync's input.
 * - tuple.ts, format.ts: tuples as words; `conntrack -L` rendering.
 *
 * Error codes: TW_ERR_EXPECT_LIMIT (ExpectationLimitError), TCP_CONFIG_INVALID (TcpConfigError),
 * TCP_STORE_CAPACITY / TCP_STORE_IMPORT (TcpCapacityError / TcpImportError). The per-packet path
 * never throws: a packet it cannot track is INVALID with a reason.
 */
export { Conntrack, CtResult, defaultTimeouts } from './conntrack.js';
export type { ConntrackOptions, ConntrackTimeouts } from './conntrack.js';
export { ConntrackTable, CtStatus, ImportResult, REC_WORDS } from './table.js';
export type { ConntrackTableOptions, EntryResources } from './table.js';
export {
  ENTRY_RECORD_WORDS, ENTRY_RECORD_BYTES, EntryRecordError, checkEntryRecord, recordFromBytes, recordToBytes,
  recordsFromBytes, recordsToBytes,
} from './entry-record.js';
export { CtState, TcpState, Dir, ctStateNames, tcpStateNames } from './state.js';
export type { CtStateCode, TcpStateCode, DirCode } from './state.js';
export { CtChange, DestroyReason, destroyReasonNames, nullEventSink } from './events.js';
export type { ConntrackEventSink } from './events.js';
export { ExpectationTable, ExpectFlag, ExpectationLimitError } from './expect.js';
export type { ExpectationSpec } from './expect.js';
export { TUPLE_WORDS, formatTuple, readTuple, protoName } from './tuple.js';
export type { TupleInfo } from './tuple.js';
export { entryInfo, formatEntry } from './format.js';
export type { EntryInfo } from './format.js';
export { TcpTracker, TcpVerdict, TcpStateStore, TCP_EXPORT_WORDS, DEFAULT_TCP_CONFIG, TcpConfigError } from './tcp.js';
export type { TcpTrackerOptions } from './tcp.js';
export { ConnHelpers, FtpRefusal, ftpRefusalNames, HelperId, helperNames } from './helpers/index.js';

/**
 * Control API of a node: local HTTP on a unix socket, typebox-validated payloads, errors as
 *   { error: { code, message, errors: [{ path, message }] } }
 *
 *   GET /ct?proto=&src=&dst=&sport=&dport=&port=   list (conntrack -L), src/dst take a CIDR
 *   GET /ct/:id  DELETE /ct/:id  GET /ct/count  DELETE /ct (flush)
 *   GET /ct/save  POST /ct/restore {format, entries: [{record}]} (ct-save.ts: every record is
 *   checked before the table changes; entries with the same tuples are overwritten)
 *   GET /rules  POST /rules {text, source?}  GET /stats
 *   GET /sync/status (409 SYNC_NOT_CONFIGURED without a sync section)  POST /sync/resync
 *   GET /failover/status  POST /failover/switchover (409 FAILOVER_NOT_CONFIGURED without a
 *   failover section, 409 NOT_MASTER when this node is not master)
 *   POST /trace {selector}  GET /trace  GET /trace/stream (ndjson)  DELETE /trace
 *
 * Codes: REQUEST_INVALID, BODY_NOT_JSON, BODY_TOO_LARGE, NOT_FOUND, METHOD_NOT_ALLOWED,
 * CT_ENTRY_NOT_FOUND, CT_RESTORE_FORMAT, CT_RESTORE_INVALID, RULESET_INVALID, TRACE_SELECTOR_INVALID,
 * SYNC_NOT_CONFIGURED, FAILOVER_NOT_CONFIGURED, NOT_MASTER, INTERNAL;
 * client side DAEMON_UNREACHABLE; server start CONTROL_SOCKET_FAILED.
 */
export { ControlServer, ControlSocketError } from './server.js';
export type { ControlServerOptions } from './server.js';
export { ControlClient } from './client.js';
export { TraceHub } from './trace-hub.js';
export { SAVE_FORMAT, saveTable, restoreTable } from './ct-save.js';
export type { RestoreReport, SavedTable, SavedEntry } from './ct-save.js';
export type { ControlTarget, FailoverStatus, RulesetInfo, SyncStatus, SyncStatsDoc } from './target.js';
export { ApiError, ApiResponseError, DaemonUnreachableError } from './errors.js';
export type { ApiIssue, ApiErrorBody } from './errors.js';
export type { CtEntry } from './ct-query.js';
export { listExpectations, formatExpectations, type ExpectEntry } from './expect-query.js';

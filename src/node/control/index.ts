/**
 * Control API of a node: local HTTP on a unix socket, typebox-validated payloads, errors as
 *   { error: { code, message, errors: [{ path, message }] } }
 *
 *   GET /ct?proto=&src=&dst=&sport=&dport=&port=   list (conntrack -L), src/dst take a CIDR
 *   GET /ct/:id  DELETE /ct/:id  GET /ct/count  DELETE /ct (flush)  GET /ct/save
 *   POST /ct/restore   501 CT_RESTORE_UNSUPPORTED until the table has an insert API
 *   GET /rules  POST /rules {text, source?}  GET /stats
 *   POST /trace {selector}  GET /trace  GET /trace/stream (ndjson)  DELETE /trace
 *
 * Codes: REQUEST_INVALID, BODY_NOT_JSON, BODY_TOO_LARGE, NOT_FOUND, METHOD_NOT_ALLOWED,
 * CT_ENTRY_NOT_FOUND, CT_RESTORE_UNSUPPORTED, RULESET_INVALID, TRACE_SELECTOR_INVALID, INTERNAL;
 * client side DAEMON_UNREACHABLE; server start CONTROL_SOCKET_FAILED.
 */
export { ControlServer, ControlSocketError } from './server.js';
export type { ControlServerOptions } from './server.js';
export { ControlClient } from './client.js';
export { TraceHub } from './trace-hub.js';
export type { ControlTarget, RulesetInfo } from './target.js';
export { ApiError, ApiResponseError, DaemonUnreachableError } from './errors.js';
export type { ApiIssue, ApiErrorBody } from './errors.js';
export type { CtEntry } from './ct-query.js';

/**
 * The control API's routes: method + path -> handler. Handlers return a JSON value or throw an
 * ApiError; the server renders both. Each validates its query and body before acting.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { RulesetError } from '../filter/index.js';
import { ApiError } from './errors.js';
import { ctFilter, deleteEntry, getEntry, listEntries } from './ct-query.js';
import { RESTORE_MAX_BODY, restoreTable, saveTable } from './ct-save.js';
import { listExpectations } from './expect-query.js';
import { CtListQuery, CtRestoreBody, EmptyQuery, EntryId, RulesApplyBody, TraceBody, validate } from './schemas.js';
import type { ControlTarget } from './target.js';

export interface Request {
  method: string;
  path: string;
  /** Path segments after the route's prefix (e.g. the id of /ct/:id). */
  params: string[];
  query: Record<string, string>;
  body: () => Promise<unknown>;
  raw: IncomingMessage;
  res: ServerResponse;
}

/** A handler's answer: a JSON value, or STREAMED when it wrote the response itself. */
export const STREAMED = Symbol('streamed');
export type Handler = (target: ControlTarget, req: Request) => unknown;

interface Route {
  method: string;
  /** Segments; ':x' matches one segment. */
  pattern: string[];
  handler: Handler;
  /** Largest body this route reads (default: the server's). */
  maxBody?: number;
}

function rulesetRefused(e: RulesetError): ApiError {
  return new ApiError(422, e.code, 'ruleset refused; the running ruleset is unchanged', e.errors.map((i) => ({
    path: i.path === '' ? '/' : i.path,
    message: i.line !== undefined ? `${i.message} (line ${i.line}, column ${i.column ?? 1})` : i.message,
  })));
}

/** /failover/* on a node without a failover section. */
function failoverNotConfigured(): ApiError {
  return new ApiError(409, 'FAILOVER_NOT_CONFIGURED',
    'failover is not configured on this node: add a failover section to its config (see src/node/daemon/README.md) and restart it');
}

/** GET /sync/status on a node without a sync section. */
function syncNotConfigured(): ApiError {
  return new ApiError(409, 'SYNC_NOT_CONFIGURED',
    'sync is not configured on this node: add a sync section to its config (see src/node/daemon/README.md) and restart it');
}

function entryId(text: string): number {
  return Number(validate(EntryId, text, 'params/id'));
}

const routes: Route[] = [
  {
    method: 'GET', pattern: ['ct'],
    handler: (t, req) => listEntries(t.engine.conntrack.table, t.engine.now(), ctFilter(validate(CtListQuery, req.query, 'query'))),
  },
  {
    method: 'GET', pattern: ['ct', 'count'],
    handler: (t, req) => {
      validate(EmptyQuery, req.query, 'query');
      const table = t.engine.conntrack.table;
      return { count: table.count, max: table.maxEntries };
    },
  },
  {
    method: 'GET', pattern: ['ct', 'save'],
    handler: (t, req) => {
      validate(EmptyQuery, req.query, 'query');
      return saveTable(t.engine.conntrack.table, t.engine.now());
    },
  },
  {
    method: 'POST', pattern: ['ct', 'restore'], maxBody: RESTORE_MAX_BODY,
    handler: async (t, req) => restoreTable(t.engine.conntrack.table, t.engine.now(), validate(CtRestoreBody, await req.body(), 'body')),
  },
  {
    method: 'GET', pattern: ['ct', ':id'],
    handler: (t, req) => getEntry(t.engine.conntrack.table, t.engine.now(), entryId(req.params[0])),
  },
  {
    method: 'DELETE', pattern: ['ct', ':id'],
    handler: (t, req) => {
      const id = entryId(req.params[0]);
      deleteEntry(t.engine.conntrack.table, id);
      return { deleted: 1, id };
    },
  },
  {
    method: 'DELETE', pattern: ['ct'],
    handler: (t) => ({ deleted: t.engine.conntrack.table.flush() }),
  },
  {
    method: 'GET', pattern: ['expect'],
    handler: (t, req) => {
      validate(EmptyQuery, req.query, 'query');
      return listExpectations(t.engine, t.engine.now());
    },
  },
  {
    method: 'GET', pattern: ['rules'],
    handler: (t) => ({ ...t.ruleset(), counters: t.engine.filter.counters() }),
  },
  {
    method: 'POST', pattern: ['rules'],
    handler: async (t, req) => {
      const body = validate(RulesApplyBody, await req.body(), 'body');
      const source = body.source ?? 'control API';
      try {
        t.applyRuleset(body.text, source);
      } catch (e) {
        if (e instanceof RulesetError) throw rulesetRefused(e);
        throw e;
      }
      return { applied: true, source, chains: t.engine.filter.counters().map((c) => ({ name: c.name, rules: c.rules.length })) };
    },
  },
  {
    method: 'GET', pattern: ['stats'],
    handler: (t) => t.stats(),
  },
  {
    method: 'GET', pattern: ['sync', 'status'],
    handler: (t, req) => {
      validate(EmptyQuery, req.query, 'query');
      const status = t.syncStatus();
      if (status === null) throw syncNotConfigured();
      return status;
    },
  },
  {
    method: 'POST', pattern: ['sync', 'resync'],
    handler: (t) => {
      if (!t.requestResync()) throw syncNotConfigured();
      return { requested: true };
    },
  },
  {
    method: 'GET', pattern: ['failover', 'status'],
    handler: async (t, req) => {
      validate(EmptyQuery, req.query, 'query');
      const status = await t.failoverStatus();
      if (status === null) throw failoverNotConfigured();
      return status;
    },
  },
  {
    method: 'POST', pattern: ['failover', 'switchover'],
    handler: async (t) => {
      const done = await t.switchover();
      if (done === null) throw failoverNotConfigured();
      if (!done) throw new ApiError(409, 'NOT_MASTER', 'this node is not master: run the switchover on the master (see `twinwall failover status`)');
      return { switchedOver: true };
    },
  },
  {
    method: 'POST', pattern: ['trace'],
    handler: async (t, req) => {
      const body = validate(TraceBody, await req.body(), 'body');
      try {
        t.engine.filter.setTrace(body.selector);
      } catch (e) {
        if (e instanceof RulesetError) {
          throw new ApiError(400, 'TRACE_SELECTOR_INVALID', 'trace selector refused; tracing is unchanged',
            e.errors.map((i) => ({ path: `/body/selector${i.path}`, message: i.message })));
        }
        throw e;
      }
      return { tracing: true, selector: body.selector };
    },
  },
  {
    method: 'GET', pattern: ['trace'],
    handler: (t) => ({ tracing: t.engine.filter.traceSelector !== null, selector: t.engine.filter.traceSelector, streams: t.traces.listeners }),
  },
  {
    method: 'DELETE', pattern: ['trace'],
    handler: (t) => {
      t.engine.filter.setTrace(null);
      return { tracing: false };
    },
  },
  {
    method: 'GET', pattern: ['trace', 'stream'],
    handler: (t, req) => {
      // ndjson, one TraceEvent per line, until the client goes away.
      const res = req.res;
      res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
      res.flushHeaders();
      const off = t.traces.subscribe((ev) => res.write(`${JSON.stringify(ev)}\n`));
      const done = (): void => off();
      req.raw.socket.once('close', done);
      res.once('close', done);
      return STREAMED;
    },
  },
];

/** The handler for method + path, with the ':x' segments; ApiError 404/405 when none. */
export function route(method: string, path: string): { handler: Handler; params: string[]; maxBody?: number } {
  const segs = path.split('/').filter((s) => s !== '');
  let pathMatched = false;
  for (const r of routes) {
    if (r.pattern.length !== segs.length) continue;
    const params: string[] = [];
    // Literal segments win over ':id' (/ct/count is not entry "count"): routes list literals first.
    if (!r.pattern.every((p, i) => (p.startsWith(':') ? (params.push(segs[i]), true) : p === segs[i]))) continue;
    pathMatched = true;
    if (r.method === method) return { handler: r.handler, params, maxBody: r.maxBody };
  }
  if (pathMatched) throw new ApiError(405, 'METHOD_NOT_ALLOWED', `${method} is not allowed on ${path}`);
  throw new ApiError(404, 'NOT_FOUND', `no such endpoint: ${method} ${path}. Endpoints: /ct, /ct/:id, /ct/count, /ct/save, /ct/restore, /rules, /stats, /sync/status, /sync/resync, /failover/status, /failover/switchover, /trace, /trace/stream`);
}

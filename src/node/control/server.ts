/**
 * The control API server: HTTP on a unix socket (local only; access is the socket file's
 * permissions, 0660). A stale socket file left by a crash is removed at start, but only after
 * checking that nothing answers on it, so a second daemon never steals a live one's socket.
 */
import { chmodSync, existsSync, mkdirSync, unlinkSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { ApiError } from './errors.js';
import { STREAMED, route } from './handlers.js';
import type { ControlTarget } from './target.js';

/** Largest request body accepted by default (a ruleset of many thousand rules fits). */
const MAX_BODY = 16 * 1024 * 1024;

export class ControlSocketError extends Error {
  readonly code = 'CONTROL_SOCKET_FAILED';
  constructor(path: string, why: string) {
    super(`cannot serve the control API on ${path}: ${why}`);
    this.name = 'ControlSocketError';
  }
}

export interface ControlServerOptions {
  /** Called for errors that are not the client's fault (logged by the daemon). */
  onError?: (e: unknown, method: string, path: string) => void;
}

function readBody(req: IncomingMessage, max: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > max) {
        reject(new ApiError(413, 'BODY_TOO_LARGE', `request body above ${max} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('error', reject);
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      if (text.trim() === '') return resolve(undefined);
      try {
        resolve(JSON.parse(text));
      } catch (e) {
        reject(new ApiError(400, 'BODY_NOT_JSON', `request body is not JSON: ${(e as Error).message}`, [{ path: '/body', message: 'not JSON' }]));
      }
    });
  });
}

function send(res: ServerResponse, status: number, value: unknown): void {
  const text = `${JSON.stringify(value)}\n`;
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
}

/** Resolves true when something accepts connections on the socket path. */
function alive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export class ControlServer {
  #server: Server | null = null;

  constructor(readonly target: ControlTarget, readonly socketPath: string, readonly options: ControlServerOptions = {}) {}

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://twinwall');
    const method = req.method ?? 'GET';
    try {
      const { handler, params, maxBody } = route(method, url.pathname);
      const query: Record<string, string> = {};
      for (const [k, v] of url.searchParams) query[k] = v;
      const result = await handler(this.target, { method, path: url.pathname, params, query, body: () => readBody(req, maxBody ?? MAX_BODY), raw: req, res });
      if (result !== STREAMED) send(res, 200, result);
    } catch (e) {
      if (e instanceof ApiError) return send(res, e.status, e.toBody());
      this.options.onError?.(e, method, url.pathname);
      const message = e instanceof Error ? e.message : String(e);
      send(res, 500, { error: { code: 'INTERNAL', message: `internal error: ${message} (see the daemon's log)`, errors: [] } });
    }
  }

  async start(): Promise<void> {
    const path = this.socketPath;
    try {
      mkdirSync(dirname(path), { recursive: true });
    } catch (e) {
      throw new ControlSocketError(path, `cannot create its folder (${(e as Error).message})`);
    }
    if (existsSync(path)) {
      if (await alive(path)) throw new ControlSocketError(path, 'another daemon answers on it; stop it first or give this node another control.socket');
      // Left by a crash: the next start repairs it.
      unlinkSync(path);
    }
    const server = createServer((req, res) => void this.#handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e) => reject(new ControlSocketError(path, e.message)));
      server.listen(path, () => resolve());
    });
    chmodSync(path, 0o660);
    this.#server = server;
  }

  async stop(): Promise<void> {
    const s = this.#server;
    this.#server = null;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
    // node:http removes the socket file on close; make sure for the crash-repair check above.
    if (existsSync(this.socketPath)) unlinkSync(this.socketPath);
  }
}

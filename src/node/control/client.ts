/**
 * The control API's client (what the CLI uses): JSON requests on the unix socket; the daemon's
 * error bodies become ApiResponseError, a missing daemon DaemonUnreachableError.
 */
import { request, type IncomingMessage } from 'node:http';
import { ApiResponseError, DaemonUnreachableError, type ApiErrorBody } from './errors.js';

export class ControlClient {
  constructor(readonly socketPath: string) {}

  #open(method: string, path: string, body?: unknown): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const data = body === undefined ? undefined : JSON.stringify(body);
      const req = request(
        { socketPath: this.socketPath, agent: false, method, path, headers: data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {} },
        resolve,
      );
      req.on('error', (e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED' || e.code === 'ENOTSOCK' || e.code === 'EACCES') {
          reject(new DaemonUnreachableError(this.socketPath, e));
        } else reject(e);
      });
      req.end(data);
    });
  }

  async call<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.#open(method, path, body);
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new ApiResponseError(res.statusCode ?? 0, { code: 'BAD_RESPONSE', message: `the daemon answered with non-JSON: ${text.slice(0, 200)}`, errors: [] });
    }
    if ((res.statusCode ?? 500) >= 400) {
      const err = (value as Partial<ApiErrorBody>).error;
      throw new ApiResponseError(res.statusCode ?? 0, err ?? { code: 'BAD_RESPONSE', message: text.slice(0, 200), errors: [] });
    }
    return value as T;
  }

  /**
   * Streams ndjson lines of `path` to `onLine` until `signal` aborts or the daemon closes it.
   */
  async stream(path: string, onLine: (value: unknown) => void, signal?: AbortSignal): Promise<void> {
    const res = await this.#open('GET', path);
    if ((res.statusCode ?? 500) >= 400) {
      const chunks: Buffer[] = [];
      for await (const c of res) chunks.push(c as Buffer);
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as ApiErrorBody;
      throw new ApiResponseError(res.statusCode ?? 0, body.error);
    }
    signal?.addEventListener('abort', () => res.destroy(), { once: true });
    let buf = '';
    try {
      for await (const c of res) {
        buf += (c as Buffer).toString('utf8');
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line.trim() !== '') onLine(JSON.parse(line));
        }
      }
    } catch (e) {
      // Aborting destroys the response, which ends the iteration with an error: that is the normal end.
      if (!signal?.aborted) throw e;
    }
  }
}

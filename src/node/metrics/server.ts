/**
 * The HTTP server Prometheus scrapes: GET /metrics, nothing else. Listening errors (address in
 * use, no permission) reject start() with a MetricsListenError that names the address.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { NodeMetrics } from './node-metrics.js';

export class MetricsListenError extends Error {
  readonly code = 'METRICS_LISTEN_FAILED';
  constructor(host: string, port: number, cause: unknown) {
    const why = cause instanceof Error ? cause.message : String(cause);
    super(`cannot serve metrics on ${host}:${port}: ${why}. Change metrics.listen in the config or free the port.`);
    this.name = 'MetricsListenError';
  }
}

export class MetricsServer {
  #server: Server | null = null;

  constructor(readonly metrics: NodeMetrics, readonly host: string, readonly port: number) {}

  async start(): Promise<void> {
    const server = createServer((req, res) => {
      if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics here\n');
        return;
      }
      this.metrics.metrics().then(
        (text) => res.writeHead(200, { 'content-type': this.metrics.contentType }).end(text),
        (e: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics collection failed: ${String(e)}\n`),
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e) => reject(new MetricsListenError(this.host, this.port, e)));
      server.listen(this.port, this.host, () => resolve());
    });
    this.#server = server;
  }

  /** The bound address (the port chosen when the config said 0). */
  address(): AddressInfo | null {
    const a = this.#server?.address();
    return a && typeof a === 'object' ? a : null;
  }

  async stop(): Promise<void> {
    const s = this.#server;
    this.#server = null;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}

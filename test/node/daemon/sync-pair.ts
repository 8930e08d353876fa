/**
 * Two test nodes in one process, their sync joined by LoopTransport (src/sync/transport.ts), each
 * with its own folder, control socket, metrics and logs, and a clock that moves with real time.
 */
import { LoopTransport } from '../../../src/sync/index.js';
import { startTestNode, type TestNode } from './fixture.js';

export const SYNC_KEY = `${'3c'.repeat(32)}\n`;

export interface PairOptions {
  /** YAML list items of sync.exempt, e.g. '[{ proto: udp }]'. */
  exempt?: string;
  /** Key file contents per node (default the same key on both). */
  keys?: [string, string];
  /** Sync node ids (default 1 and 2). */
  ids?: [number, number];
  tickMs?: number;
}

export function syncSection(nodeId: number, exempt?: string): string {
  return `
sync:
  nodeId: ${nodeId}
  interface: sync0
  address: 192.168.50.${nodeId}
  group: 225.0.0.50
  keys: [{ id: 1, file: sync.key }]
  sendKey: 1
${exempt ? `  exempt: ${exempt}\n` : ''}`;
}

export interface SyncPair {
  a: TestNode;
  b: TestNode;
  ta: LoopTransport;
  tb: LoopTransport;
  cleanup(): Promise<void>;
}

export async function startSyncPair(o: PairOptions = {}): Promise<SyncPair> {
  const [ta, tb] = LoopTransport.pair();
  const [ia, ib] = o.ids ?? [1, 2];
  const [ka, kb] = o.keys ?? [SYNC_KEY, SYNC_KEY];
  const tickMs = o.tickMs ?? 20;
  const a = await startTestNode({ name: 'fw-a', configExtra: syncSection(ia, o.exempt), files: { 'sync.key': ka }, syncTransport: ta, tickMs, flowingClock: true });
  const b = await startTestNode({ name: 'fw-b', configExtra: syncSection(ib, o.exempt), files: { 'sync.key': kb }, syncTransport: tb, tickMs, flowingClock: true });
  return {
    a, b, ta, tb,
    async cleanup() {
      await a.cleanup();
      await b.cleanup();
    },
  };
}

/** Waits until cond() holds; fails with `what` after timeoutMs. */
export async function until(cond: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const t0 = performance.now();
  while (!cond()) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Both nodes finished their startup resync. */
export function synced(p: SyncPair): Promise<void> {
  return until(() => Boolean(p.a.node.sync?.peer?.synced && p.b.node.sync?.peer?.synced), 'both nodes to finish their startup resync');
}

/** A log line with this message (prefix) was written. */
export function logged(t: TestNode, msg: string): Record<string, unknown> | undefined {
  return t.logs.find((l) => typeof l.msg === 'string' && l.msg.startsWith(msg));
}

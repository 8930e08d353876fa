/**
 * The two sync-node lab agents (agents/sync-node.ts) of fw1 and fw2, driven from the test process:
 * start with a shared random key, ask, count, read the table as records, inject loss on the sync
 * link, stop. Used by test/lab/sync.test.ts and bench/sync/twinwall.ts.
 */
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { recordsFromBytes } from '../../src/node/conntrack/index.js';
import { diffRecords } from '../../src/sync/index.js';
import type { LineAgent } from './netns.js';
import { LAB_ADDR, type LabTopology } from './topology.js';

export type Fw = 'fw1' | 'fw2';
export const SYNC_GROUP = '225.0.0.50';
export const SYNC_PORT = 3780;
/** The compiled agent: next to this file in dist/, or in dist/ when this runs from source (vitest). */
const agentPath = fileURLToPath(new URL(import.meta.url.includes('/dist/') ? './agents/sync-node.js' : '../../dist/test/lab/agents/sync-node.js', import.meta.url));

export interface SyncAgentStart {
  /** Unicast to the other node's sync address instead of the multicast group. */
  unicast?: boolean;
  maxEntries?: number;
  /** SyncNodeOptions tuning passed to the node. */
  tuning?: Record<string, number>;
  /** The agent's main thread (engine and sync) in SCHED_RR at this priority; 0 or absent: normal. */
  realtimePriority?: number;
  /** Before `node` on the command line, and node's own flags. */
  wrapper?: string[];
  nodeFlags?: string[];
}

export class SyncAgents {
  readonly key = randomBytes(32).toString('hex');
  readonly #agents: Partial<Record<Fw, LineAgent>> = {};

  constructor(readonly topo: LabTopology, readonly timeoutMs = 20_000) {}

  async ask<T>(fw: Fw, line: string, ms = this.timeoutMs): Promise<T> {
    const agent = this.#agents[fw];
    if (agent === undefined) throw new Error(`${fw}: no sync agent running; start it first`);
    const a = JSON.parse(await agent.ask(line, ms)) as T & { ok: boolean; message?: string };
    if (!a.ok) throw new Error(`${fw}: ${line.split(' ')[0]}: ${a.message}`);
    return a;
  }

  /** Start fw's agent; resolves with when its sync started (ms, the shared wall clock). */
  async start(fw: Fw, o: SyncAgentStart = {}): Promise<number> {
    const argv = [...(o.wrapper ?? []), process.execPath, ...(o.nodeFlags ?? []), agentPath];
    this.#agents[fw] = this.topo.lab.agent(this.topo.ns[fw], argv[0] as string, argv.slice(1));
    const other: Fw = fw === 'fw1' ? 'fw2' : 'fw1';
    const where = o.unicast ? { peer: LAB_ADDR[other].sync } : { group: SYNC_GROUP };
    const a = await this.ask<{ startedAt: number }>(fw, `start ${JSON.stringify({
      nodeId: fw === 'fw1' ? 1 : 2, address: LAB_ADDR[fw].sync, ...where, port: SYNC_PORT, keyHex: this.key,
      maxEntries: o.maxEntries, tuning: o.tuning, realtimePriority: o.realtimePriority,
    })}`);
    return a.startedAt;
  }

  /** Quit the agent (its sync closes); a gone agent is not an error here. */
  async stop(fw: Fw): Promise<void> {
    if (this.#agents[fw] === undefined) return;
    await this.ask(fw, 'quit').catch(() => undefined);
    this.#agents[fw] = undefined;
  }

  async stopAll(): Promise<void> {
    await this.stop('fw1');
    await this.stop('fw2');
  }

  async count(fw: Fw): Promise<number> {
    return (await this.ask<{ count: number }>(fw, 'count')).count;
  }

  /**
   * Wait until the node holds `n` entries; returns the time it did, in ms of the clock shared by
   * every process here (performance.timeOrigin + performance.now()).
   */
  async until(fw: Fw, n: number, limitMs: number): Promise<number> {
    return (await this.ask<{ at: number }>(fw, `until ${JSON.stringify({ count: n, ms: limitMs })}`, limitMs + 5000)).at;
  }

  /** The node's table as entry records. */
  async records(fw: Fw): Promise<Uint32Array[]> {
    return recordsFromBytes(Buffer.from((await this.ask<{ records: string }>(fw, 'records')).records, 'base64'));
  }

  /**
   * ms from now until fw2's table equals fw1's (counts first, then the full ct diff), or throws
   * after limitMs with both counts.
   */
  async converge(limitMs = 3000): Promise<number> {
    const t0 = performance.now();
    for (;;) {
      const [a, b] = await Promise.all([this.count('fw1'), this.count('fw2')]);
      const ms = performance.now() - t0;
      if (a === b) {
        const d = diffRecords(await this.records('fw1'), await this.records('fw2'));
        if (d.missing.length + d.extra.length + d.differing.length === 0) return ms;
      }
      if (ms > limitMs) throw new Error(`no convergence after ${Math.round(ms)} ms: fw1 ${a} entries, fw2 ${b}`);
      await new Promise((r) => setTimeout(r, 3));
    }
  }

  /**
   * Bursty loss: both nodes drop every sync datagram for onMs in every onMs + offMs (a DROP rule
   * switched on and off). Returns the function that stops it and removes the rule.
   */
  bursts(onMs: number, offMs: number): () => void {
    const rule = ['INPUT', '-i', 'sync0', '-p', 'udp', '--dport', String(SYNC_PORT), '-j', 'DROP'];
    let on = false;
    let timer: NodeJS.Timeout | null = null;
    const flip = (): void => {
      on = !on;
      for (const fw of ['fw1', 'fw2'] as const) this.topo.try(fw, 'iptables', [on ? '-A' : '-D', ...rule]);
      timer = setTimeout(flip, on ? onMs : offMs);
    };
    flip();
    return () => {
      if (timer !== null) clearTimeout(timer);
      for (const fw of ['fw1', 'fw2'] as const) this.topo.exec(fw, 'iptables', ['-F', 'INPUT']);
    };
  }

  /** Drop sync datagrams arriving at both nodes with probability p (iptables statistic); 0 removes it. */
  loss(p: number): void {
    for (const fw of ['fw1', 'fw2'] as const) {
      this.topo.exec(fw, 'iptables', ['-F', 'INPUT']);
      if (p > 0) {
        this.topo.exec(fw, 'iptables', ['-A', 'INPUT', '-i', 'sync0', '-p', 'udp', '--dport', String(SYNC_PORT),
          '-m', 'statistic', '--mode', 'random', '--probability', String(p), '-j', 'DROP']);
      }
    }
  }
}

/**
 * State sync against the real thing: two engines with sync in fw1 and fw2 of the lab, real UDP
 * multicast on the sync bridge, loss injected with the iptables statistic match (the kernel here
 * has no netem) or by switching a DROP rule on and off (bursts), and restarts of either node.
 * After the load stops, the standby's table must equal the active's (ct diff empty) within 100 ms.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ENTRY_RECORD_BYTES, ENTRY_RECORD_WORDS, recordFromBytes } from '../../src/node/conntrack/index.js';
import { diffRecords } from '../../src/sync/index.js';
import { labAvailable, labRequired, type LineAgent } from './netns.js';
import { LAB_ADDR, LabTopology } from './topology.js';
import { compileProject } from './compile.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const avail = labAvailable();
if (!avail.ok && labRequired) throw new Error(`TWINWALL_REQUIRE_LAB=1 but ${avail.why}`);
const GROUP = '225.0.0.50';
const PORT = 3780;
const KEY = randomBytes(32).toString('hex');

describe.skipIf(!avail.ok)('state sync between fw1 and fw2 over real multicast', () => {
  const topo = new LabTopology();
  const agents: Partial<Record<'fw1' | 'fw2', LineAgent>> = {};

  async function ask<T>(fw: 'fw1' | 'fw2', line: string, ms = 20_000): Promise<T> {
    const a = JSON.parse(await (agents[fw] as LineAgent).ask(line, ms)) as T & { ok: boolean; message?: string };
    if (!a.ok) throw new Error(`${fw}: ${line.split(' ')[0]}: ${a.message}`);
    return a;
  }

  /** Multicast by default; unicast to the other node's sync address where a network has no multicast. */
  async function startNode(fw: 'fw1' | 'fw2', unicast = false): Promise<void> {
    agents[fw] = topo.lab.agent(topo.ns[fw], 'node', [join(root, 'dist/test/lab/agents/sync-node.js')]);
    const nodeId = fw === 'fw1' ? 1 : 2;
    const other = fw === 'fw1' ? 'fw2' : 'fw1';
    const where = unicast ? { peer: LAB_ADDR[other].sync } : { group: GROUP };
    await ask(fw, `start ${JSON.stringify({ nodeId, address: LAB_ADDR[fw].sync, ...where, port: PORT, keyHex: KEY })}`);
  }

  async function stopNode(fw: 'fw1' | 'fw2'): Promise<void> {
    await ask(fw, 'quit').catch(() => undefined);
    agents[fw] = undefined;
  }

  async function records(fw: 'fw1' | 'fw2'): Promise<Uint32Array[]> {
    const b = Buffer.from((await ask<{ records: string }>(fw, 'records')).records, 'base64');
    const out: Uint32Array[] = [];
    for (let o = 0; o < b.length; o += ENTRY_RECORD_BYTES) {
      const w = new Uint32Array(ENTRY_RECORD_WORDS);
      recordFromBytes(b, o, w, 0);
      out.push(w);
    }
    return out;
  }

  /** ms until fw2's table equals fw1's (counts first, then the full diff), or throws. */
  async function converge(limitMs = 3000): Promise<number> {
    const t0 = performance.now();
    for (;;) {
      const [a, b] = await Promise.all([ask<{ count: number }>('fw1', 'count'), ask<{ count: number }>('fw2', 'count')]);
      const ms = performance.now() - t0;
      if (a.count === b.count) {
        const d = diffRecords(await records('fw1'), await records('fw2'));
        if (d.missing.length + d.extra.length + d.differing.length === 0) return ms;
      }
      if (ms > limitMs) throw new Error(`no convergence after ${Math.round(ms)} ms: fw1 ${a.count} entries, fw2 ${b.count}`);
      await new Promise((r) => setTimeout(r, 3));
    }
  }

  /** Drop sync datagrams arriving at both nodes with this probability (iptables statistic). */
  function loss(p: number): void {
    for (const fw of ['fw1', 'fw2'] as const) {
      topo.exec(fw, 'iptables', ['-F', 'INPUT']);
      if (p > 0) topo.exec(fw, 'iptables', ['-A', 'INPUT', '-i', 'sync0', '-p', 'udp', '--dport', String(PORT), '-m', 'statistic', '--mode', 'random', '--probability', String(p), '-j', 'DROP']);
    }
  }

  beforeAll(async () => {
    compileProject(root);
    topo.build();
    await startNode('fw1');
    await startNode('fw2');
  }, 60_000);

  afterAll(async () => {
    try {
      for (const fw of ['fw1', 'fw2'] as const) if (agents[fw]) await stopNode(fw);
    } finally {
      topo.cleanup();
    }
  });

  for (const p of [0, 0.01, 0.1]) {
    it(`under steady new-connection load with ${p * 100} % loss, fw2 equals fw1 within 100 ms of the load stopping`, async () => {
      loss(p);
      try {
        const before = (await ask<{ stats: { retransmitted: number } }>('fw1', 'stats')).stats.retransmitted;
        await ask('fw1', `load ${JSON.stringify({ n: 6000, rate: 20_000, tcp: false })}`);
        await ask('fw1', `load ${JSON.stringify({ n: 1000, rate: 10_000, tcp: true })}`);
        const ms = await converge();
        expect(ms).toBeLessThan(100);
        const after = (await ask<{ stats: { retransmitted: number } }>('fw1', 'stats')).stats.retransmitted;
        // The loss was real and repaired by resends.
        if (p > 0) expect(after).toBeGreaterThan(before);
      } finally {
        loss(0);
      }
    }, 60_000);
  }

  it('under bursty loss (the sync link dropping everything for 20 ms in every 100), fw2 equals fw1 within 100 ms', async () => {
    const rule = ['INPUT', '-i', 'sync0', '-p', 'udp', '--dport', String(PORT), '-j', 'DROP'];
    let on = false;
    let timer: NodeJS.Timeout | null = null;
    const flip = (): void => {
      on = !on;
      for (const fw of ['fw1', 'fw2'] as const) topo.try(fw, 'iptables', [on ? '-A' : '-D', ...rule]);
      timer = setTimeout(flip, on ? 20 : 80);
    };
    flip();
    try {
      await ask('fw1', `load ${JSON.stringify({ n: 8000, rate: 20_000 })}`);
    } finally {
      if (timer !== null) clearTimeout(timer);
      for (const fw of ['fw1', 'fw2'] as const) topo.exec(fw, 'iptables', ['-F', 'INPUT']);
    }
    expect(await converge()).toBeLessThan(100);
  }, 60_000);

  it('a standby restarted mid-load resyncs and converges', async () => {
    const loading = ask('fw1', `load ${JSON.stringify({ n: 20_000, rate: 20_000 })}`);
    await new Promise((r) => setTimeout(r, 300));
    await stopNode('fw2');
    await startNode('fw2');
    await loading;
    await converge();
    const s = await ask<{ stats: { resyncsCompleted: number } }>('fw2', 'stats');
    expect(s.stats.resyncsCompleted).toBeGreaterThanOrEqual(1);
  }, 60_000);

  it('an active restarted (new epoch) is resynced: the standby drops what the new active does not have', async () => {
    await stopNode('fw1');
    await startNode('fw1');
    await ask('fw1', `load ${JSON.stringify({ n: 500, rate: 0 })}`);
    await converge();
    expect((await ask<{ count: number }>('fw2', 'count')).count).toBe(500);
    const s = await ask<{ stats: { resyncSwept: number } }>('fw2', 'stats');
    expect(s.stats.resyncSwept).toBeGreaterThan(0);
  }, 60_000);

  it('works over unicast UDP as well (networks without multicast), with 1 % loss', async () => {
    await stopNode('fw1');
    await stopNode('fw2');
    await startNode('fw1', true);
    await startNode('fw2', true);
    loss(0.01);
    try {
      await ask('fw1', `load ${JSON.stringify({ n: 5000, rate: 20_000 })}`);
      expect(await converge()).toBeLessThan(100);
    } finally {
      loss(0);
    }
    expect((await ask<{ count: number }>('fw2', 'count')).count).toBe(5000);
  }, 60_000);
});

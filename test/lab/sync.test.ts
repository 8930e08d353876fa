/**
 * State sync against the real thing: two engines with sync in fw1 and fw2 of the lab, real UDP
 * multicast on the sync bridge, loss injected with the iptables statistic match (the kernel here
 * has no netem) or by switching a DROP rule on and off (bursts), and restarts of either node.
 * After the load stops, the standby's table must come to equal the active's (ct diff empty); how
 * soon (the 100 ms) is measured by bench/sync (`--only tail`), not asserted here.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { labAvailable, labRequired } from './netns.js';
import { LabTopology } from './topology.js';
import { compileProject } from './compile.js';
import { SyncAgents, type Fw } from './sync-agents.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const avail = labAvailable();
if (!avail.ok && labRequired) throw new Error(`TWINWALL_REQUIRE_LAB=1 but ${avail.why}`);
describe.skipIf(!avail.ok)('state sync between fw1 and fw2 over real multicast', () => {
  const topo = new LabTopology();
  const nodes = new SyncAgents(topo);
  const ask = <T>(fw: Fw, line: string): Promise<T> => nodes.ask<T>(fw, line);
  const startNode = (fw: Fw, unicast = false): Promise<number> => nodes.start(fw, { unicast });
  const stopNode = (fw: Fw): Promise<void> => nodes.stop(fw);

  /** Bounded: the time itself is a figure of bench/sync (its "tail" case, target 100 ms). */
  const converge = (): Promise<number> => nodes.converge(3000);
  const loss = (p: number): void => nodes.loss(p);

  beforeAll(async () => {
    compileProject(root);
    topo.build();
    await startNode('fw1');
    await startNode('fw2');
  }, 60_000);

  afterAll(async () => {
    try {
      await nodes.stopAll();
    } finally {
      topo.cleanup();
    }
  });

  for (const p of [0, 0.01, 0.1]) {
    it(`under steady new-connection load with ${p * 100} % loss, fw2 comes to equal fw1 once the load stops`, async () => {
      loss(p);
      try {
        const before = (await ask<{ stats: { retransmitted: number } }>('fw1', 'stats')).stats.retransmitted;
        await ask('fw1', `load ${JSON.stringify({ n: 6000, rate: 20_000, tcp: false })}`);
        await ask('fw1', `load ${JSON.stringify({ n: 1000, rate: 10_000, tcp: true })}`);
        await converge();
        const after = (await ask<{ stats: { retransmitted: number } }>('fw1', 'stats')).stats.retransmitted;
        // The loss was real and repaired by resends.
        if (p > 0) expect(after).toBeGreaterThan(before);
      } finally {
        loss(0);
      }
    }, 60_000);
  }

  it('under bursty loss (the sync link dropping everything for 20 ms in every 100), fw2 comes to equal fw1', async () => {
    const stopBursts = nodes.bursts(20, 80);
    try {
      await ask('fw1', `load ${JSON.stringify({ n: 8000, rate: 20_000 })}`);
    } finally {
      stopBursts();
    }
    await converge();
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
      await converge();
    } finally {
      loss(0);
    }
    expect((await ask<{ count: number }>('fw2', 'count')).count).toBe(5000);
  }, 60_000);
});

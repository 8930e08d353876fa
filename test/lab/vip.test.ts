/**
 * Virtual addresses against the real thing: VirtualAddresses runs the real `ip` and `arping` in
 * fw1's and fw2's namespaces; the client on the inside network must reach the virtual address
 * at whichever node holds it, and its neighbour cache must follow a move at once (gratuitous
 * ARP), not when the entry expires.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VirtualAddresses, type Exec, type Launch } from '../../src/failover/index.js';
import { execCommand, launchCommand } from '../../src/failover/vip.js';
import { labAvailable, labRequired } from './netns.js';
import { LAB_IF, LabTopology } from './topology.js';

const avail = labAvailable();
if (!avail.ok && labRequired) throw new Error(`TWINWALL_REQUIRE_LAB=1 but ${avail.why}`);

const VIP = '10.50.1.1';

describe.skipIf(!avail.ok)('virtual addresses in the lab', () => {
  const topo = new LabTopology();
  const inNs = (fw: 'fw1' | 'fw2'): { exec: Exec; launch: Launch } => ({
    exec: (cmd, args, input) => execCommand('ip', ['netns', 'exec', topo.ns[fw], cmd, ...args], input),
    launch: (cmd, args, done) => launchCommand('ip', ['netns', 'exec', topo.ns[fw], cmd, ...args], done),
  });
  const vips = { fw1: null as VirtualAddresses | null, fw2: null as VirtualAddresses | null };
  const macOf = (fw: 'fw1' | 'fw2'): string => /link\/ether ([0-9a-f:]+)/.exec(topo.exec(fw, 'ip', ['link', 'show', LAB_IF.inside]))![1];
  const clientSees = (): string => /lladdr ([0-9a-f:]+)/.exec(topo.exec('client', 'ip', ['neigh', 'show', VIP]))?.[1] ?? '';
  const holds = (fw: 'fw1' | 'fw2'): boolean => topo.exec(fw, 'ip', ['-4', 'addr', 'show', 'dev', LAB_IF.inside]).includes(`${VIP}/24`);

  beforeAll(() => {
    topo.build();
    for (const fw of ['fw1', 'fw2'] as const) vips[fw] = new VirtualAddresses([{ interface: LAB_IF.inside, cidr: `${VIP}/24` }], { ...inNs(fw), announceCount: 2 });
  }, 60_000);

  afterAll(() => topo.cleanup());

  it('the holder answers on the virtual address; a move reaches the client\'s neighbour cache by gratuitous ARP, at once', async () => {
    const fw1 = vips.fw1 as VirtualAddresses;
    const fw2 = vips.fw2 as VirtualAddresses;
    await fw1.claim();
    expect(holds('fw1')).toBe(true);
    topo.exec('client', 'ping', ['-c', '1', '-W', '1', VIP]);
    expect(clientSees()).toBe(macOf('fw1'));
    // Linux ignores an ARP update for an entry changed within the last second (neigh locktime).
    await new Promise((r) => setTimeout(r, 1100));
    const t0 = performance.now();
    await fw1.release();
    await fw2.claim();
    const claimed = performance.now() - t0;
    let seen = -1;
    while (performance.now() - t0 < 1000) {
      if (clientSees() === macOf('fw2')) {
        seen = performance.now() - t0;
        break;
      }
      await new Promise((r) => setTimeout(r, 2));
    }
    console.log(`vip lab: release on fw1 + claim and announce on fw2 took ${claimed.toFixed(1)} ms; the client's neighbour cache pointed at fw2 after ${seen.toFixed(1)} ms`);
    expect(seen).toBeGreaterThanOrEqual(0);
    expect([holds('fw1'), holds('fw2')]).toEqual([false, true]);
    // And it answers there.
    topo.exec('client', 'ping', ['-c', '1', '-W', '1', VIP]);
    expect(fw2.stats.errors).toBe(0);
  });

  it('a release of an address not held is not an error; a claim twice is not either', async () => {
    const fw1 = vips.fw1 as VirtualAddresses;
    await fw1.release();
    await fw1.release();
    const fw2 = vips.fw2 as VirtualAddresses;
    await fw2.claim();
    expect(holds('fw2')).toBe(true);
    await fw2.release();
    expect(holds('fw2')).toBe(false);
  });
});

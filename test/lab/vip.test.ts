/**
 * Virtual addresses against the real thing: VirtualAddresses runs the real `ip` (one long-lived
 * batch per node) and, where it falls back, `arping`, in fw1's and fw2's namespaces; the client on
 * the inside network must reach the virtual address at whichever node holds it, and its neighbour
 * cache must follow a move at once (the kernel's gratuitous ARP, or arping's), not when the entry
 * expires.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IpBatch, VirtualAddresses, type VipOptions } from '../../src/failover/index.js';
import { launchCommand } from '../../src/failover/vip.js';
import { labAvailable, labRequired } from './netns.js';
import { LAB_IF, LabTopology } from './topology.js';

const avail = labAvailable();
if (!avail.ok && labRequired) throw new Error(`TWINWALL_REQUIRE_LAB=1 but ${avail.why}`);

const VIP = '10.50.1.1';

describe.skipIf(!avail.ok)('virtual addresses in the lab', () => {
  const topo = new LabTopology();
  const macOf = (fw: 'fw1' | 'fw2'): string => /link\/ether ([0-9a-f:]+)/.exec(topo.exec(fw, 'ip', ['link', 'show', LAB_IF.inside]))![1];
  /** What the daemon does in its own namespace, done from here into the node's. */
  const inNs = (fw: 'fw1' | 'fw2', arpNotify = true): VipOptions => ({
    ip: new IpBatch({ args: ['-n', topo.ns[fw]] }),
    launch: (cmd, args, done) => launchCommand('ip', ['netns', 'exec', topo.ns[fw], cmd, ...args], done),
    macOf: () => (macs[fw] ??= macOf(fw)),
    settings: {
      apply: (ifs, key, value) => {
        if (!arpNotify) throw new Error('read-only (as this test has it)');
        for (const i of ifs) topo.exec(fw, 'sysctl', ['-qw', `net.ipv4.conf.${i}.${key}=${value}`]);
      },
      restore: () => [],
    },
  });
  const vips = { fw1: null as VirtualAddresses | null, fw2: null as VirtualAddresses | null };
  const ips: IpBatch[] = [];
  const macs: Partial<Record<'fw1' | 'fw2', string>> = {};
  const clientSees = (): string => /lladdr ([0-9a-f:]+)/.exec(topo.exec('client', 'ip', ['neigh', 'show', VIP]))?.[1] ?? '';
  const holds = (fw: 'fw1' | 'fw2'): boolean => topo.exec(fw, 'ip', ['-4', 'addr', 'show', 'dev', LAB_IF.inside]).includes(`${VIP}/24`);

  beforeAll(() => {
    topo.build();
    for (const fw of ['fw1', 'fw2'] as const) {
      const o = inNs(fw);
      ips.push(o.ip as IpBatch);
      vips[fw] = new VirtualAddresses([{ interface: LAB_IF.inside, cidr: `${VIP}/24` }], { ...o, announceCount: 2 });
    }
  }, 60_000);

  afterAll(() => {
    vips.fw1?.close();
    vips.fw2?.close();
    topo.cleanup();
  });

  /** fw1 claims, the client learns its MAC; a second later fw1 releases and fw2 claims: how long until the client follows. */
  async function move(fw1: VirtualAddresses, fw2: VirtualAddresses): Promise<{ claimed: number; seen: number }> {
    // As the daemon does at its start: the ip processes run before any claim.
    fw1.start();
    fw2.start();
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
    expect([holds('fw1'), holds('fw2')]).toEqual([false, true]);
    // And it answers there.
    topo.exec('client', 'ping', ['-c', '1', '-W', '1', VIP]);
    expect(fw2.stats.errors).toBe(0);
    await fw2.release();
    return { claimed, seen };
  }

  it('the holder answers on the virtual address; a move reaches the client\'s neighbour cache by the kernel\'s gratuitous ARP, at once', async () => {
    const fw1 = vips.fw1 as VirtualAddresses;
    const fw2 = vips.fw2 as VirtualAddresses;
    const { claimed, seen } = await move(fw1, fw2);
    console.log(`vip lab (kernel announcement): release on fw1 + claim and announce on fw2 took ${claimed.toFixed(1)} ms; the client's neighbour cache pointed at fw2 after ${seen.toFixed(1)} ms`);
    expect([...fw2.methods.values()]).toEqual(['kernel']);
    expect(seen).toBeGreaterThanOrEqual(0);
    // No process started for it: the one ip of each node, since its first claim.
    expect(ips.map((ip) => ip.starts)).toEqual([1, 1]);
  });

  it('where arp_notify cannot be set, arping announces instead, and the client follows as well', async () => {
    const a = new VirtualAddresses([{ interface: LAB_IF.inside, cidr: `${VIP}/24` }], { ...inNs('fw1', false), announceCount: 2 });
    const b = new VirtualAddresses([{ interface: LAB_IF.inside, cidr: `${VIP}/24` }], { ...inNs('fw2', false), announceCount: 2 });
    try {
      const { claimed, seen } = await move(a, b);
      console.log(`vip lab (arping): release on fw1 + claim and announce on fw2 took ${claimed.toFixed(1)} ms; the client's neighbour cache pointed at fw2 after ${seen.toFixed(1)} ms`);
      expect([...b.methods.values()]).toEqual(['arping']);
      expect(seen).toBeGreaterThanOrEqual(0);
    } finally {
      a.close();
      b.close();
    }
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

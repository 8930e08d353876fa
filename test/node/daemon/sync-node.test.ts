import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { existsSync } from 'node:fs';
import { CtStatus } from '../../../src/node/conntrack/index.js';
import { FirewallNode, parseConfig } from '../../../src/node/daemon/index.js';
import { checkSyncAddress } from '../../../src/node/daemon/sync-link.js';
import { createSocket } from 'node:dgram';
import { SyncTransportError, UdpTransport } from '../../../src/sync/index.js';
import { FakeDataplane, RULES, feedTraffic, startTestNode, writeNodeFiles, type TestNode } from './fixture.js';
import { SYNC_KEY, logged, startSyncPair, syncSection, synced, until, type SyncPair } from './sync-pair.js';

let p: SyncPair | null = null;
afterEach(async () => {
  await p?.cleanup();
  p = null;
});

function replicated(t: SyncPair['b']): number {
  const table = t.node.engine.conntrack.table;
  let n = 0;
  table.forEach((s) => void (n += (table.statusOf(s) & CtStatus.REPLICATED) !== 0 ? 1 : 0));
  return n;
}

describe('FirewallNode with sync', () => {
  it('replicates entries to the peer, keeps the sync port out of the queue and logs the sync events', async () => {
    p = await startSyncPair();
    const { a, b } = p;
    expect(a.dataplane.options?.excludedUdpPorts).toEqual([3780]);
    expect(logged(a, 'sync started (multicast 225.0.0.50:3780)')).toMatchObject({ nodeId: 1, interface: 'sync0', address: '192.168.50.1' });
    // Before asking its peer for the table, each node ran its scratch resyncs (src/sync/warmup.ts).
    expect(logged(a, 'sync code warmed up (scratch resyncs in this process)')).toMatchObject({ rounds: 3, entries: 3 * 16384 });
    await synced(p);
    feedTraffic(a);
    await until(() => replicated(b) === 2, 'the peer to hold both entries');
    expect(b.node.engine.conntrack.table.count).toBe(2);
    expect(a.node.sync?.stats.entriesSent.create).toBe(2);
    // The node's tick polls the figures: first contact and the completed resync are logged.
    await until(() => logged(a, 'sync resync completed') !== undefined, 'the resync log line');
    expect(logged(a, 'sync peer first contact')).toMatchObject({ peer: 2, component: 'sync', level: 30 });
    await until(() => logged(b, 'sync peer first contact') !== undefined, "b's first contact log line");
    expect(logged(b, 'sync peer first contact')).toMatchObject({ peer: 1 });
  });

  it('warns when the peer is lost for 3 s and logs when contact comes back', async () => {
    p = await startSyncPair();
    const { a, tb } = p;
    await synced(p);
    await until(() => logged(a, 'sync peer first contact') !== undefined, 'first contact logged');
    tb.fate = () => 1; // the peer's datagrams no longer arrive
    await new Promise((r) => setTimeout(r, 30));
    a.clock.now += 3100;
    await until(() => logged(a, 'sync peer lost') !== undefined, 'the peer-lost warning');
    expect(logged(a, 'sync peer lost')).toMatchObject({ level: 40, peer: 2, msg: 'sync peer lost: no contact for 3 s' });
    tb.fate = () => 0;
    await until(() => logged(a, 'sync peer contact restored') !== undefined, 'contact restored');
  });

  it('does not replicate exempt entries', async () => {
    p = await startSyncPair({ exempt: '[{ proto: udp }]' });
    await synced(p);
    feedTraffic(p.a);
    await until(() => replicated(p!.b) === 1, 'the TCP entry on the peer');
    await new Promise((r) => setTimeout(r, 30));
    const b = p.b.node.engine.conntrack.table;
    const protos: number[] = [];
    b.forEach((s) => void protos.push(b.tuples[b.tupleOffset(s, 0) + 9] & 0xff));
    expect(protos).toEqual([6]);
  });

  it('warns about authentication failures when the keys differ, and about a peer with our own id', async () => {
    p = await startSyncPair({ keys: [SYNC_KEY, `${'7d'.repeat(32)}\n`] });
    await until(() => logged(p!.a, 'sync datagrams failed authentication') !== undefined, 'the authentication warning');
    expect(p.a.node.sync?.peer).toBeNull();
    await p.cleanup();
    p = await startSyncPair({ ids: [5, 5] });
    await until(() => logged(p!.a, "sync datagrams carry this node's own id") !== undefined, 'the duplicate id warning');
  });

  it('closes the sync link at stop, after the data plane', async () => {
    p = await startSyncPair();
    await synced(p);
    await p.a.node.stop();
    expect(p.a.logs.findIndex((l) => l.msg === 'sync stopped')).toBeGreaterThan(-1);
    expect(p.a.dataplane.stopped).toBe(1);
    // Still readable: the last figures.
    expect(p.a.node.syncStatus()?.peer?.id).toBe(2);
  });

  it('refuses to start when the sync link cannot open, leaving nothing listening', async () => {
    const { mkdtempSync, writeFileSync, readFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = mkdtempSync(join(tmpdir(), 'tw-sync-'));
    writeFileSync(join(dir, 'sync.key'), SYNC_KEY);
    const { configPath, socket } = writeNodeFiles(dir, RULES, { configExtra: syncSection(1) });
    const config = parseConfig(readFileSync(configPath, 'utf8'), dir);
    const dp = new FakeDataplane();
    const node = new FirewallNode({
      config, dataplane: () => dp, logger: pino({ level: 'silent' }),
      syncTransport: () => Promise.reject(new SyncTransportError('cannot open the sync socket on 225.0.0.50:3780: EADDRINUSE')),
    });
    await expect(node.start()).rejects.toMatchObject({ code: 'SYNC_TRANSPORT' });
    expect(dp.started).toBe(0);
    expect(existsSync(socket)).toBe(false);
    expect(node.state).toBe('stopped');
  });
});

describe('FirewallNode with sync over UDP', () => {
  it('opens the default transport (unicast on loopback, address checked on lo) and replicates', async () => {
    // A free UDP port (both nodes use the same one, each on its own address).
    const probe = createSocket('udp4');
    await new Promise<void>((r) => probe.bind(0, '127.0.0.1', () => r()));
    const port = probe.address().port;
    await new Promise<void>((r) => probe.close(() => r()));
    const section = (id: number, peer: number) =>
      `\nsync:\n  nodeId: ${id}\n  interface: lo\n  address: 127.0.0.${id}\n  peer: 127.0.0.${peer}\n  port: ${port}\n  keys: [{ id: 1, file: sync.key }]\n  sendKey: 1\n`;
    const nodes: TestNode[] = [];
    try {
      // Node a opens its own socket (the default factory); b's address is not listed on lo, so it is given one.
      nodes.push(await startTestNode({ name: 'fw-a', configExtra: section(1, 2), files: { 'sync.key': SYNC_KEY }, flowingClock: true, tickMs: 20 }));
      const tb = await UdpTransport.open({ localAddress: '127.0.0.2', port, peerAddress: '127.0.0.1' });
      nodes.push(await startTestNode({ name: 'fw-b', configExtra: section(2, 1), files: { 'sync.key': SYNC_KEY }, flowingClock: true, tickMs: 20, syncTransport: tb }));
      const [a, b] = nodes;
      expect(a.dataplane.options?.excludedUdpPorts).toEqual([port]);
      await until(() => Boolean(a.node.sync?.peer?.synced && b.node.sync?.peer?.synced), 'both nodes to finish their startup resync');
      feedTraffic(a);
      await until(() => b.node.engine.conntrack.table.count === 2, 'the entries on the peer');
      expect(logged(a, 'sync started (unicast to 127.0.0.2')).toBeDefined();
    } finally {
      for (const n of nodes) await n.cleanup();
    }
  });
});

describe('sync link checks', () => {
  const c = { interface: 'sync0', address: '192.168.50.1' } as Parameters<typeof checkSyncAddress>[0];
  const info = (address: string) => ({ address, family: 'IPv4' as const, netmask: '255.255.255.0', mac: '00:00:00:00:00:00', internal: false, cidr: null });

  it('names the interface or the address that is wrong', () => {
    expect(() => checkSyncAddress(c, { sync0: [info('192.168.50.1')] })).not.toThrow();
    expect(() => checkSyncAddress(c, { eth0: [info('10.0.0.1')] })).toThrow(/sync interface sync0 has no address or does not exist \(interfaces with addresses: eth0\)/);
    expect(() => checkSyncAddress(c, { sync0: [info('192.168.50.9')] })).toThrow(/192\.168\.50\.1 is not an address of sync0 \(it has 192\.168\.50\.9\); fix sync\.address/);
  });
});

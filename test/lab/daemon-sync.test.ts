/**
 * The pair as operators run it: `twinwall node --config FILE` in fw1 and in fw2 of the lab, each
 * with its data plane on NFQUEUE and a sync section (multicast on sync0, a shared key file), real
 * traffic from the client through fw1 with SNAT. What an operator checks: `twinwall sync status`
 * on the standby (peer heard, synced, entries applied), `twinwall ct diff` between the two nodes
 * (equal), the standby's `ct list` (the peer's flows, REPLICATED, with the same NAT mapping), and
 * the standby's /metrics. SIGTERM stops both cleanly.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { labAvailable, labRequired } from './netns.js';
import { LAB_ADDR } from './topology.js';
import { compileProject } from './compile.js';
import { DaemonPair, type Fw } from './daemon-pair.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const rules = fileURLToPath(new URL('./lab-nat-rules.yaml', import.meta.url));
const peerEcho = fileURLToPath(new URL('./agents/peer-echo.py', import.meta.url));
const ECHO = 7001;
const avail = labAvailable();
if (!avail.ok && labRequired) throw new Error(`TWINWALL_REQUIRE_LAB=1 but ${avail.why}`);

describe.skipIf(!avail.ok)('a twinwall pair with state sync in the lab (two daemons, real multicast)', () => {
  const pair = new DaemonPair('twpair-');
  const { topo, dir, daemons } = pair;
  const sock = (fw: Fw): string => pair.sock(fw);
  const twinwall = (fw: Fw, ...args: string[]) => pair.twinwall(fw, ...args);
  const until = (what: string, ok: () => boolean, ms?: number): Promise<void> => pair.until(what, ok, ms);
  const servers: ChildProcess[] = [];
  let clientPort = 0;

  function start(fw: Fw, queue: number, nodeId: number, metricsPort: number): void {
    pair.start(fw, [
      `node: { name: lab-${fw} }`,
      `dataplane: { interfaces: [inside0, outside0], queue: ${queue} }`,
      `ruleset: ${rules}`,
      'conntrack: { maxEntries: 4096 }',
      `control: { socket: ${sock(fw)} }`,
      `metrics: { listen: "127.0.0.1:${metricsPort}" }`,
      'log: { level: info }',
      'sync:',
      `  nodeId: ${nodeId}`,
      '  interface: sync0',
      `  address: ${LAB_ADDR[fw].sync}`,
      '  group: 225.0.0.51',
      '  port: 3781',
      '  keys: [{ id: 1, file: sync.key }]',
      '  sendKey: 1',
    ]);
  }

  beforeAll(async () => {
    compileProject(root);
    topo.build();
    writeFileSync(join(dir, 'sync.key'), `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
    servers.push(spawn('ip', ['netns', 'exec', topo.ns.server, 'python3', peerEcho, LAB_ADDR.server, String(ECHO)], { stdio: 'ignore' }));
    start('fw1', 47, 1, 9731);
    start('fw2', 48, 2, 9732);
    for (const fw of ['fw1', 'fw2'] as const) {
      await until(`${fw} answering on its socket`, () => existsSync(sock(fw)) && twinwall(fw, 'ct', 'count').code === 0);
    }
    await until('the echo server', () => topo.try('server', 'ss', ['-Hltn', `sport = :${ECHO}`]).out.trim() !== '', 5000);
  }, 90_000);

  afterAll(() => {
    try {
      for (const s of servers) s.kill('SIGKILL');
    } finally {
      pair.cleanup();
    }
  });

  it('the standby hears the active, finishes its startup resync and says so in sync status', async () => {
    await until('fw2 synced with fw1', () => pair.synced('fw2'));
    const text = twinwall('fw2', 'sync', 'status');
    expect(text.out).toMatch(/^peer: node 1, /m);
    expect(text.out).toContain("synced: yes (this node holds the peer's whole table)");
    expect(text.out).toMatch(/auth failures 0/);
  });

  it('replicates the flows real traffic made through fw1, NAT mapping included: ct diff finds the tables equal', async () => {
    const tcp = topo.try('client', 'python3', ['-c', [
      'import socket', `s=socket.create_connection(("${LAB_ADDR.server}",${ECHO}),timeout=3)`,
      'print(s.getsockname()[1], s.makefile().readline().split()[1])',
    ].join('\n')]);
    expect(tcp.code, tcp.err).toBe(0);
    clientPort = Number(tcp.out.trim().split(' ')[0]);
    expect(topo.try('client', 'ping', ['-c', '2', '-i', '0.2', '-W', '1', LAB_ADDR.server]).code).toBe(0);
    await until('ct diff equal', () => twinwall('fw1', 'ct', 'diff', '--peer-socket', sock('fw2')).code === 0);
    const diff = twinwall('fw1', 'ct', 'diff', '--peer-socket', sock('fw2'));
    expect(diff.out).toMatch(/^tables equal: \d+ entries on this node and on the peer$/m);
    type E = { proto: string; flags: string[]; original: { sport: number }; reply: { dst: string; dport: number } };
    const mine = JSON.parse(twinwall('fw1', 'ct', 'list', '-p', 'tcp', '--sport', String(clientPort), '-o', 'json').out) as E[];
    const theirs = JSON.parse(twinwall('fw2', 'ct', 'list', '-p', 'tcp', '--sport', String(clientPort), '-o', 'json').out) as E[];
    expect(theirs).toHaveLength(1);
    expect(theirs[0].flags).toContain('REPLICATED');
    expect(theirs[0].reply).toEqual(mine[0].reply);
    expect(theirs[0].reply.dst).toBe(LAB_ADDR.fw1.outside);
  });

  it("the standby's /metrics count what it applied and say it is synced", () => {
    const r = topo.try('fw2', 'curl', ['-sS', '--max-time', '5', 'http://127.0.0.1:9732/metrics']);
    expect(r.code, `${r.err}\n${pair.log}`).toBe(0);
    const text = r.out;
    const value = (re: RegExp): number => Number(re.exec(text)?.[1] ?? NaN);
    expect(value(/^twinwall_sync_peer_synced\{node="lab-fw2"\} (\S+)$/m)).toBe(1);
    expect(value(/^twinwall_sync_entries_applied_total\{op="create",node="lab-fw2"\} (\S+)$/m)).toBeGreaterThan(0);
    expect(value(/^twinwall_sync_auth_failures_total\{node="lab-fw2"\} (\S+)$/m)).toBe(0);
    expect(text).toMatch(/^twinwall_sync_lag_seconds_bucket\{le="/m);
  });

  it('SIGTERM stops both nodes with exit 0 and no rule left', async () => {
    for (const fw of ['fw1', 'fw2'] as const) daemons[fw]?.child.kill('SIGTERM');
    for (const fw of ['fw1', 'fw2'] as const) expect(await daemons[fw]?.exited).toBe(0);
    for (const fw of ['fw1', 'fw2'] as const) expect(topo.try(fw, 'iptables', ['-t', 'raw', '-S']).out).not.toContain('TWINWALL');
  });
});

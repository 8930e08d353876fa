/**
 * The data plane against the real thing: the engine on NFQUEUE in fw1 of the lab, with
 * test/lab/lab-rules.yaml, and real traffic from the client and server namespaces: an HTTP
 * transfer, UDP, ping, unsolicited inbound attempts, a REJECT answered with a reset, malformed
 * packets sent with a raw socket; then the node must still forward, and stop() must leave no rule.
 *
 * The node runs as a child (dataplane-node agent, compiled by tsc here) inside fw1: an NFQUEUE
 * socket belongs to the namespace of the process that opens it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { labAvailable, labRequired, type LineAgent } from './netns.js';
import { LAB_ADDR, LabTopology } from './topology.js';
import { buildTcp, buildUdp } from '../../src/node/packet/build.js';
import { TcpFlag } from '../../src/node/packet/fields.js';
import { compileProject } from './compile.js';
import { quitAgent, startDataplaneAgent } from './dataplane-agent.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const rules = fileURLToPath(new URL('./lab-rules.yaml', import.meta.url));
// http.server without its reverse DNS lookup, which can hold the listen for seconds (see the agent).
const httpServe = fileURLToPath(new URL('./agents/http-serve.py', import.meta.url));
const { SYN, FIN } = TcpFlag;
const QUEUE = 41;
const avail = labAvailable();
if (!avail.ok && labRequired) throw new Error(`TWINWALL_REQUIRE_LAB=1 but ${avail.why}`);

interface NodeStats {
  dataplane: { counters: Record<string, number>; kernel: { queueDropped: number; userDropped: number } | null };
  engine: { accepted: number; dropped: number; rejects: number; drops: Record<string, number>; invalid: Record<string, number> };
  table: string[];
  engineErrors: string[];
}

describe.skipIf(!avail.ok)('data plane on NFQUEUE in the lab', () => {
  const topo = new LabTopology();
  let node: LineAgent;
  let dir = '';
  const servers: ChildProcess[] = [];

  /** A server process in a namespace, killed in afterAll. */
  function serve(ns: string, args: string[]): void {
    const c = spawn('ip', ['netns', 'exec', ns, ...args], { stdio: 'ignore' });
    servers.push(c);
  }


  async function stats(): Promise<NodeStats> {
    const a = JSON.parse(await node.ask('stats')) as NodeStats & { ok: boolean };
    expect(a.ok).toBe(true);
    return a;
  }


  beforeAll(async () => {
    compileProject(root);
    topo.build();
    dir = mkdtempSync(join(tmpdir(), 'twlab-'));
    writeFileSync(join(dir, 'blob'), Buffer.alloc(1 << 20, 0x61));
    serve(topo.ns.server, ['python3', httpServe, LAB_ADDR.server, '8080', dir]);
    serve(topo.ns.server, ['python3', httpServe, LAB_ADDR.server, '8081', dir]);
    serve(topo.ns.client, ['python3', httpServe, LAB_ADDR.client, '8080', dir]);
    serve(topo.ns.server, ['python3', '-c', [
      'import socket', 's=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)', `s.bind(("${LAB_ADDR.server}",5353))`,
      'while True:', ' d,a=s.recvfrom(2048); s.sendto(b"echo:"+d,a)',
    ].join('\n')]);
    node = await startDataplaneAgent(topo, rules, { queueNum: QUEUE, dataInterfaces: ['inside0', 'outside0'], excludedUdpPorts: [3780], ipv6: false });
    await topo.waitListening('server', 8080);
    await topo.waitListening('server', 8081);
    await topo.waitListening('client', 8080);
  }, 60_000);

  afterAll(async () => {
    try {
      await quitAgent(node);
    } finally {
      for (const s of servers) s.kill('SIGKILL');
      topo.cleanup();
      if (dir) rmSync(dir, { recursive: true, force: true });
    }
  });

  it('installs its chain in raw PREROUTING for the data interfaces only', () => {
    const raw = topo.exec('fw1', 'iptables', ['-t', 'raw', '-S']);
    expect(raw).toContain('-A PREROUTING -i inside0 -j TWINWALL');
    expect(raw).toContain('-A PREROUTING -i outside0 -j TWINWALL');
    expect(raw).not.toContain('-i sync0');
    expect(raw).toContain('-A TWINWALL -p udp -m multiport --dports 3780 -j RETURN');
    expect(raw).toContain('-A TWINWALL -j CT --notrack');
    expect(raw).toContain(`-A TWINWALL -j NFQUEUE --queue-num ${QUEUE}`);
    expect(raw).not.toContain('--queue-bypass');
  });

  it('passes ping, an HTTP transfer of 1 MiB and UDP from client to server', async () => {
    expect(topo.try('client', 'ping', ['-c', '3', '-i', '0.2', '-W', '1', LAB_ADDR.server]).code).toBe(0);
    const http = topo.try('client', 'curl', ['-sS', '--max-time', '10', '-o', '/dev/null', '-w', '%{http_code} %{size_download}', `http://${LAB_ADDR.server}:8080/blob`]);
    expect(http.out).toBe(`200 ${1 << 20}`);
    const udp = topo.try('client', 'python3', ['-c', [
      'import socket', 's=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)', 's.settimeout(2)',
      `s.sendto(b"hello",("${LAB_ADDR.server}",5353))`, 'print(s.recvfrom(2048)[0].decode())',
    ].join('\n')]);
    expect(udp.out.trim()).toBe('echo:hello');
    const s = await stats();
    expect(s.table.some((l) => l.startsWith('tcp') && l.includes('dport=8080'))).toBe(true);
    expect(s.table.some((l) => l.startsWith('udp') && l.includes('dport=5353') && !l.includes('UNREPLIED'))).toBe(true);
    expect(s.table.some((l) => l.startsWith('icmp'))).toBe(true);
    expect(s.dataplane.counters.accepted).toBeGreaterThan(700);
    expect(s.engineErrors).toEqual([]);
  });

  it('drops unsolicited inbound connections and pings from the server side', async () => {
    const before = (await stats()).engine.drops.ruleset ?? 0;
    const tcp = topo.try('server', 'curl', ['-sS', '--max-time', '2', '-o', '/dev/null', `http://${LAB_ADDR.client}:8080/`]);
    expect(tcp.code).toBe(28); // timed out: the SYN was dropped, no reset came back
    expect(topo.try('server', 'ping', ['-c', '2', '-i', '0.2', '-W', '1', LAB_ADDR.client]).code).not.toBe(0);
    expect((await stats()).engine.drops.ruleset).toBeGreaterThan(before);
  });

  it('answers REJECT with a TCP reset from the server address, although the server listens', async () => {
    const t0 = Date.now();
    const r = topo.try('client', 'curl', ['-sS', '--max-time', '5', '-o', '/dev/null', `http://${LAB_ADDR.server}:8081/`]);
    expect(r.code).toBe(7); // connection refused: a reset, not a timeout
    expect(Date.now() - t0).toBeLessThan(2000);
    const s = await stats();
    expect(s.dataplane.counters.emitted).toBeGreaterThanOrEqual(1);
    expect(s.engine.rejects).toBeGreaterThanOrEqual(1);
  });

  it('counts malformed packets as invalid and keeps forwarding', async () => {
    const sender = topo.lab.agent(topo.ns.client, 'python3', [fileURLToPath(new URL('./agents/rawsend.py', import.meta.url))]);
    const base = { src: LAB_ADDR.client, dst: LAB_ADDR.server };
    const badOffset = buildTcp({ ...base, sport: 40000, dport: 8080, flags: SYN });
    badOffset[20 + 12] = 0x20; // data offset 2 words: below the minimum of 5
    const synFin = buildTcp({ ...base, sport: 40001, dport: 8080, flags: SYN | FIN });
    const badUdpLen = buildUdp({ ...base, sport: 40002, dport: 5353, payloadLength: 8 });
    badUdpLen.writeUInt16BE(200, 20 + 4); // claims 200 bytes, carries 16
    const truncated = Buffer.from(buildTcp({ ...base, sport: 40003, dport: 8080, flags: SYN }).subarray(0, 30));
    truncated.writeUInt16BE(30, 2); // a TCP header cut after 10 bytes, with a consistent IP length
    for (const p of [badOffset, synFin, badUdpLen, truncated]) {
      expect(await sender.ask(p.toString('hex'))).toBe('ok');
    }
    await new Promise((r) => setTimeout(r, 300));
    const s = await stats();
    expect(s.engine.invalid).toMatchObject({ bad_tcp_header: expect.any(Number) as number, bad_tcp_flags: expect.any(Number) as number, bad_udp_length: expect.any(Number) as number });
    expect((s.engine.invalid.truncated ?? 0) + (s.engine.invalid.bad_tcp_header ?? 0)).toBeGreaterThanOrEqual(2);
    expect(s.engine.drops.malformed).toBeGreaterThanOrEqual(4);
    expect(s.engineErrors).toEqual([]);
    // Still forwarding.
    expect(topo.try('client', 'ping', ['-c', '1', '-W', '1', LAB_ADDR.server]).code).toBe(0);
    const http = topo.try('client', 'curl', ['-sS', '--max-time', '5', '-o', '/dev/null', '-w', '%{http_code}', `http://${LAB_ADDR.server}:8080/`]);
    expect(http.out).toBe('200');
  });

  it('reports the queue from the kernel, with no queue drops at this load', async () => {
    const s = await stats();
    expect(s.dataplane.kernel).not.toBeNull();
    expect(s.dataplane.kernel?.queueDropped).toBe(0);
    expect(s.dataplane.kernel?.userDropped).toBe(0);
  });

  it('stop removes every rule it installed, and a second start replaces leftovers', async () => {
    const opts = { queueNum: QUEUE, dataInterfaces: ['inside0', 'outside0'], ipv6: false, failOpen: true };
    expect(JSON.parse(await node.ask('stop'))).toMatchObject({ ok: true });
    let raw = topo.exec('fw1', 'iptables', ['-t', 'raw', '-S']);
    expect(raw).not.toContain('TWINWALL');
    // A leftover from a "crashed" run: a stale jump and a stale chain with another rule.
    topo.exec('fw1', 'iptables-restore', ['--noflush'], '*raw\n:TWINWALL - [0:0]\n-A TWINWALL -j ACCEPT\n-A PREROUTING -i inside0 -j TWINWALL\nCOMMIT\n');
    expect(JSON.parse(await node.ask(`start ${JSON.stringify(opts)}`))).toMatchObject({ ok: true });
    raw = topo.exec('fw1', 'iptables', ['-t', 'raw', '-S']);
    expect(raw.split('\n').filter((l) => l === '-A PREROUTING -i inside0 -j TWINWALL')).toHaveLength(1);
    expect(raw).not.toContain('-A TWINWALL -j ACCEPT');
    expect(raw).toContain(`--queue-num ${QUEUE} --queue-bypass`);
    expect(topo.try('client', 'ping', ['-c', '1', '-W', '1', LAB_ADDR.server]).code).toBe(0);
  });
});

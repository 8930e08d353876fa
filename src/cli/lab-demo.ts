/**
 * The main job for now: build the namespace lab, run one twinwall node (the engine on NFQUEUE in
 * fw1, ruleset test/lab/lab-demo-rules.yaml: the lab rules plus SNAT of the inside network to fw1's
 * outside address and a port forward to the client) with real traffic through it, print what it
 * saw, tear down. Traffic from the client: ping, HTTP transfers (curl against python3's
 * http.server), UDP queries, a connection to a REJECTed port; from the server: the port forward,
 * unsolicited connection and ping attempts. The conntrack table shows each NAT mapping in the
 * entry's reply tuple, as conntrack -L does.
 * Needs root (namespaces, iptables, NFQUEUE). Run compiled: node dist/src/cli/lab-demo.js
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { labAvailable } from '../../test/lab/netns.js';
import { LAB_ADDR, LabTopology } from '../../test/lab/topology.js';

const agentPath = fileURLToPath(new URL('../../test/lab/agents/dataplane-node.js', import.meta.url));
const httpServe = fileURLToPath(new URL('../../../test/lab/agents/http-serve.py', import.meta.url));
const rulesPath = fileURLToPath(new URL('../../../test/lab/lab-demo-rules.yaml', import.meta.url));

interface NodeStats {
  ok: boolean;
  message?: string;
  dataplane: { counters: Record<string, number>; kernel: Record<string, number> | null };
  engine: { accepted: number; dropped: number; rejects: number; drops: Record<string, number>; invalid: Record<string, number> };
  table: string[];
  engineErrors: string[];
}

const avail = labAvailable();
if (!avail.ok) {
  console.error(`lab demo: ${avail.why}; run it as root on Linux (npm start does)`);
  process.exit(1);
}

const topo = new LabTopology();
const children: ChildProcess[] = [];
const dir = mkdtempSync(join(tmpdir(), 'twdemo-'));
const results: [string, string][] = [];

function bg(ns: string, args: string[]): void {
  children.push(spawn('ip', ['netns', 'exec', ns, ...args], { stdio: 'ignore' }));
}

function attempt(what: string, ns: 'client' | 'server', cmd: string, args: string[], ok: (out: string) => string): void {
  let line: string;
  try {
    line = ok(execFileSync('ip', ['netns', 'exec', topo.ns[ns], cmd, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }));
  } catch (e) {
    const err = e as { status?: number; stderr?: string };
    line = `failed (exit ${err.status ?? '?'}): ${(err.stderr ?? '').trim().split('\n').pop() ?? ''}`;
  }
  results.push([what, line]);
}


async function main(): Promise<void> {
  console.log(`twinwall lab demo: building the lab (namespaces client, fw1, fw2, server, sw; suffix ${topo.lab.suffix})`);
  topo.build();
  writeFileSync(join(dir, 'blob'), Buffer.alloc(4 << 20, 0x61));
  bg(topo.ns.server, ['python3', httpServe, LAB_ADDR.server, '8080', dir]);
  bg(topo.ns.server, ['python3', httpServe, LAB_ADDR.server, '8081', dir]);
  bg(topo.ns.client, ['python3', httpServe, LAB_ADDR.client, '8080', dir]);
  bg(topo.ns.client, ['python3', httpServe, LAB_ADDR.client, '8090', dir]);
  bg(topo.ns.server, ['python3', '-c', `import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(("${LAB_ADDR.server}",5353))\nwhile True:\n d,a=s.recvfrom(2048); s.sendto(b"echo:"+d,a)`]);
  const node = topo.lab.agent(topo.ns.fw1, process.execPath, [agentPath, rulesPath]);
  const start = JSON.parse(await node.ask(`start ${JSON.stringify({ queueNum: 40, dataInterfaces: ['inside0', 'outside0'], excludedUdpPorts: [3780], ipv6: false })}`, 15_000)) as NodeStats;
  if (!start.ok) throw new Error(`lab demo: the node did not start: ${start.message ?? ''}`);
  console.log(`node running in ${topo.ns.fw1}: engine on NFQUEUE 40, data interfaces inside0 and outside0, ruleset ${rulesPath}\n`);
  await topo.waitListening('server', 8080);
  await topo.waitListening('server', 8081);
  await topo.waitListening('client', 8080);
  await topo.waitListening('client', 8090);

  attempt('client ping server (3)', 'client', 'ping', ['-c', '3', '-i', '0.2', '-W', '1', LAB_ADDR.server], (o) => o.split('\n').find((l) => l.includes('received')) ?? o);
  for (let i = 0; i < 3; i++) {
    attempt(`client HTTP GET 4 MiB #${i + 1}`, 'client', 'curl', ['-sS', '--max-time', '10', '-o', '/dev/null', '-w', '%{http_code} %{size_download} bytes %{speed_download} B/s', `http://${LAB_ADDR.server}:8080/blob`], (o) => o);
  }
  for (let i = 0; i < 5; i++) {
    attempt(`client UDP query #${i + 1}`, 'client', 'python3', ['-c', `import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.settimeout(2)\ns.sendto(b"q${i}",("${LAB_ADDR.server}",5353))\nprint(s.recvfrom(99)[0].decode())`], (o) => `answer ${o.trim()}`);
  }
  attempt('client TCP to REJECTed port 8081', 'client', 'curl', ['-sS', '--max-time', '3', '-o', '/dev/null', `http://${LAB_ADDR.server}:8081/`], () => 'connected (unexpected)');
  attempt(`server HTTP to forward ${LAB_ADDR.fw1.outside}:8888`, 'server', 'curl', ['-sS', '--max-time', '5', '-o', '/dev/null', '-w', '%{http_code} %{size_download} bytes', `http://${LAB_ADDR.fw1.outside}:8888/blob`], (o) => `${o} (from the client's web server on 8090)`);
  attempt('server unsolicited TCP to client', 'server', 'curl', ['-sS', '--max-time', '2', '-o', '/dev/null', `http://${LAB_ADDR.client}:8080/`], () => 'connected (unexpected)');
  attempt('server unsolicited ping to client', 'server', 'ping', ['-c', '2', '-i', '0.2', '-W', '1', LAB_ADDR.client], () => 'answered (unexpected)');

  const s = JSON.parse(await node.ask('stats')) as NodeStats;
  await node.ask('quit');

  console.log('traffic:');
  for (const [what, r] of results) console.log(`  ${what.padEnd(36)} ${r}`);
  console.log(`\nconntrack table (${s.table.length} entries, as conntrack -L; NAT shows in the reply tuple: SNAT flows are answered to ${LAB_ADDR.fw1.outside}, the port forward from ${LAB_ADDR.client}:8090):`);
  for (const l of s.table) console.log(`  ${l}`);
  const c = s.dataplane.counters;
  console.log('\ndata plane:');
  console.log(`  packets from the queue ${c.received} (${c.receivedBytes} bytes); accepted ${c.accepted}, dropped ${c.dropped}, REJECT answers sent ${c.emitted}, rewritten ${c.modified}, engine errors ${c.engineErrors}`);
  if (s.dataplane.kernel) console.log(`  kernel queue: waiting ${s.dataplane.kernel.waiting}, dropped (queue full) ${s.dataplane.kernel.queueDropped}, dropped (socket full) ${s.dataplane.kernel.userDropped}`);
  console.log(`\nengine verdicts: accepted ${s.engine.accepted}, dropped ${s.engine.dropped} (rejects ${s.engine.rejects})`);
  console.log('drops by reason:');
  for (const [k, v] of Object.entries(s.engine.drops)) console.log(`  ${k}: ${v}`);
  if (Object.keys(s.engine.invalid).length) {
    console.log('invalid by reason:');
    for (const [k, v] of Object.entries(s.engine.invalid)) console.log(`  ${k}: ${v}`);
  }
}

let failed = false;
try {
  await main();
} catch (e) {
  failed = true;
  console.error(e instanceof Error ? e.message : String(e));
} finally {
  for (const c of children) c.kill('SIGKILL');
  topo.cleanup();
  rmSync(dir, { recursive: true, force: true });
  console.log('\nlab removed');
}
process.exit(failed ? 1 : 0);

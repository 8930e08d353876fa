/**
 * Data plane benchmark through the namespace lab (root): iperf3 from client to server through fw1,
 * 64-byte UDP packets (36-byte payload) and bulk TCP, in three set-ups:
 *   (a) kernel forwarding, no queue;  (b) NFQUEUE with an accept-all listener (the binding alone);
 *   (c) twinwall: the engine on NFQUEUE with test/fixtures/rules/bench-100.yaml and SNAT of the
 *       client network to fw1's outside address (every packet rewritten both ways).
 * The lab gets the ruleset's networks as extra addresses (client 10.1.0.10, server 10.2.0.10);
 * TCP on port 443 and UDP on port 53 are what that ruleset accepts. Run: node dist/bench/dataplane.js
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LabTopology } from '../test/lab/topology.js';
import type { LineAgent } from '../test/lab/netns.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

function median(f: Figures[]): Figures {
  const byPps = [...f].sort((x, y) => x.pps - y.pps);
  return byPps[Math.floor(byPps.length / 2)];
}
const agents = fileURLToPath(new URL('../test/lab/agents/', import.meta.url));
const rules100 = fileURLToPath(new URL('../../test/fixtures/rules/bench-100.yaml', import.meta.url));
const C = '10.1.0.10';
const S = '10.2.0.10';
/** fw1's outside address: what the server sees as the client in case (c). */
const FW1_OUTSIDE = '10.50.2.2';
const tmp = mkdtempSync(join(tmpdir(), 'twinwall-bench-'));
const rules = join(tmp, 'bench-100-snat.yaml');
writeFileSync(rules, `${readFileSync(rules100, 'utf8')}\nnat:\n  snat:\n    - { out: outside0, src: 10.1.0.0/16, to: ${FW1_OUTSIDE} }\n`);

interface Figures { pps: number; mbps: number }
type Mode = 'a' | 'b' | 'c';

const topo = new LabTopology();

function iperf(udp: boolean): Figures {
  const args = ['-c', S, '-B', C, '-t', String(SECONDS), '-J', '-p', udp ? '53' : '443'];
  if (udp) args.push('-u', '-b', '0', '-l', '36');
  const j = JSON.parse(topo.exec('client', 'iperf3', args)) as { end: { sum?: { bits_per_second: number; packets: number; seconds: number }; sum_received?: { bits_per_second: number; seconds: number; bytes: number } } };
  if (udp) {
    // Received side: what made it through the firewall. Packets from the server's count (lost ones subtracted).
    const s = j.end.sum as { bits_per_second: number; packets: number; lost_packets?: number; seconds: number };
    const got = s.packets - (s.lost_packets ?? 0);
    return { pps: got / s.seconds, mbps: (got * 64 * 8) / s.seconds / 1e6 };
  }
  const r = j.end.sum_received as { bits_per_second: number; seconds: number; bytes: number };
  return { pps: r.bytes / 1448 / r.seconds, mbps: r.bits_per_second / 1e6 };
}

async function withMode<T>(mode: Mode, fn: () => T): Promise<T> {
  if (mode === 'a') return fn();
  if (mode === 'b') {
    const child = spawn('ip', ['netns', 'exec', topo.ns.fw1, process.execPath, `${agents}accept-all.js`, '43', 'inside0,outside0'], { stdio: ['pipe', 'pipe', 'inherit'] });
    await once(child.stdout, 'data');
    try {
      return fn();
    } finally {
      child.stdin.end();
      await once(child, 'exit');
    }
  }
  const node: LineAgent = topo.lab.agent(topo.ns.fw1, process.execPath, [`${agents}dataplane-node.js`, rules]);
  const r = JSON.parse(await node.ask(`start ${JSON.stringify({ queueNum: 44, dataInterfaces: ['inside0', 'outside0'], ipv6: false })}`, 15_000)) as { ok: boolean; message?: string };
  if (!r.ok) throw new Error(`bench: node did not start: ${r.message ?? ''}`);
  try {
    const figures = fn();
    // The figures count only if the flows really went through SNAT.
    const st = JSON.parse(await node.ask('stats')) as { table: string[] };
    const natted = st.table.filter((l) => l.includes(`dst=${FW1_OUTSIDE} `) && l.includes(`src=${C} `));
    if (natted.length === 0) throw new Error(`bench: no SNATed entry in fw1's table after the run:\n${st.table.join('\n')}`);
    return figures;
  } finally {
    await node.ask('quit');
  }
}

async function main(): Promise<void> {
  topo.build();
  topo.exec('client', 'ip', ['addr', 'add', `${C}/16`, 'dev', 'inside0']);
  topo.exec('server', 'ip', ['addr', 'add', `${S}/16`, 'dev', 'outside0']);
  topo.exec('server', 'ip', ['route', 'add', '10.1.0.0/16', 'via', '10.50.2.2']);
  topo.exec('fw1', 'ip', ['route', 'add', '10.1.0.0/16', 'via', '10.50.1.10']);
  topo.exec('fw1', 'ip', ['route', 'add', '10.2.0.0/16', 'via', '10.50.2.10']);
  const servers = [443, 53].map((p) => spawn('ip', ['netns', 'exec', topo.ns.server, 'iperf3', '-s', '-B', S, '-p', String(p)], { stdio: 'ignore' }));
  try {
    await new Promise((r) => setTimeout(r, 500));
    // Rounds of a, b, c interleaved, medians reported: this VM's speed drifts by tens of percent
    // within a minute, so one run of each mode in a row compares different machines.
    const runs: Record<string, Record<Mode, Figures[]>> = { udp64: { a: [], b: [], c: [] }, tcp: { a: [], b: [], c: [] } };
    for (let round = 0; round < ROUNDS; round++) {
      for (const mode of ['a', 'b', 'c'] as Mode[]) {
        runs.udp64[mode].push(await withMode(mode, () => iperf(true)));
        runs.tcp[mode].push(await withMode(mode, () => iperf(false)));
      }
    }
    const names: Record<Mode, string> = { a: '(a) kernel forwarding', b: '(b) NFQUEUE accept-all', c: '(c) twinwall, 100 rules+SNAT' };
    for (const [kind, r] of Object.entries(runs)) {
      console.log(`\n${kind === 'udp64' ? '64-byte UDP' : 'bulk TCP'} (${SECONDS} s each, median of ${ROUNDS} interleaved rounds):`);
      const med = { a: median(r.a), b: median(r.b), c: median(r.c) };
      for (const m of ['a', 'b', 'c'] as Mode[]) {
        console.log(`  ${names[m].padEnd(30)} ${Math.round(med[m].pps).toLocaleString('en').padStart(12)} pkt/s ${med[m].mbps.toFixed(1).padStart(9)} Mbit/s   (rounds: ${r[m].map((f) => Math.round(f.pps)).join(', ')} pkt/s)`);
      }
      const perRound = r.c.map((f, i) => (f.pps / r.b[i].pps).toFixed(2)).join(', ');
      console.log(`  c/a ${(med.c.pps / med.a.pps).toFixed(3)}   c/b ${(med.c.pps / med.b.pps).toFixed(3)} (per round ${perRound})   b/a ${(med.b.pps / med.a.pps).toFixed(3)}`);
    }
  } finally {
    for (const s of servers) s.kill('SIGKILL');
  }
}

try {
  await main();
} finally {
  topo.cleanup();
  rmSync(tmp, { recursive: true, force: true });
}
process.exit(0);

/**
 * Failover drills in the lab: the pair as operators run it (two daemons with sync and failover,
 * virtual addresses on inside0 and outside0), the client routed through the inside virtual
 * address, the server answering the outside one (SNAT maps to it), long-lived TCP flows (a small
 * message every 20 ms each way) and a 1 kHz UDP probe running through the pair while a fault is
 * injected. The report: flows surviving, flows keeping the NAT port the server saw, the outage
 * (longest run of lost probes) and the longest TCP stall.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { compileProject } from './compile.js';
import { DaemonPair, type Fw } from './daemon-pair.js';
import { DEFAULT_SYNC_PORT } from '../../src/node/daemon/sync-config.js';
import { LAB_ADDR, type LabTopology } from './topology.js';

const root = fileURLToPath(new URL(import.meta.url.includes('/dist/') ? '../../../' : '../../', import.meta.url));
const agent = (name: string): string => join(root, 'test/lab/agents', name);
export const VIP_IN = '10.50.1.1';
export const VIP_OUT = '10.50.2.1';
const PORT = 7100;

export interface DrillReport {
  name: string;
  flows: number;
  survived: number;
  /** Flows the server saw from one port only, start to end (the NAT mapping kept). */
  samePort: number;
  /** Longest run of lost 1 kHz probes, ms. */
  outageMs: number;
  /** Longest time a TCP flow went without an echo, ms. */
  longestStallMs: number;
  /** Each flow's longest stall, ms, shortest first (how the stall spreads over the flows). */
  stallsMs: number[];
  probe: { sent: number; answered: number; ports: number[] };
  /** The two tables after the drill (`twinwall ct diff`, both nodes up again and synced); absent where not measured. */
  divergence?: Divergence;
}

/** What `ct diff` found between the master's table and the backup's once the drill settled. */
export interface Divergence {
  /** Entries on the master. */
  entries: number;
  missing: number;
  extra: number;
  differing: number;
  /** From the first diff until the tables were equal (or the wait ended), ms. */
  settledMs: number;
  /** The node the diff ran on (the master), and a few of the entries that differ, for the report. */
  master: Fw;
  sample: string[];
}

/** The client agent's JSON line (agents/drill-client.py). */
export interface ClientReport {
  flows: { survived: boolean; error: string | null; ports: number[]; stallMs: number; echoes: number }[];
  probe: { sent: number; answered: number; longestLossMs: number; ports: number[] };
}

/** The client agent's report as a DrillReport. */
export function reportOf(name: string, flows: number, c: ClientReport): DrillReport {
  const kept = c.flows.filter((f) => f.survived);
  return {
    name,
    flows,
    survived: kept.length,
    samePort: kept.filter((f) => f.ports.length === 1).length,
    outageMs: c.probe.longestLossMs,
    longestStallMs: Math.max(...c.flows.map((f) => f.stallMs)),
    stallsMs: c.flows.map((f) => f.stallMs).sort((x, y) => x - y),
    probe: { sent: c.probe.sent, answered: c.probe.answered, ports: c.probe.ports },
  };
}

/**
 * The drill's traffic on a lab topology, whatever firewalls it routes through (the twinwall pair
 * here, keepalived + conntrackd in bench/failover): the server agent in `server`, and per run the
 * client agent in `client` with its flows and probe, the fault injected part-way, the report.
 */
export class DrillTraffic {
  #server: ChildProcess | null = null;

  constructor(readonly topo: LabTopology) {}

  /** Route the client and server through the virtual addresses and start the server agent. */
  async start(): Promise<void> {
    const t = this.topo;
    t.exec('client', 'ip', ['route', 'replace', 'default', 'via', VIP_IN]);
    t.exec('server', 'ip', ['route', 'replace', '10.50.1.0/24', 'via', VIP_OUT]);
    this.#server = spawn('ip', ['netns', 'exec', t.ns.server, 'python3', agent('drill-server.py'), LAB_ADDR.server, String(PORT)], { stdio: ['ignore', 'pipe', 'pipe'] });
    await firstLine(this.#server, 'ready', 5000);
  }

  /** Run traffic for `seconds`, inject `fault` after `faultAt` seconds, and report. */
  async run(name: string, fault: () => void | Promise<void>, o: DrillOptions = {}): Promise<DrillReport> {
    const flows = o.flows ?? 50;
    const client = spawn('ip', ['netns', 'exec', this.topo.ns.client, 'python3', agent('drill-client.py'), LAB_ADDR.server, String(PORT), String(flows), String(o.seconds ?? 6)],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    client.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    const lines = createInterface({ input: client.stdout as NodeJS.ReadableStream });
    const it = lines[Symbol.asyncIterator]();
    const first = await Promise.race([it.next(), new Promise<never>((_, rej) => setTimeout(() => rej(new Error(`drill client not ready: ${err}`)), 15_000))]);
    if (first.value !== 'ready') throw new Error(`drill client: ${String(first.value)} ${err}`);
    await new Promise((r) => setTimeout(r, (o.faultAt ?? 2) * 1000));
    await fault();
    const last = await it.next();
    if (last.done) throw new Error(`drill client ended without a report: ${err}`);
    return reportOf(name, flows, JSON.parse(last.value as string) as ClientReport);
  }

  stop(): void {
    this.#server?.kill('SIGKILL');
    this.#server = null;
  }
}

export interface DrillOptions {
  flows?: number;
  seconds?: number;
  faultAt?: number;
}

export class DrillLab {
  readonly pair = new DaemonPair('twdrill-');
  readonly traffic = new DrillTraffic(this.pair.topo);

  /**
   * `conntrack`: the daemons' table size and UDP unreplied timeout (s), for drills with a filled
   * table (test/lab/drill-fill.ts); default 65536 entries and the engine's timeouts.
   */
  constructor(readonly intervalMs = 50, readonly conntrack: { maxEntries?: number; udpUnrepliedS?: number } = {}) {}

  /** Where fw's /metrics listens (its sync address), for a Prometheus in the lab. */
  static metricsTarget(fw: Fw): string {
    return `${LAB_ADDR[fw].sync}:${fw === 'fw1' ? 9761 : 9762}`;
  }

  role(fw: Fw): string | null {
    const r = this.pair.twinwall(fw, 'failover', 'status', '-o', 'json');
    return r.code === 0 ? (JSON.parse(r.out) as { role: string }).role : null;
  }

  start(fw: Fw): void {
    const p = this.pair;
    p.start(fw, [
      `node: { name: drill-${fw} }`,
      `dataplane: { interfaces: [inside0, outside0], queue: ${fw === 'fw1' ? 61 : 62} }`,
      `ruleset: ${join(root, 'test/lab/drill-rules.yaml')}`,
      `conntrack: { maxEntries: ${this.conntrack.maxEntries ?? 65536}${this.conntrack.udpUnrepliedS ? `, timeouts: { udpUnreplied: ${this.conntrack.udpUnrepliedS} }` : ''} }`,
      `control: { socket: ${p.sock(fw)} }`,
      `metrics: { listen: "${DrillLab.metricsTarget(fw)}" }`,
      'log: { level: info }',
      ...DaemonPair.pairSections(fw, { intervalMs: this.intervalMs, vipIn: VIP_IN, vipOut: VIP_OUT }),
      '  stallMs: 2000',
    ]);
  }

  /** Build the lab, start the pair (fw1 master, fw2 backup and synced), route through the virtual addresses. */
  async setup(o: { compile?: boolean } = {}): Promise<void> {
    const p = this.pair;
    if (o.compile ?? true) compileProject(root);
    p.topo.build();
    writeFileSync(join(p.dir, 'sync.key'), `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
    this.start('fw1');
    this.start('fw2');
    await p.until('fw1 master, fw2 backup', () => this.role('fw1') === 'master' && this.role('fw2') === 'backup', 30_000);
    await p.until('fw2 synced', () => p.synced('fw2'));
    await this.traffic.start();
  }

  /** Run traffic for `seconds`, inject `fault` after `faultAt` seconds, and report. */
  async run(name: string, fault: () => void | Promise<void>, o: DrillOptions = {}): Promise<DrillReport> {
    try {
      return await this.traffic.run(name, fault, o);
    } catch (e) {
      throw new Error(`${(e as Error).message}\n${this.pair.log}`, { cause: e });
    }
  }

  /**
   * Table divergence after a drill: the node the drill stopped is started again, both wait for one
   * master and a synced backup, then `ct diff` runs from the master until the tables are equal or
   * `ms` passes (flows closing at the drill's end may be caught between the two reads).
   */
  async divergence(ms = 5000): Promise<Divergence> {
    const p = this.pair;
    for (const fw of ['fw1', 'fw2'] as const) {
      const d = p.daemons[fw];
      if (d && d.child.exitCode === null && d.child.signalCode === null) continue;
      this.start(fw);
    }
    let master: Fw = 'fw1';
    await p.until('one master and a synced backup', () => {
      const r1 = this.role('fw1');
      const r2 = this.role('fw2');
      master = r1 === 'master' ? 'fw1' : 'fw2';
      const backup: Fw = master === 'fw1' ? 'fw2' : 'fw1';
      return [r1, r2].sort().join() === 'backup,master' && p.synced(backup);
    }, 30_000);
    const peer: Fw = master === 'fw1' ? 'fw2' : 'fw1';
    const t0 = Date.now();
    for (;;) {
      const r = p.twinwall(master, 'ct', 'diff', '--peer-socket', p.sock(peer), '-o', 'json');
      if (r.code !== 0 && r.code !== 1) throw new Error(`ct diff failed (${r.code}): ${r.err}`);
      type E = { line: string };
      const d = JSON.parse(r.out) as { equal: boolean; here: { entries: number }; missing: E[]; extra: E[]; differing: { here: E; fields: string[] }[] };
      const settledMs = Date.now() - t0;
      if (d.equal || settledMs >= ms) {
        const sample = [...d.missing.slice(0, 2).map((e) => `missing: ${e.line}`), ...d.extra.slice(0, 2).map((e) => `extra: ${e.line}`),
          ...d.differing.slice(0, 2).map((e) => `differing in ${e.fields.join(',')}: ${e.here.line}`)];
        return { entries: d.here.entries, missing: d.missing.length, extra: d.extra.length, differing: d.differing.length, settledMs, master, sample };
      }
      // Each diff is a CLI process: not too often on a loaded machine.
      await new Promise((res) => setTimeout(res, 250));
    }
  }

  /**
   * Random loss of the sync datagrams (and the NACKs back) on both nodes' sync0: an iptables
   * statistic DROP on INPUT for the sync port, `percent` of them; 0 removes it.
   */
  syncLoss(percent: number): void {
    const rule = (op: string, p: number): string[] => [op, 'INPUT', '-i', 'sync0', '-p', 'udp', '--dport', String(DEFAULT_SYNC_PORT), '-m', 'statistic', '--mode', 'random', '--probability', String(p), '-j', 'DROP'];
    for (const fw of ['fw1', 'fw2'] as const) {
      if (this.#loss > 0) this.pair.topo.exec(fw, 'iptables', rule('-D', this.#loss));
      if (percent > 0) this.pair.topo.exec(fw, 'iptables', rule('-I', percent / 100));
    }
    this.#loss = percent / 100;
  }

  #loss = 0;

  /** What to look at when a drill fails: neighbour caches, both nodes' failover and drop counters, failover log lines. */
  diagnostics(): string {
    const p = this.pair;
    return [
      `client neighbours:\n${p.topo.exec('client', 'ip', ['neigh'])}`,
      ...(['fw1', 'fw2'] as const).map((fw) => `${fw} failover:\n${p.twinwall(fw, 'failover', 'status').out}\n${fw} stats:\n${p.twinwall(fw, 'stats').out.slice(0, 1500)}`),
      `failover log:\n${p.log.split('\n').filter((l) => /failover/.test(l)).join('\n').slice(-4000)}`,
      `errors logged:\n${p.log.split('\n').filter((l) => /"level":50/.test(l) && !/failover is configured but not running/.test(l)).join('\n').slice(-4000)}`,
    ].join('\n');
  }

  cleanup(): void {
    this.traffic.stop();
    this.pair.cleanup();
  }
}

/** Resolve once the child prints `want` as a line (reject after ms). */
function firstLine(child: ChildProcess, want: string, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "${want}" within ${ms} ms`)), ms);
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (l) => {
      if (l.trim() === want) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

export function formatDrill(r: DrillReport): string {
  const d = r.divergence;
  const div = d === undefined ? '' : d.missing + d.extra + d.differing === 0
    ? `; tables equal after the drill (${d.entries} entries)`
    : `; tables DIFFER after ${d.settledMs} ms: ${d.missing} missing on the backup, ${d.extra} extra, ${d.differing} differing (${d.entries} entries on ${d.master}, the master)\n  ${d.sample.join('\n  ')}`;
  return `drill ${r.name}: ${r.survived}/${r.flows} flows survived, ${r.samePort}/${r.flows} with the same NAT port, outage ${r.outageMs} ms (probe ${r.probe.answered}/${r.probe.sent} answered, server saw ports ${r.probe.ports.join(',')}), longest TCP stall ${r.longestStallMs} ms${div}`;
}

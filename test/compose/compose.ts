/**
 * The failover drills against the pair in containers (docker-compose.yml at the top level): the
 * images built by docker/build-image.sh (no registry), fw-a and fw-b as `twinwall node` in their
 * own containers, the client and server containers running the namespace drill's agents
 * (test/lab/agents/drill-*.py, with `docker exec`), faults injected with Docker itself: `docker
 * kill`, `docker pause`/`unpause`, `docker network disconnect`/`connect`, and a planned switchover
 * with `twinwall failover switchover` in the master's container. The report is the namespace
 * drill's (DrillReport, formatDrill in test/lab/drill.ts).
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { reportOf, type ClientReport, type DrillOptions, type DrillReport } from '../lab/drill.js';

const root = fileURLToPath(new URL(import.meta.url.includes('/dist/') ? '../../../' : '../../', import.meta.url));
export const PROJECT = 'twinwall-drill';
export const SERVER = '172.31.2.10';
const PORT = 7100;
const CLIENT_AGENT = '/opt/twinwall/test/lab/agents/drill-client.py';
/** Each firewall's addresses on the networks it loses in the disconnect drill (docker-compose.yml). */
const DATA_ADDR = { 'fw-a': { inside: '172.31.1.2', outside: '172.31.2.2' }, 'fw-b': { inside: '172.31.1.3', outside: '172.31.2.3' } } as const;

export type ComposeFw = 'fw-a' | 'fw-b';
export const container = (name: ComposeFw | 'client' | 'server'): string => `twinwall-${name}`;

/** Docker, the images or the compose pair could not be set up or did not behave; the message says what to look at. */
export class ComposeDrillError extends Error {
  override name = 'ComposeDrillError';
}

/** Whether this machine can run the compose drill at all (the build script installs the rest). */
export function composeAvailable(): { ok: boolean; why: string } {
  if (process.getuid?.() !== 0) return { ok: false, why: 'the compose drill needs root (dockerd, apt-get, debootstrap)' };
  const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
  if (!has('docker') && !has('apt-get')) return { ok: false, why: 'the compose drill needs Docker, or apt-get to install Debian\'s docker.io' };
  return { ok: true, why: '' };
}

interface Result { code: number; out: string; err: string }

function runCmd(cmd: string, args: string[], timeoutMs = 120_000): Result {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: timeoutMs, cwd: root });
  if (r.error) throw new ComposeDrillError(`${cmd} ${args.join(' ')}: ${r.error.message}`);
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

/** A command that must succeed: its output, or an error with what it printed. */
function must(cmd: string, args: string[], timeoutMs?: number): string {
  const r = runCmd(cmd, args, timeoutMs);
  if (r.code !== 0) throw new ComposeDrillError(`${cmd} ${args.join(' ')} failed (${r.code}): ${(r.err || r.out).trim().slice(-2000)}`);
  return r.out;
}

/** The flows that did not survive, each with what happened to it (for a failure message). */
export function lostFlows(c: ClientReport): string[] {
  return c.flows.flatMap((f, i) => f.survived ? [] : [`flow ${i}: ${f.error ?? 'no echo in its last 0.5 s'}, ${f.echoes} echoes, longest stall ${f.stallMs} ms, server saw ports ${f.ports.join(',')}`]);
}

export class ComposeDrill {
  #compose: string[] | null = null;
  /** The flows the last drill lost (lostFlows), shown by diagnostics(). */
  lost: string[] = [];

  /** docker/build-image.sh (with --no-compile when dist/ is fresh): packages, dockerd, the base and twinwall images; returns what it said it did. */
  build(compiled = false): string {
    const r = runCmd('bash', [join(root, 'docker/build-image.sh'), ...(compiled ? ['--no-compile'] : [])], 15 * 60_000);
    if (r.code !== 0) throw new ComposeDrillError(`docker/build-image.sh failed (${r.code}):\n${(r.out + r.err).trim().slice(-3000)}`);
    return r.out.split('\n').filter((l) => l.startsWith('docker/build-image:')).join('\n');
  }

  /** `docker compose` where the plugin is there, else Debian's docker-compose (v1), on this project. */
  compose(...args: string[]): string {
    if (!this.#compose) {
      const plugin = runCmd('docker', ['compose', 'version']).code === 0;
      this.#compose = plugin ? ['docker', 'compose'] : ['docker-compose'];
    }
    const [cmd, ...pre] = this.#compose;
    return must(cmd, [...pre, '-p', PROJECT, '-f', join(root, 'docker-compose.yml'), ...args], 300_000);
  }

  docker(...args: string[]): string {
    return must('docker', args);
  }

  /** The CLI against fw's daemon, in fw's container. */
  twinwall(fw: ComposeFw, ...args: string[]): Result {
    return runCmd('docker', ['exec', container(fw), 'twinwall', ...args], 30_000);
  }

  /** `twinwall <args> -o json` in fw's container, parsed; null when the CLI fails (no daemon answering). */
  #json<T>(fw: ComposeFw, ...args: string[]): T | null {
    const r = this.twinwall(fw, ...args, '-o', 'json');
    return r.code === 0 ? (JSON.parse(r.out) as T) : null;
  }

  role(fw: ComposeFw): string | null {
    return this.#json<{ role: string }>(fw, 'failover', 'status')?.role ?? null;
  }

  /** fw's `sync status` says it holds the peer's whole table. */
  synced(fw: ComposeFw): boolean {
    return this.#json<{ peer: { synced: boolean } | null }>(fw, 'sync', 'status')?.peer?.synced === true;
  }

  /** Poll `ok` every half second (each check starts node in a container: a CPU second on a small machine). */
  async until(what: string, ok: () => boolean, ms = 30_000): Promise<void> {
    for (const end = Date.now() + ms; Date.now() < end;) {
      if (ok()) return;
      await new Promise((r) => setTimeout(r, 500));
    }
    throw new ComposeDrillError(`${what} not within ${ms} ms;\n${this.diagnostics()}`);
  }

  /** The node that is master now (the one the next fault should hit). */
  master(): ComposeFw {
    const m = (['fw-a', 'fw-b'] as const).filter((fw) => this.role(fw) === 'master');
    if (m.length !== 1) throw new ComposeDrillError(`expected one master, found ${m.length ? m.join(' and ') : 'none'};\n${this.diagnostics()}`);
    return m[0];
  }

  /** fw back as backup (the other one master) and holding the master's whole table. */
  backAsBackup(fw: ComposeFw, ms = 30_000): Promise<void> {
    const other: ComposeFw = fw === 'fw-a' ? 'fw-b' : 'fw-a';
    return this.until(`${fw} backup and synced, ${other} master`, () => this.role(other) === 'master' && this.role(fw) === 'backup' && this.synced(fw), ms);
  }

  /** The sync key both nodes read (docker/run/sync.key, mounted with docker/ at /etc/twinwall), made once. */
  #key(): void {
    const dir = join(root, 'docker/run');
    mkdirSync(dir, { recursive: true });
    const key = join(dir, 'sync.key');
    if (!existsSync(key)) writeFileSync(key, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
  }

  /** Up from scratch (what an earlier run left is removed first): fw-a master, fw-b backup and synced, the server agent listening. */
  async up(): Promise<void> {
    this.#key();
    this.down();
    this.compose('up', '-d');
    await this.until('the server agent ready', () => runCmd('docker', ['logs', container('server')]).out.includes('ready'));
    await this.backAsBackup('fw-b', 60_000);
  }

  /** Remove the containers, networks and volumes of the project (also when nothing is up). */
  down(): void {
    this.compose('down', '-v', '--remove-orphans', '-t', '3');
  }

  /** Run the drill's traffic for `seconds`, inject `fault` after `faultAt` seconds, and report. */
  async run(name: string, fault: () => void | Promise<void>, o: DrillOptions = {}): Promise<DrillReport> {
    const flows = o.flows ?? 50;
    const client = spawn('docker', ['exec', '-i', container('client'), 'python3', CLIENT_AGENT, SERVER, String(PORT), String(flows), String(o.seconds ?? 6)],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    client.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const lines = createInterface({ input: client.stdout })[Symbol.asyncIterator]();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new ComposeDrillError(`drill client not ready in 20 s: ${err}\n${this.diagnostics()}`)), 20_000);
    });
    try {
      const first = await Promise.race([lines.next(), timeout]);
      if (first.value !== 'ready') throw new ComposeDrillError(`drill client: ${String(first.value)} ${err}`);
    } finally {
      clearTimeout(timer);
    }
    await new Promise((r) => setTimeout(r, (o.faultAt ?? 2) * 1000));
    await fault();
    const last = await lines.next();
    if (last.done) throw new ComposeDrillError(`drill client ended without a report: ${err}\n${this.diagnostics()}`);
    const c = JSON.parse(last.value as string) as ClientReport;
    this.lost = lostFlows(c);
    return reportOf(name, flows, c);
  }

  /** The master's data networks (inside, outside) disconnected, then connected again with the same addresses after `ms`. */
  async disconnectData(fw: ComposeFw, ms: number): Promise<void> {
    const nets = ['inside', 'outside'] as const;
    for (const n of nets) this.docker('network', 'disconnect', `${PROJECT}_${n}`, container(fw));
    await new Promise((r) => setTimeout(r, ms));
    for (const n of nets) this.docker('network', 'connect', '--ip', DATA_ADDR[fw][n], `${PROJECT}_${n}`, container(fw));
  }

  /** What to look at when a drill fails: containers, the flows lost, roles and faults, drops by reason, the failover log lines. */
  diagnostics(): string {
    const ps = runCmd('docker', ['ps', '-a', '--filter', `name=twinwall-`, '--format', '{{.Names}} {{.Status}}']);
    const parts = [`containers:\n${ps.out}${ps.err}`];
    if (this.lost.length) parts.push(`flows lost in the last drill:\n${this.lost.join('\n')}`);
    for (const fw of ['fw-a', 'fw-b'] as const) {
      const st = this.twinwall(fw, 'failover', 'status');
      const logs = runCmd('docker', ['logs', '--tail', '300', container(fw)]);
      const failover = (logs.out + logs.err).split('\n').filter((l) => /failover|entrypoint|error|"level":[56]0/.test(l)).slice(-25).join('\n');
      const stats = this.twinwall(fw, 'stats');
      parts.push(`${fw} failover status:\n${st.out}${st.err}\n${fw} stats:\n${(stats.out + stats.err).slice(0, 1500)}\n${fw} log (failover lines):\n${failover}`);
    }
    const neigh = runCmd('docker', ['exec', container('client'), 'ip', 'neigh']);
    parts.push(`client neighbours:\n${neigh.out}${neigh.err}`);
    return parts.join('\n');
  }
}

/** The docker client and server versions, for the test log. */
export function dockerVersion(): string {
  return execFileSync('docker', ['version', '--format', 'client {{.Client.Version}}, server {{.Server.Version}}'], { encoding: 'utf8' }).trim();
}

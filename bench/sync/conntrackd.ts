/**
 * The rival side of the state-sync benchmark: Debian's conntrackd (conntrack-tools) in FTFW mode
 * over multicast (225.0.0.50, port 3780, on sync0), replicating fw1's kernel conntrack table to fw2,
 * in the namespace lab (test/lab/topology.ts). Root only. Measures:
 *
 *   1. replication: new entries made on fw1 by a load generator (one UDP datagram per 5-tuple from
 *      the client to the server, through fw1) until fw2's external cache holds exactly the same set;
 *      at 0 % and at 1 % random loss of the sync datagrams fw1 -> fw2 (iptables statistic match on
 *      fw2's INPUT). Rate = entries / seconds from the first datagram until fw2 held them all; bytes
 *      on the wire per entry from fw1's sync0 tx counters.
 *   2. sync lag at a steady 20 k new entries/s: fw2 commits straight into its kernel table
 *      (DisableExternalCache on); per entry, the kernel's start timestamp on fw2 minus the one on
 *      fw1 (same host, same clock; nf_conntrack_timestamp on in both), p50/p99/max.
 *   3. bulk resync: fw1's kernel table holds 1 M entries (filled with conntrackd stopped, timed
 *      separately), fw1's conntrackd starts and loads them, then the backup starts empty and is told
 *      `conntrackd -n` (request resync with the other node); time until its external cache holds
 *      them all, checked entry by entry.
 *
 * Run: node dist/bench/sync/conntrackd.js [--quick] [--entries N] [--json FILE]
 * Or import runConntrackdBench() (bench/sync/README.md has the details and the caveats).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createConnection } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { LAB_ADDR, LAB_IF, LabTopology } from '../../test/lab/topology.js';

// ---------------------------------------------------------------------------------------------
// Public figures
// ---------------------------------------------------------------------------------------------

/** Case 1, one loss setting. */
export interface ReplicationFigures {
  /** Random loss of sync datagrams fw1 -> fw2 (iptables statistic DROP on fw2's INPUT), percent. */
  lossPercent: number;
  /** New entries the load made in fw1's kernel table (counted there), entries. */
  entries: number;
  /** First to last datagram of the generator, seconds. */
  loadSeconds: number;
  /** First datagram until fw2's external cache held as many entries as fw1 made, seconds; null if it never did. */
  convergedSeconds: number | null;
  /** entries / convergedSeconds, entries per second (0 if it never converged). */
  rate: number;
  /** How long fw2 trailed the end of the load (convergedSeconds - loadSeconds), seconds. */
  tailSeconds: number | null;
  /** Entries on fw1 that fw2 still lacked at the end of the wait (entry-by-entry check), entries. */
  missing: number;
  /** Entries on fw2 that fw1 does not have, entries. */
  extra: number;
  /** Datagrams per second the generator reached with conntrackd running. */
  generatorRate: number;
  /** fw1 sync0 tx bytes (Ethernet frames, no preamble/FCS) per entry, bytes. */
  bytesPerEntry: number;
  /** fw1 sync0 tx packets per entry (less than 1: several entries per datagram). */
  packetsPerEntry: number;
  /** fw2 sync0 tx bytes (FTFW acknowledgements, NACKs, alive messages) per entry, bytes. */
  ackBytesPerEntry: number;
  /** Sync datagrams the loss rule dropped, datagrams. */
  syncDatagramsDropped: number;
  /** fw2 conntrackd's "Packets lost" (sequence gaps it saw, `conntrackd -s network`). */
  sequenceGapsAtBackup: number;
  /** Sync datagrams fw2's socket dropped for want of receive buffer (besides the loss rule), datagrams. */
  backupRcvbufErrors: number;
  /** Kernel events fw1's conntrackd received, events. */
  primaryEvents: number;
  /** Netlink event socket overruns at fw1's conntrackd (0: no event lost there). */
  netlinkOverruns: number;
  /** CPU time of fw1's / fw2's conntrackd during the case (user + system), seconds. */
  cpuSecondsPrimary: number;
  cpuSecondsBackup: number;
  /** Which side bounded the rate, and why. */
  limit: 'generator' | 'conntrackd';
  limitReason: string;
}

/** Case 2. */
export interface LagFigures {
  /** Rate asked of the generator, entries per second (20000, lower if that was not steady). */
  targetRate: number;
  /** Rate it reached, entries per second. */
  achievedRate: number;
  /** Load duration, seconds. */
  seconds: number;
  /** Entries made on fw1, entries. */
  entries: number;
  /** Entries found in fw2's kernel table and used for the figures, entries. */
  matched: number;
  /** Entries never seen on fw2, entries. */
  missing: number;
  /** Lag = kernel start timestamp on fw2 - on fw1, milliseconds. */
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
  /** Median lag of the first and of the last tenth of the entries (a growing lag means not steady), ms. */
  firstTenthP50Ms: number;
  lastTenthP50Ms: number;
  /** Whether the rate was held: generator >= 95 % of target and fw2 caught up within 1 s of the end. */
  steady: boolean;
  /** Every rate tried, highest first (the figures above are the first steady one, else the last). */
  attempts: LagAttempt[];
  /** fw2 conntrackd's failed kernel injections, entries. */
  injectFailed: number;
  netlinkOverruns: number;
}

/** One rate tried in case 2. */
export interface LagAttempt {
  /** entries per second asked / reached */
  targetRate: number;
  achievedRate: number;
  /** ms */
  p50Ms: number;
  p99Ms: number;
  missing: number;
  steady: boolean;
}

/** Case 3. */
export interface ResyncFigures {
  /** Entries in fw1's kernel table, entries. */
  entries: number;
  /** Filling fw1's kernel table (generator, conntrackd stopped), seconds, and its rate, entries per second. */
  fillSeconds: number;
  fillRate: number;
  /** fw1's conntrackd start until its internal cache held every entry (initial kernel dump), seconds. */
  primaryLoadSeconds: number;
  /** `conntrackd -n` on the freshly started backup until its external cache held every entry, seconds; null if it never did. */
  resyncSeconds: number | null;
  /** entries / resyncSeconds, entries per second (0 if it never completed). */
  rate: number;
  /** Entry-by-entry check after the resync: fw1 entries fw2 lacks / fw2 entries fw1 lacks. */
  missing: number;
  extra: number;
  /** fw1 sync0 tx bytes per entry during the resync, bytes. */
  bytesPerEntry: number;
  /** Sync datagrams fw2's socket dropped for want of receive buffer during the resync (FTFW must recover them), datagrams. */
  backupRcvbufErrors: number;
  /** Time between two polls of the backup's cache (resolution of resyncSeconds), milliseconds. */
  pollMs: number;
}

export interface ConntrackdFigures {
  tool: 'conntrackd';
  /** `conntrackd -v`, e.g. "1.4.7". */
  version: string;
  mode: 'FTFW';
  transport: 'multicast 225.0.0.50:3780 on sync0';
  quick: boolean;
  /** ISO 8601 start time. */
  startedAt: string;
  /** Whole run, seconds. */
  wallSeconds: number;
  host: { cpus: number; kernel: string };
  /** New entries per second the generator makes on fw1 with no conntrackd running (ceiling of case 1). */
  generatorAloneRate: number;
  replication: ReplicationFigures[];
  lag: LagFigures;
  resync: ResyncFigures;
  /** What was scaled down or changed, and why. */
  notes: string[];
}

export interface ConntrackdBenchOptions {
  /** Smaller counts, about a minute. */
  quick?: boolean;
  /** Entries for the bulk resync (case 3); default 1 000 000 (quick: 200 000). */
  entries?: number;
}

/** A failure of the benchmark, with what did not happen and what to do. */
export class ConntrackdBenchError extends Error {
  override readonly name = 'ConntrackdBenchError';
}

// ---------------------------------------------------------------------------------------------
// Set-up
// ---------------------------------------------------------------------------------------------

const MCAST = '225.0.0.50';
const PORT = 3780;
const GEN = fileURLToPath(new URL('../../../bench/sync/conntrackd-load.py', import.meta.url));
const C = LAB_ADDR.client;
const S = LAB_ADDR.server;
/** Tuple indices per case never overlap (see conntrackd-load.py). */
const RANGE = { alone: 0, rep0: 10_000_000, rep1: 20_000_000, lag: 30_000_000, resync: 40_000_000 } as const;
const TUPLES = 64000 * 40000;
/** Entries besides the load's in a firewall's table (sync multicast, IGMP): slack for the host limit. */
const MARGIN = 50_000;

type Node = 'client' | 'server' | 'fw1' | 'fw2';
type Fw = 'fw1' | 'fw2';

interface Sizes {
  replication: number;
  lagSeconds: number;
  lagRates: number[];
  resync: number;
  /** Waits after a load ends, milliseconds. */
  convergeMs: number;
}

function sizes(opts: ConntrackdBenchOptions): Sizes {
  const quick = opts.quick ?? false;
  const resync = opts.entries ?? (quick ? 200_000 : 1_000_000);
  if (!Number.isInteger(resync) || resync < 1000 || resync > 4_000_000) {
    throw new ConntrackdBenchError(`entries must be an integer from 1000 to 4000000 (got ${String(opts.entries)}): pass --entries from 1000 to 4000000`);
  }
  return quick
    ? { replication: 100_000, lagSeconds: 3, lagRates: [20_000, 15_000, 10_000], resync, convergeMs: 20_000 }
    : { replication: 300_000, lagSeconds: 10, lagRates: [20_000, 15_000, 10_000, 5_000], resync, convergeMs: 60_000 };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const now = () => Date.now() / 1000;

/** The bench's view of the lab: processes it started (all killed by cleanup), commands in namespaces. */
class Bench {
  readonly topo = new LabTopology();
  readonly dir = mkdtempSync(join(tmpdir(), 'twinwall-conntrackd-'));
  readonly children = new Set<ChildProcess>();
  readonly daemons: Partial<Record<Fw, Daemon>> = {};
  readonly notes: string[] = [];
  /** Host sysctls raised for the run, restored by cleanup: key -> [original, ours]. */
  readonly #raised = new Map<string, [string, string]>();
  #cleaned = false;
  /** Network namespaces of others seen during the run (other lab tests or benchmarks share the CPUs). */
  readonly foreign = new Set<string>();

  /** Note other namespaces now present: a concurrent lab run competes for the CPUs and skews the figures. */
  lookAround(): void {
    const ours = new Set(Object.values(this.topo.ns));
    for (const l of execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n')) {
      const name = l.split(' ')[0];
      if (name && !ours.has(name)) this.foreign.add(name);
    }
  }

  ns(node: Node): string {
    return this.topo.ns[node];
  }

  /** Start a process in a namespace; tracked until it exits, killed by cleanup. */
  spawn(node: Node, cmd: string, args: string[]): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.ns(node), cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.add(child);
    child.on('exit', () => this.children.delete(child));
    child.on('error', () => this.children.delete(child));
    return child;
  }

  /**
   * Run a command in a namespace and stream its stdout lines to onLine (stdout of a million lines
   * never sits in memory whole); rejects on a non-zero exit or after timeoutMs (the process killed).
   */
  lines(node: Node, cmd: string, args: string[], timeoutMs: number, onLine: (line: string) => void): Promise<void> {
    const what = `${cmd} ${args.join(' ')} in ${node}`;
    return new Promise((ok, fail) => {
      const child = this.spawn(node, cmd, args);
      let err = '';
      child.stderr?.on('data', (d: Buffer) => {
        if (err.length < 4000) err += d.toString();
      });
      const rl = createInterface({ input: child.stdout! });
      rl.on('line', onLine);
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        fail(new ConntrackdBenchError(`"${what}" did not finish in ${timeoutMs} ms: the namespace or the daemon is stuck; see the figures so far and rerun`));
      }, timeoutMs);
      child.on('error', (e) => {
        clearTimeout(timer);
        fail(new ConntrackdBenchError(`could not start "${what}": ${e.message}: is it installed (bash scripts/setup.sh)?`));
      });
      // 'close' comes after all of stdout was read (and so after the last line callback).
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        if (code === 0) ok();
        else fail(new ConntrackdBenchError(`"${what}" failed (exit ${code ?? signal}): ${err.trim() || 'no message'}`));
      });
    });
  }

  async out(node: Node, cmd: string, args: string[], timeoutMs = 10_000): Promise<string> {
    const acc: string[] = [];
    await this.lines(node, cmd, args, timeoutMs, (l) => acc.push(l));
    return acc.join('\n');
  }

  /** Synchronous, for set-up steps. */
  exec(node: Node, cmd: string, args: string[]): string {
    try {
      return this.topo.exec(node, cmd, args);
    } catch (e) {
      const err = e as { stderr?: string; message?: string };
      throw new ConntrackdBenchError(`"${cmd} ${args.join(' ')}" in ${node} failed: ${(err.stderr ?? err.message ?? String(e)).trim()}`);
    }
  }

  readSys(node: Node, path: string): number {
    return Number(this.exec(node, 'cat', [path]).trim());
  }

  txBytes(node: Fw): { bytes: number; packets: number } {
    const base = `/sys/class/net/${LAB_IF.sync}/statistics`;
    return { bytes: this.readSys(node, `${base}/tx_bytes`), packets: this.readSys(node, `${base}/tx_packets`) };
  }

  /** Entries in a namespace's kernel table (all of them: the load's plus sync multicast and IGMP). */
  ctCount(node: Fw): number {
    return this.readSys(node, '/proc/sys/net/netfilter/nf_conntrack_count');
  }

  /** Raise a host-wide sysctl (nf_conntrack_max and _buckets are read-only in namespaces) until cleanup. */
  raiseHostSysctl(key: string, min: number): void {
    const path = `/proc/sys/${key.replaceAll('.', '/')}`;
    const cur = readFileSync(path, 'utf8').trim();
    if (Number(cur) >= min) return;
    writeFileSync(path, String(min));
    if (!this.#raised.has(key)) this.#raised.set(key, [cur, String(min)]);
    else this.#raised.get(key)![1] = String(min);
    this.notes.push(`host ${key} raised from ${cur} to ${min} for the run (global: namespaces cannot set it), restored afterwards`);
  }

  /** Kill what runs, remove the namespaces, restore host sysctls, remove the temp dir. Synchronous (signal handlers). */
  cleanup(): void {
    if (this.#cleaned) return;
    this.#cleaned = true;
    for (const c of this.children) c.kill('SIGKILL');
    this.topo.cleanup();
    for (const [key, [orig, ours]] of this.#raised) {
      const path = `/proc/sys/${key.replaceAll('.', '/')}`;
      try {
        // Only if nobody changed it meanwhile.
        if (readFileSync(path, 'utf8').trim() === ours) writeFileSync(path, orig);
        else console.error(`conntrackd bench: ${key} was changed by someone else during the run; left as it is (was ${orig})`);
      } catch (e) {
        console.error(`conntrackd bench: could not restore ${key} to ${orig}: ${String(e)}; set it by hand (sysctl -w ${key}=${orig})`);
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** One conntrackd in a firewall namespace, in the foreground, with its own socket, lock and log. */
class Daemon {
  readonly cfg: string;
  readonly log: string;
  child: ChildProcess | undefined;
  #output = '';
  #exited: Promise<void> = Promise.resolve();

  constructor(readonly bench: Bench, readonly fw: Fw, readonly inject: boolean, hashLimit: number) {
    const dir = bench.dir;
    const tag = `${fw}${inject ? '-inject' : ''}`;
    this.cfg = join(dir, `${tag}.conf`);
    this.log = join(dir, `${tag}.log`);
    writeFileSync(this.cfg, conntrackdConfig({
      me: LAB_ADDR[fw].sync,
      lock: join(dir, `${fw}.lock`),
      sock: join(dir, `${fw}.ctl`),
      log: this.log,
      inject,
      hashLimit,
    }));
  }

  get sock(): string {
    return join(this.bench.dir, `${this.fw}.ctl`);
  }

  /** Start and wait until it answers on its UNIX socket. */
  async start(): Promise<void> {
    // A killed daemon leaves its lock file and socket behind; conntrackd refuses to start with them.
    rmSync(join(this.bench.dir, `${this.fw}.lock`), { force: true });
    rmSync(this.sock, { force: true });
    const child = this.bench.spawn(this.fw, 'conntrackd', ['-C', this.cfg]);
    this.child = child;
    this.#output = '';
    const keep = (d: Buffer) => {
      this.#output = (this.#output + d.toString()).slice(-4000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    let gone = false;
    this.#exited = new Promise((r) => child.on('close', () => {
      gone = true;
      r();
    }));
    const t0 = Date.now();
    let last = 'no socket yet';
    while (Date.now() - t0 < 10_000) {
      if (gone) throw new ConntrackdBenchError(`conntrackd in ${this.fw} exited at start (exit ${child.exitCode ?? child.signalCode}): ${this.tail()}`);
      if (existsSync(this.sock)) {
        try {
          await this.request(CMD.stats, 3000);
          return;
        } catch (e) {
          // The socket exists before the daemon's loop runs: try again, report the last refusal on timeout.
          last = (e as Error).message;
        }
      }
      await sleep(50);
    }
    throw new ConntrackdBenchError(`conntrackd in ${this.fw} did not answer on ${this.sock} within 10 s (${last}): ${this.tail()}`);
  }

  /** `conntrackd -C cfg <args>` against this daemon. */
  ctl(args: string[], timeoutMs = 10_000): Promise<string> {
    return this.bench.out(this.fw, 'conntrackd', ['-C', this.cfg, ...args], timeoutMs);
  }

  /** Ask it to quit (-k); SIGKILL if it has not within 5 s. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    try {
      await this.ctl(['-k'], 5000);
    } catch (e) {
      this.bench.notes.push(`conntrackd in ${this.fw} did not take -k (${(e as Error).message}); killed`);
      child.kill('SIGKILL');
    }
    const dead = await Promise.race([this.#exited.then(() => true), sleep(5000).then(() => false)]);
    if (!dead) {
      child.kill('SIGKILL');
      await this.#exited;
    }
    this.child = undefined;
  }

  /** CPU time used so far (user + system), seconds. */
  cpuSeconds(): number {
    const pid = this.child?.pid;
    if (pid === undefined) return 0;
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 14 and 15 of stat (utime, stime) are 11 and 12 after the command name; clock ticks.
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  }

  /**
   * One request on the daemon's UNIX socket, as `conntrackd -s ...` sends it (a native int: the
   * command number of conntrackd's local.h), answered with text until the daemon closes. Polls use
   * this instead of a client process per poll: cheaper on a 2-CPU machine. The socket is a file:
   * reachable from any network namespace.
   */
  request(command: number, timeoutMs = 10_000): Promise<string> {
    return new Promise((ok, fail) => {
      const chunks: Buffer[] = [];
      const sock = createConnection(this.sock);
      const timer = setTimeout(() => {
        sock.destroy();
        fail(new ConntrackdBenchError(`conntrackd in ${this.fw} did not answer request ${command} on ${this.sock} within ${timeoutMs} ms: is it stuck? ${this.tail()}`));
      }, timeoutMs);
      sock.on('connect', () => {
        const b = Buffer.alloc(4);
        b.writeInt32LE(command);
        sock.write(b);
      });
      sock.on('data', (d: Buffer) => chunks.push(d));
      sock.on('error', (e) => {
        clearTimeout(timer);
        fail(new ConntrackdBenchError(`conntrackd in ${this.fw} refused request ${command} on ${this.sock}: ${e.message}; ${this.tail()}`));
      });
      sock.on('close', (hadError) => {
        clearTimeout(timer);
        if (!hadError) ok(Buffer.concat(chunks).toString());
      });
    });
  }

  async stats(): Promise<CtdStats> {
    return parseStats(await this.request(CMD.stats));
  }

  async runtime(): Promise<{ overruns: number; events: number }> {
    const t = await this.request(CMD.statsRuntime);
    return { overruns: num(t, /netlink overrun:\s*(\d+)/), events: num(t, /events received:\s*(\d+)/) };
  }

  async sequenceGaps(): Promise<number> {
    return num(await this.request(CMD.statsNetwork), /Packets lost:\s*(\d+)/);
  }

  /** The last lines of its log and output, for error messages. */
  tail(): string {
    let log: string;
    try {
      log = readFileSync(this.log, 'utf8');
    } catch (e) {
      log = `(no log: ${(e as Error).message})`;
    }
    return `log: ${log.trim().split('\n').slice(-8).join(' | ')}; output: ${this.#output.trim().slice(-600) || 'none'}`;
  }
}

let CLK_TCK = 100;

/** conntrackd's local request numbers (include/conntrackd.h of conntrack-tools 1.4): -s, -s network, -s runtime. */
const CMD = { stats: 21, statsNetwork: 28, statsRuntime: 30 } as const;

export interface CtdStats {
  internal: number;
  external: number;
  injected: number;
  injectFailed: number;
}

function num(text: string, re: RegExp): number {
  const m = re.exec(text);
  if (!m) throw new ConntrackdBenchError(`conntrackd statistics lack ${re.source}: the output format changed? Got: ${text.slice(0, 300)}`);
  return Number(m[1]);
}

export function parseStats(t: string): CtdStats {
  const opt = (re: RegExp) => {
    const m = re.exec(t);
    return m ? Number(m[1]) : 0;
  };
  return {
    internal: num(t, /cache internal:\s*\ncurrent active connections:\s*(\d+)/),
    external: opt(/cache external:\s*\ncurrent active connections:\s*(\d+)/),
    injected: opt(/external inject:\s*\nconnections created:\s*(\d+)/),
    injectFailed: opt(/external inject:\s*\nconnections created:\s*\d+\s*failed:\s*(\d+)/),
  };
}

/**
 * conntrackd.conf for one firewall, after /usr/share/doc/conntrackd/examples/sync/ftfw/conntrackd.conf:
 * FTFW, multicast on the sync link, large socket and netlink buffers, a resend queue and cache big
 * enough for the whole run, UDP and TCP replicated, the firewalls' own and sync addresses ignored.
 */
export function conntrackdConfig(p: { me: string; lock: string; sock: string; log: string; inject: boolean; hashLimit: number }): string {
  const own = [LAB_ADDR.fw1, LAB_ADDR.fw2].flatMap((a) => [a.inside, a.outside]);
  return `# generated by bench/sync/conntrackd.ts
Sync {
	Mode FTFW {
		ResendQueueSize 1048576
		ACKWindowSize 300
		DisableExternalCache ${p.inject ? 'on' : 'off'}
	}
	Multicast {
		IPv4_address ${MCAST}
		Group ${PORT}
		IPv4_interface ${p.me}
		Interface ${LAB_IF.sync}
		SndSocketBuffer 33554432
		RcvSocketBuffer 33554432
		Checksum on
	}
}
General {
	Systemd off
	HashSize 1048576
	HashLimit ${p.hashLimit}
	LogFile ${p.log}
	Syslog off
	LockFile ${p.lock}
	UNIX {
		Path ${p.sock}
	}
	NetlinkBufferSize 8388608
	NetlinkBufferSizeMaxGrowth 134217728
	Filter From Kernelspace {
		Protocol Accept {
			TCP
			UDP
		}
		Address Ignore {
			IPv4_address 127.0.0.1
			IPv4_address 10.50.3.0/24 # sync link
${own.map((a) => `\t\t\tIPv4_address ${a}`).join('\n')}
		}
	}
}
`;
}

// ---------------------------------------------------------------------------------------------
// Load and tables
// ---------------------------------------------------------------------------------------------

interface LoadResult {
  sent: number;
  seconds: number;
  start: number;
  end: number;
}

/** Run the generator in the client namespace: `count` tuples from index `first`, paced at `rate` (0: flat out). */
async function load(b: Bench, first: number, count: number, rate: number, timeoutMs: number): Promise<LoadResult> {
  if (first + count > TUPLES) throw new ConntrackdBenchError(`tuple range ${first}+${count} beyond ${TUPLES}`);
  const args = [GEN, '--src', C, '--dst', S, '--first', String(first), '--count', String(count), '--rate', String(rate), '--workers', '2'];
  const out = await b.out('client', 'python3', args, timeoutMs);
  const last = out.trim().split('\n').at(-1) ?? '';
  let r: LoadResult;
  try {
    r = JSON.parse(last) as LoadResult;
  } catch (e) {
    throw new ConntrackdBenchError(`the load generator printed no result line (${(e as Error).message}); its output: ${out.slice(0, 300)}`);
  }
  if (r.sent !== count) throw new ConntrackdBenchError(`the load generator sent ${r.sent} of ${count} datagrams`);
  return r;
}

/** Key of a load tuple: source port * 65536 + destination port (source and destination addresses fixed). */
const key = (sport: number, dport: number) => sport * 65536 + dport;

/** The load's entries in a firewall's kernel table. */
async function kernelKeys(b: Bench, fw: Fw, timeoutMs: number): Promise<Set<number>> {
  const set = new Set<number>();
  const re = / sport=(\d+) dport=(\d+) /;
  await b.lines(fw, 'conntrack', ['-L', '-p', 'udp', '-s', C, '-d', S], timeoutMs, (l) => {
    const m = re.exec(l);
    if (m) set.add(key(Number(m[1]), Number(m[2])));
  });
  return set;
}

/** The load's entries in fw2's external cache (`conntrackd -e`). */
async function externalKeys(d: Daemon, timeoutMs: number): Promise<Set<number>> {
  const set = new Set<number>();
  const re = new RegExp(`src=${C.replaceAll('.', '\\.')} dst=${S.replaceAll('.', '\\.')} sport=(\\d+) dport=(\\d+) `);
  await d.bench.lines(d.fw, 'conntrackd', ['-C', d.cfg, '-e'], timeoutMs, (l) => {
    const m = re.exec(l);
    if (m) set.add(key(Number(m[1]), Number(m[2])));
  });
  return set;
}

/** Kernel start timestamps (ns since the epoch, minus `base`) of the load's entries in a table. */
async function kernelStarts(b: Bench, fw: Fw, base: bigint, timeoutMs: number): Promise<Map<number, number>> {
  const map = new Map<number, number>();
  const re = /<sport>(\d+)<\/sport><dport>(\d+)<\/dport>.*?<start>(\d+)<\/start>/;
  await b.lines(fw, 'conntrack', ['-L', '-p', 'udp', '-s', C, '-d', S, '-o', 'xml,ktimestamp'], timeoutMs, (l) => {
    const m = re.exec(l);
    if (m) map.set(key(Number(m[1]), Number(m[2])), Number(BigInt(m[3]) - base));
  });
  return map;
}

function diff(a: Set<number>, b: Set<number>): number {
  let n = 0;
  for (const k of a) if (!b.has(k)) n++;
  return n;
}

interface Polled<T> {
  value: T;
  /** When the last answer came (s since the epoch). */
  at: number;
  ok: boolean;
  /** Gave up because progress(value) did not change for stallMs. */
  stalled: boolean;
  meanGapMs: number;
}

/**
 * Poll until done(value), or timeoutMs, or (with progress) no change of progress(value) for stallMs;
 * returns the last value, when it was read and how it ended.
 */
async function pollUntil<T>(probe: () => Promise<T>, done: (v: T) => boolean, o: { timeoutMs: number; gapMs: number; stallMs?: number; progress?: (v: T) => number }): Promise<Polled<T>> {
  const t0 = Date.now();
  let polls = 0;
  let mark = NaN;
  let markAt = t0;
  for (;;) {
    const value = await probe();
    const at = now();
    polls++;
    const meanGapMs = (Date.now() - t0) / polls;
    if (done(value)) return { value, at, ok: true, stalled: false, meanGapMs };
    if (o.progress) {
      const p = o.progress(value);
      if (p !== mark) {
        mark = p;
        markAt = Date.now();
      } else if (o.stallMs !== undefined && Date.now() - markAt > o.stallMs) {
        return { value, at, ok: false, stalled: true, meanGapMs };
      }
    }
    if (Date.now() - t0 > o.timeoutMs) return { value, at, ok: false, stalled: false, meanGapMs };
    await sleep(o.gapMs);
  }
}

/** UDP datagrams a namespace's sockets dropped for want of receive buffer (/proc/net/snmp RcvbufErrors). */
function rcvbufErrors(b: Bench, fw: Fw): number {
  const lines = b.exec(fw, 'cat', ['/proc/net/snmp']).split('\n').filter((l) => l.startsWith('Udp:'));
  const names = lines[0]?.split(/\s+/) ?? [];
  const values = lines[1]?.split(/\s+/) ?? [];
  const i = names.indexOf('RcvbufErrors');
  if (i < 0) throw new ConntrackdBenchError(`no Udp RcvbufErrors in ${fw}'s /proc/net/snmp: kernel format changed?`);
  return Number(values[i]);
}

/** Wait until a firewall's kernel table stops growing (datagrams still in flight after the generator ended). */
async function settledCount(b: Bench, fw: Fw): Promise<number> {
  let last = b.ctCount(fw);
  for (let i = 0; i < 100; i++) {
    await sleep(30);
    const c = b.ctCount(fw);
    if (c === last) return c;
    last = c;
  }
  return last;
}

/** Stop the daemons, empty both kernel tables, start fw1's and fw2's conntrackd (fw2 injecting or caching). */
async function fresh(b: Bench, inject: boolean, hashLimit: number, start: { fw1: boolean; fw2: boolean } = { fw1: true, fw2: true }): Promise<void> {
  for (const fw of ['fw2', 'fw1'] as const) {
    await b.daemons[fw]?.stop();
    delete b.daemons[fw];
  }
  for (const fw of ['fw1', 'fw2'] as const) {
    // conntrack -F answers on stderr; an empty table is fine.
    await b.lines(fw, 'conntrack', ['-F'], 60_000, () => undefined);
    const left = b.ctCount(fw);
    if (left > 100) throw new ConntrackdBenchError(`${fw}'s kernel table still holds ${left} entries after conntrack -F`);
  }
  for (const fw of ['fw1', 'fw2'] as const) {
    if (!start[fw]) continue;
    const d = new Daemon(b, fw, fw === 'fw2' && inject, hashLimit);
    b.daemons[fw] = d;
    await d.start();
  }
  if (start.fw1 && start.fw2) await syncFlowing(b);
}

/**
 * Wait until both daemons' multicast flows are in fw1's table (their alive messages, within about a
 * second): proves the sync link works, and keeps those entries out of the count of the load's.
 */
async function syncFlowing(b: Bench): Promise<void> {
  const want = [LAB_ADDR.fw1.sync, LAB_ADDR.fw2.sync].map((a) => `src=${a} dst=${MCAST} `);
  const t0 = Date.now();
  let out = '';
  while (Date.now() - t0 < 5000) {
    out = await b.out('fw1', 'conntrack', ['-L', '-d', MCAST]);
    if (want.every((w) => out.includes(w))) {
      await sleep(300);
      return;
    }
    await sleep(100);
  }
  const tails = (['fw1', 'fw2'] as const).map((fw) => `${fw}: ${b.daemons[fw]?.tail() ?? 'not running'}`).join('; ');
  throw new ConntrackdBenchError(`the conntrackd pair did not exchange multicast (${MCAST}:${PORT} on ${LAB_IF.sync}) within 5 s: fw1's table has ${JSON.stringify(out)}; check the Multicast section of the generated configs; ${tails}`);
}

/** New load entries on fw1: the table's growth, at most one per datagram sent (anything else is not the load's). */
async function loadEntries(b: Bench, before: number, sent: number, what: string): Promise<number> {
  const grown = (await settledCount(b, 'fw1')) - before;
  if (grown > sent) b.notes.push(`${what}: fw1's table grew by ${grown} for ${sent} datagrams (other traffic made entries); counted ${sent}`);
  if (grown < sent * 0.99) b.notes.push(`${what}: fw1 made ${grown} entries of ${sent} datagrams (the rest dropped before fw1's conntrack)`);
  return Math.min(grown, sent);
}

function daemon(b: Bench, fw: Fw): Daemon {
  const d = b.daemons[fw];
  if (!d) throw new ConntrackdBenchError(`conntrackd in ${fw} is not running (internal error of the bench)`);
  return d;
}

function lossRule(on: boolean, probability: number): string[] {
  return [on ? '-I' : '-D', 'INPUT', '-i', LAB_IF.sync, '-p', 'udp', '-d', MCAST, '--dport', String(PORT), '-m', 'statistic', '--mode', 'random', '--probability', String(probability), '-j', 'DROP'];
}

function lossDropped(b: Bench): number {
  // iptables -L -v -x: "pkts bytes target ..." for the statistic rule.
  const out = b.exec('fw2', 'iptables', ['-L', 'INPUT', '-v', '-x', '-n']);
  const line = out.split('\n').find((l) => l.includes('statistic'));
  return line ? Number(line.trim().split(/\s+/)[0]) : 0;
}

// ---------------------------------------------------------------------------------------------
// The cases
// ---------------------------------------------------------------------------------------------

async function replication(b: Bench, sz: Sizes, lossPercent: number, first: number, aloneRate: number, hashLimit: number): Promise<ReplicationFigures> {
  await fresh(b, false, hashLimit);
  const p = daemon(b, 'fw1');
  const k = daemon(b, 'fw2');
  const prob = lossPercent / 100;
  if (prob > 0) b.exec('fw2', 'iptables', lossRule(true, prob));
  const before = b.ctCount('fw1');
  const tx1 = b.txBytes('fw1');
  const tx2 = b.txBytes('fw2');
  const cpu1 = p.cpuSeconds();
  const cpu2 = k.cpuSeconds();
  const rcv = rcvbufErrors(b, 'fw2');
  const what = `case 1 (${lossPercent} % loss)`;
  const gen = await load(b, first, sz.replication, 0, 120_000);
  const entries = await loadEntries(b, before, gen.sent, what);
  // Converged when fw2's external cache is as big as the load; given up when it stops growing.
  const conv = await pollUntil(() => k.stats(), (s) => s.external >= entries, { timeoutMs: sz.convergeMs, gapMs: 10, stallMs: 10_000, progress: (s) => s.external });
  let convergedAt: number | null = conv.ok ? conv.at : null;
  const txa = b.txBytes('fw1');
  const txb = b.txBytes('fw2');
  // Entry by entry: what fw1 has and fw2 lacks (a few more looks if the count was reached with wrong entries).
  let missing = 0;
  let extra = 0;
  for (let look = 0; look < 4; look++) {
    const [a, c] = await Promise.all([kernelKeys(b, 'fw1', 60_000), externalKeys(k, 60_000)]);
    if (look === 0 && a.size !== entries) b.notes.push(`${what}: ${a.size} load entries listed on fw1, ${entries} counted`);
    missing = diff(a, c);
    extra = diff(c, a);
    if (missing === 0 || !conv.ok) break;
    convergedAt = null;
    await sleep(1000);
  }
  if (missing > 0) {
    convergedAt = null;
    b.notes.push(`${what}: fw2 ${conv.stalled ? 'stopped growing (10 s without progress)' : 'was still short'} at ${conv.value.external} of ${entries}; ${missing} entries missing for good; fw2's sync socket dropped ${rcvbufErrors(b, 'fw2') - rcv} datagrams for want of buffer`);
  }
  const rt = await p.runtime();
  const dropped = prob > 0 ? lossDropped(b) : 0;
  if (prob > 0) b.exec('fw2', 'iptables', lossRule(false, prob));
  const gaps = await k.sequenceGaps();
  const convergedSeconds = convergedAt === null ? null : convergedAt - gen.start;
  const tail = convergedSeconds === null ? null : convergedSeconds - gen.seconds;
  const generatorRate = gen.sent / gen.seconds;
  let limit: ReplicationFigures['limit'] = 'generator';
  let limitReason: string;
  if (convergedSeconds === null) {
    limit = 'conntrackd';
    limitReason = `fw2 never held all entries (${missing} missing after the wait)`;
  } else if (tail! > Math.max(0.5, 0.1 * gen.seconds)) {
    limit = 'conntrackd';
    limitReason = `fw2 trailed the load by ${tail!.toFixed(2)} s`;
  } else if (generatorRate < 0.8 * aloneRate) {
    limit = 'conntrackd';
    limitReason = `fw2 kept up (${(tail! * 1000).toFixed(0)} ms behind the last datagram), but the generator made ${fmtRate(generatorRate)}/s with the daemons running against ${fmtRate(aloneRate)}/s without: the daemons' CPU (SCHED_RR, ${(p.cpuSeconds() - cpu1).toFixed(1)} + ${(k.cpuSeconds() - cpu2).toFixed(1)} CPU s) slowed the load on ${cpus().length} CPUs`;
  } else {
    limitReason = `fw2 kept up (${(tail! * 1000).toFixed(0)} ms behind the last datagram) and the generator ran at ${Math.round((100 * generatorRate) / aloneRate)} % of its speed without conntrackd`;
  }
  return {
    lossPercent,
    entries,
    loadSeconds: gen.seconds,
    convergedSeconds,
    rate: convergedSeconds === null ? 0 : entries / convergedSeconds,
    tailSeconds: tail,
    missing,
    extra,
    generatorRate,
    bytesPerEntry: (txa.bytes - tx1.bytes) / entries,
    packetsPerEntry: (txa.packets - tx1.packets) / entries,
    ackBytesPerEntry: (txb.bytes - tx2.bytes) / entries,
    syncDatagramsDropped: dropped,
    sequenceGapsAtBackup: gaps,
    backupRcvbufErrors: rcvbufErrors(b, 'fw2') - rcv,
    primaryEvents: rt.events,
    netlinkOverruns: rt.overruns,
    cpuSecondsPrimary: p.cpuSeconds() - cpu1,
    cpuSecondsBackup: k.cpuSeconds() - cpu2,
    limit,
    limitReason,
  };
}

function quantile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

async function lagAt(b: Bench, sz: Sizes, rate: number, first: number, hashLimit: number): Promise<Omit<LagFigures, 'attempts'>> {
  await fresh(b, true, hashLimit);
  const p = daemon(b, 'fw1');
  const k = daemon(b, 'fw2');
  const count = rate * sz.lagSeconds;
  const before = b.ctCount('fw1');
  const gen = await load(b, first, count, rate, sz.lagSeconds * 1000 * 3 + 30_000);
  const entries = await loadEntries(b, before, gen.sent, `case 2 (${rate}/s)`);
  const caught = await pollUntil(() => k.stats(), (s) => s.injected >= entries, { timeoutMs: sz.convergeMs, gapMs: 10, stallMs: 10_000, progress: (s) => s.injected });
  const tail = caught.at - gen.end;
  const base = BigInt(Math.floor(gen.start)) * 1_000_000_000n;
  const [t1, t2] = await Promise.all([kernelStarts(b, 'fw1', base, 60_000), kernelStarts(b, 'fw2', base, 60_000)]);
  const order = [...t1.entries()].sort((x, y) => x[1] - y[1]);
  const lags: number[] = [];
  for (const [kk, start1] of order) {
    const start2 = t2.get(kk);
    if (start2 !== undefined) lags.push((start2 - start1) / 1e6);
  }
  const tenth = Math.max(1, Math.floor(lags.length / 10));
  const med = (xs: number[]) => quantile(Float64Array.from(xs).sort(), 0.5);
  const sorted = Float64Array.from(lags).sort();
  const achievedRate = gen.sent / gen.seconds;
  const st = caught.value;
  const rt = await p.runtime();
  return {
    targetRate: rate,
    achievedRate,
    seconds: gen.seconds,
    entries: t1.size,
    matched: lags.length,
    missing: t1.size - lags.length,
    p50Ms: quantile(sorted, 0.5),
    p99Ms: quantile(sorted, 0.99),
    maxMs: sorted.length ? sorted[sorted.length - 1] : NaN,
    meanMs: lags.reduce((s, x) => s + x, 0) / Math.max(1, lags.length),
    firstTenthP50Ms: med(lags.slice(0, tenth)),
    lastTenthP50Ms: med(lags.slice(-tenth)),
    steady: achievedRate >= 0.95 * rate && caught.ok && tail <= 1 && lags.length === t1.size,
    injectFailed: st.injectFailed,
    netlinkOverruns: rt.overruns,
  };
}

async function lag(b: Bench, sz: Sizes, hashLimit: number): Promise<LagFigures> {
  const attempts: LagAttempt[] = [];
  let last: Omit<LagFigures, 'attempts'> | undefined;
  for (const [i, rate] of sz.lagRates.entries()) {
    last = await lagAt(b, sz, rate, RANGE.lag + i * 2_000_000, hashLimit);
    const { targetRate, achievedRate, p50Ms, p99Ms, missing, steady } = last;
    attempts.push({ targetRate, achievedRate, p50Ms, p99Ms, missing, steady });
    if (steady) break;
    b.notes.push(`case 2: ${rate}/s not held (generator reached ${fmtRate(achievedRate)}/s, fw2 ${last.missing} missing; lag there p50 ${p50Ms.toFixed(3)} ms, p99 ${p99Ms.toFixed(3)} ms)`);
  }
  return { ...last!, attempts };
}

async function resync(b: Bench, sz: Sizes, hashLimit: number): Promise<ResyncFigures> {
  const n = sz.resync;
  await fresh(b, false, hashLimit, { fw1: false, fw2: false });
  const before = b.ctCount('fw1');
  // Fill: as fast as the generator goes; datagrams lost on the way are sent again (duplicates only refresh).
  const t0 = now();
  let made = 0;
  for (let pass = 0; pass < 3; pass++) {
    await load(b, RANGE.resync, n, 0, 300_000);
    made = (await settledCount(b, 'fw1')) - before;
    if (made >= n) break;
  }
  const fillSeconds = now() - t0;
  if (made < n) throw new ConntrackdBenchError(`fw1's table holds ${made} of ${n} entries after three passes of the generator: is nf_conntrack_max (${readFileSync('/proc/sys/net/netfilter/nf_conntrack_max', 'utf8').trim()}) big enough?`);
  // The primary starts on the full table and dumps it into its internal cache.
  const p = new Daemon(b, 'fw1', false, hashLimit);
  b.daemons.fw1 = p;
  const tp = now();
  await p.start();
  const loaded = await pollUntil(() => p.stats(), (s) => s.internal >= n, { timeoutMs: 180_000, gapMs: 50, stallMs: 20_000, progress: (s) => s.internal });
  if (!loaded.ok) throw new ConntrackdBenchError(`fw1's conntrackd loaded ${loaded.value.internal} of ${n} entries from its kernel table (${loaded.stalled ? 'no progress for 20 s' : 'not done in 180 s'}): ${p.tail()}`);
  // The backup (re)starts empty and asks for a resync, as operators do after a restart.
  const k = new Daemon(b, 'fw2', false, hashLimit);
  b.daemons.fw2 = k;
  await k.start();
  const tx = b.txBytes('fw1');
  const rcv = rcvbufErrors(b, 'fw2');
  const tr = now();
  await k.ctl(['-n']);
  // Given up when the backup's cache stops growing for 15 s (FTFW could not recover a loss) or after 120 s.
  const done = await pollUntil(() => k.stats(), (s) => s.external >= n, { timeoutMs: 120_000, gapMs: 5, stallMs: 15_000, progress: (s) => s.external });
  const resyncSeconds = done.ok ? done.at - tr : null;
  await sleep(200);
  const txa = b.txBytes('fw1');
  const dropped = rcvbufErrors(b, 'fw2') - rcv;
  const [a, c] = await Promise.all([kernelKeys(b, 'fw1', 120_000), externalKeys(k, 120_000)]);
  const missing = diff(a, c);
  if (!done.ok) {
    const gaps = await k.sequenceGaps();
    b.notes.push(`case 3: fw2's external cache ${done.stalled ? 'stopped growing' : 'was still growing'} at ${done.value.external} of ${n} entries ${(done.at - tr).toFixed(0)} s after conntrackd -n (${missing} missing for good; fw2 saw ${gaps} sequence gaps, its socket dropped ${dropped} datagrams for want of buffer)`);
  }
  return {
    entries: n,
    fillSeconds,
    fillRate: n / fillSeconds,
    primaryLoadSeconds: loaded.at - tp,
    resyncSeconds,
    rate: resyncSeconds === null ? 0 : n / resyncSeconds,
    missing,
    extra: diff(c, a),
    bytesPerEntry: (txa.bytes - tx.bytes) / n,
    backupRcvbufErrors: dropped,
    pollMs: done.meanGapMs,
  };
}

// ---------------------------------------------------------------------------------------------
// Entry point
// ---------------------------------------------------------------------------------------------

function preflight(): string {
  if (process.getuid?.() !== 0) throw new ConntrackdBenchError('the conntrackd bench needs root (network namespaces, iptables, conntrack): run it as root');
  const need = (cmd: string, args: string[]) => {
    try {
      return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      throw new ConntrackdBenchError(`${cmd} is missing or broken (${(e as Error).message.split('\n')[0]}): run bash scripts/setup.sh (it installs conntrackd and conntrack)`);
    }
  };
  const v = need('conntrackd', ['-v']);
  need('conntrack', ['--version']);
  need('python3', ['--version']);
  need('iptables', ['--version']);
  if (!existsSync(GEN)) throw new ConntrackdBenchError(`load generator ${GEN} not found: run from the repository's dist (node dist/bench/sync/conntrackd.js)`);
  CLK_TCK = Number(need('getconf', ['CLK_TCK']).trim()) || 100;
  return /v(\d+\.\d+\.\d+)/.exec(v)?.[1] ?? v.trim();
}

function setupLab(b: Bench): void {
  b.topo.build();
  for (const fw of ['fw1', 'fw2'] as const) {
    // A conntrack match registers conntrack in the namespace; UDP entries live long enough for the run.
    b.exec(fw, 'iptables', ['-A', 'FORWARD', '-m', 'conntrack', '--ctstate', 'NEW,ESTABLISHED,RELATED,INVALID', '-j', 'ACCEPT']);
    b.exec(fw, 'sysctl', ['-qw', 'net.netfilter.nf_conntrack_udp_timeout=3600', 'net.netfilter.nf_conntrack_timestamp=1', 'net.netfilter.nf_conntrack_events=1']);
  }
  // The server drops the load before its stack answers (no ICMP unreachables back through fw1).
  b.exec('server', 'iptables', ['-t', 'raw', '-A', 'PREROUTING', '-i', LAB_IF.outside, '-p', 'udp', '-j', 'DROP']);
  // Neighbours resolved before the first datagram.
  b.exec('client', 'ping', ['-c', '1', '-W', '2', '-q', S]);
  b.exec('fw1', 'ping', ['-c', '1', '-W', '2', '-q', LAB_ADDR.fw2.sync]);
}

/** Run the three cases in a fresh lab; everything made is removed afterwards, also on failure or a signal. */
export async function runConntrackdBench(opts: ConntrackdBenchOptions = {}): Promise<ConntrackdFigures> {
  const sz = sizes(opts);
  const version = preflight();
  const startedAt = new Date();
  const b = new Bench();
  const load1 = loadavg()[0];
  if (load1 > 0.5 * cpus().length) {
    b.notes.push(`the machine was busy when the run started (1-minute load ${load1.toFixed(1)} on ${cpus().length} CPUs): figures may be low; rerun on a quiet machine`);
  }
  const onSignal = (sig: NodeJS.Signals) => {
    console.error(`conntrackd bench: ${sig}: cleaning up the lab`);
    b.cleanup();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    process.kill(process.pid, sig);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const biggest = Math.max(sz.replication, sz.lagRates[0] * sz.lagSeconds, sz.resync);
    b.raiseHostSysctl('net.netfilter.nf_conntrack_max', biggest + MARGIN);
    b.raiseHostSysctl('net.netfilter.nf_conntrack_buckets', 2 ** Math.ceil(Math.log2(biggest)));
    const hashLimit = 2 ** Math.ceil(Math.log2(2 * biggest + MARGIN));
    setupLab(b);
    b.lookAround();

    // The generator's ceiling: same load, no conntrackd.
    await fresh(b, false, hashLimit, { fw1: false, fw2: false });
    const before = b.ctCount('fw1');
    const alone = await load(b, RANGE.alone, sz.replication, 0, 120_000);
    const aloneEntries = (await settledCount(b, 'fw1')) - before;
    const generatorAloneRate = aloneEntries / alone.seconds;

    const replicationFigures = [
      await replication(b, sz, 0, RANGE.rep0, generatorAloneRate, hashLimit),
      await replication(b, sz, 1, RANGE.rep1, generatorAloneRate, hashLimit),
    ];
    b.lookAround();
    const lagFigures = await lag(b, sz, hashLimit);
    b.lookAround();
    const resyncFigures = await resync(b, sz, hashLimit);
    b.lookAround();
    for (const fw of ['fw2', 'fw1'] as const) await b.daemons[fw]?.stop();
    if (b.foreign.size) {
      b.notes.push(`other network namespaces existed during the run (${[...b.foreign].slice(0, 8).join(', ')}${b.foreign.size > 8 ? ', ...' : ''}): another lab test or benchmark shared the ${cpus().length} CPUs, figures may be low; rerun on a quiet machine`);
    }
    return {
      tool: 'conntrackd',
      version,
      mode: 'FTFW',
      transport: 'multicast 225.0.0.50:3780 on sync0',
      quick: opts.quick ?? false,
      startedAt: startedAt.toISOString(),
      wallSeconds: (Date.now() - startedAt.getTime()) / 1000,
      host: { cpus: cpus().length, kernel: release() },
      generatorAloneRate,
      replication: replicationFigures,
      lag: lagFigures,
      resync: resyncFigures,
      notes: b.notes,
    };
  } catch (e) {
    // Daemon logs go with the temp dir: put their ends into the error.
    const logs = (['fw1', 'fw2'] as const).map((fw) => b.daemons[fw] && `${fw} conntrackd ${b.daemons[fw].tail()}`).filter(Boolean);
    if (logs.length && e instanceof Error) e.message += `\n${logs.join('\n')}`;
    throw e;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    b.cleanup();
  }
}

// ---------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------

function fmtRate(r: number): string {
  return r >= 1e5 ? `${Math.round(r / 1000)} k` : r >= 1e3 ? `${(r / 1000).toFixed(1)} k` : r.toFixed(0);
}

const s2 = (x: number | null) => (x === null ? 'never' : x.toFixed(2));

export function formatConntrackdFigures(f: ConntrackdFigures): string {
  const out: string[] = [];
  out.push(`conntrackd ${f.version}, ${f.mode} over ${f.transport}, fw1 (primary) -> fw2 (backup); ${f.host.cpus} CPUs, kernel ${f.host.kernel}${f.quick ? ', quick' : ''}`);
  out.push(`load: one UDP datagram per new 5-tuple, client -> server through fw1; generator alone (no conntrackd): ${fmtRate(f.generatorAloneRate)} entries/s`);
  out.push('');
  out.push('1. replication of new entries, fw1 kernel -> fw2 external cache (checked entry by entry)');
  out.push('   loss  entries  load s  converged s  rate/s   missing  B/entry  pkts/entry  ack B/entry  dropped  overruns  limit');
  for (const r of f.replication) {
    out.push(`   ${`${r.lossPercent} %`.padEnd(5)} ${String(r.entries).padStart(7)}  ${r.loadSeconds.toFixed(2).padStart(6)}  ${s2(r.convergedSeconds).padStart(11)}  ${fmtRate(r.rate).padStart(7)}  ${String(r.missing).padStart(7)}  ${r.bytesPerEntry.toFixed(1).padStart(7)}  ${r.packetsPerEntry.toFixed(3).padStart(10)}  ${r.ackBytesPerEntry.toFixed(1).padStart(11)}  ${String(r.syncDatagramsDropped).padStart(7)}  ${String(r.netlinkOverruns).padStart(8)}  ${r.limit}`);
  }
  for (const r of f.replication) {
    const us = (cpu: number) => ((cpu / r.entries) * 1e6).toFixed(1);
    out.push(`   ${r.lossPercent} %: generator ${fmtRate(r.generatorRate)}/s; fw2 trailed the load by ${r.tailSeconds === null ? '-' : `${(r.tailSeconds * 1000).toFixed(0)} ms`}; CPU primary ${r.cpuSecondsPrimary.toFixed(2)} s (${us(r.cpuSecondsPrimary)} us/entry), backup ${r.cpuSecondsBackup.toFixed(2)} s (${us(r.cpuSecondsBackup)} us/entry); sequence gaps at fw2 ${r.sequenceGapsAtBackup}; extra on fw2 ${r.extra}`);
    out.push(`        limit: ${r.limitReason}`);
  }
  const l = f.lag;
  out.push('');
  const unsteady = l.attempts.filter((a) => !a.steady).map((a) => fmtRate(a.targetRate));
  out.push(`2. sync lag at ${fmtRate(l.targetRate)} new entries/s${unsteady.length ? ` (${unsteady.join(', ')}/s not held)` : ''}, fw2 DisableExternalCache (kernel start timestamps fw2 - fw1)`);
  out.push(`   generator ${fmtRate(l.achievedRate)}/s for ${l.seconds.toFixed(2)} s: ${l.entries} entries, ${l.matched} on fw2, ${l.missing} missing, ${l.injectFailed} failed injections, ${l.netlinkOverruns} netlink overruns; ${l.steady ? 'steady' : 'NOT steady'}`);
  for (const a of l.attempts.filter((x) => x.targetRate !== l.targetRate)) {
    out.push(`   at ${fmtRate(a.targetRate)}/s asked: generator ${fmtRate(a.achievedRate)}/s, lag p50 ${a.p50Ms.toFixed(3)} ms p99 ${a.p99Ms.toFixed(3)} ms, ${a.missing} missing: not steady`);
  }
  out.push(`   lag p50 ${l.p50Ms.toFixed(3)} ms  p99 ${l.p99Ms.toFixed(3)} ms  max ${l.maxMs.toFixed(3)} ms  mean ${l.meanMs.toFixed(3)} ms  (p50 first tenth ${l.firstTenthP50Ms.toFixed(3)} ms, last tenth ${l.lastTenthP50Ms.toFixed(3)} ms)`);
  const r = f.resync;
  out.push('');
  out.push(`3. bulk resync of ${r.entries} entries (backup restarted empty, conntrackd -n)`);
  out.push(`   fill fw1's kernel table ${r.fillSeconds.toFixed(2)} s (${fmtRate(r.fillRate)}/s); fw1 conntrackd initial load ${r.primaryLoadSeconds.toFixed(2)} s`);
  out.push(`   resync ${r.resyncSeconds === null ? 'NEVER COMPLETED' : `${r.resyncSeconds.toFixed(3)} s = ${fmtRate(r.rate)} entries/s`} (poll every ${r.pollMs.toFixed(0)} ms); ${r.bytesPerEntry.toFixed(1)} B/entry on sync0; missing ${r.missing}, extra ${r.extra}; fw2 socket buffer drops ${r.backupRcvbufErrors}`);
  if (f.notes.length) {
    out.push('');
    out.push('notes:');
    for (const n of f.notes) out.push(`   - ${n}`);
  }
  out.push(`(${f.wallSeconds.toFixed(0)} s)`);
  return out.join('\n');
}

async function main(argv: string[]): Promise<void> {
  const opts: ConntrackdBenchOptions = {};
  let json: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') opts.quick = true;
    else if (a === '--json' && argv[i + 1]) json = argv[++i];
    else if (a === '--entries' && argv[i + 1]) opts.entries = Number(argv[++i]);
    else {
      console.error('usage: node dist/bench/sync/conntrackd.js [--quick] [--entries N] [--json FILE]');
      process.exit(2);
    }
  }
  const f = await runConntrackdBench(opts);
  console.log(formatConntrackdFigures(f));
  if (json) {
    writeFileSync(json, `${JSON.stringify(f, null, 2)}\n`);
    console.log(`figures written to ${json}`);
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    console.error(e instanceof ConntrackdBenchError ? `conntrackd bench: ${e.message}` : e);
    process.exit(1);
  });
}

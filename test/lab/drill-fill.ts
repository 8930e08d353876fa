/**
 * A filled table for the failover drills (issue 6: "the same drill with 100 k and 1 M live
 * replicated flows"): N entries made by real packets through the master's data plane, replicated
 * to the backup by the sync, before the fault. No back door into the table: the client sends one
 * UDP datagram per 5-tuple (agents/fill-udp.py, raw socket, paced), the master tracks, filters and
 * SNATs each as a NEW flow, and its sync sends the entry to the backup.
 *
 * - Tuples: the client's address, source ports FILL_SPORT.. (1000 of them) times destination ports
 *   FILL_DPORT.. on the server. SNAT maps each inside address:port to one outside port for every
 *   destination (endpoint-independent mapping), so 1 M flows use 1000 outside ports of the virtual
 *   address: no exhaustion (checked: drops.nat_exhausted stays 0), no ruleset variant needed.
 * - The server drops them in its raw PREROUTING (no ICMP port unreachable back through the pair):
 *   the entries stay unreplied, so the daemons run with a long UDP unreplied timeout
 *   (FILL_UDP_TIMEOUT_S) to keep them through every run of a benchmark.
 * - Paced (the NFQUEUE drops what the daemon cannot take): passes until the master's table holds
 *   N, then until the backup's does.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { DrillLab } from './drill.js';
import type { Fw } from './daemon-pair.js';
import { LAB_ADDR } from './topology.js';

const root = fileURLToPath(new URL(import.meta.url.includes('/dist/') ? '../../../' : '../../', import.meta.url));
export const FILL_SPORT = 10000;
export const FILL_SPORTS = 1000;
export const FILL_DPORT = 20000;
/** UDP unreplied timeout for the drills with a filled table, s (an hour: longer than a benchmark). */
export const FILL_UDP_TIMEOUT_S = 3600;
/**
 * A fill may end this much short of the size asked for (a few packets lost without a queue drop
 * to show for it; finding them would mean another pass over every tuple): the counts are reported.
 */
export const SHORT_OK = 0.001;

export interface FillResult {
  /** Entries asked for. */
  entries: number;
  /** Entries in each table at the end (the drill's own flows included). */
  fw1: number;
  fw2: number;
  passes: number;
  /** Packets sent over all passes, and the time until fw1 held them, until fw2 did, s. */
  sent: number;
  fw1Seconds: number;
  fw2Seconds: number;
  /** Counters on fw1 after the fill that would say the fill went wrong. */
  natExhausted: number;
  tableFull: number;
}

/** The daemons' conntrack settings for a table of `entries`: room for them and the drill's, preallocated. */
export function fillConntrack(entries: number): { maxEntries: number; udpUnrepliedS: number } | Record<string, never> {
  return entries > 0 ? { maxEntries: Math.max(65536, Math.ceil((entries * 1.25) / 65536) * 65536), udpUnrepliedS: FILL_UDP_TIMEOUT_S } : {};
}

/**
 * fw's entry count (`ct count`), asked up to 5 times 300 ms apart (a daemon busy with a bulk resync
 * or a fill may not answer the CLI in time: taken for an empty table, that started a whole new
 * fill); -1 when it never answers.
 */
export function ctCount(lab: DrillLab, fw: Fw): number {
  for (let i = 0; i < 5; i++) {
    const r = lab.pair.twinwall(fw, 'ct', 'count', '-o', 'json');
    if (r.code === 0) return (JSON.parse(r.out) as { count: number }).count;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
  }
  return -1;
}

/** Sum of every numeric field called `key` in a JSON value (the stats tree). */
function sumKey(v: unknown, key: string): number {
  if (v === null || typeof v !== 'object') return 0;
  let n = 0;
  for (const [k, x] of Object.entries(v)) n += k === key && typeof x === 'number' ? x : sumKey(x, key);
  return n;
}

/** The sending agent in the client namespace: send(start, count, rate) resolves once it has sent them. */
class FillAgent {
  readonly #child: ChildProcess;
  readonly #lines: AsyncIterator<string>;
  #err = '';

  constructor(lab: DrillLab) {
    this.#child = spawn('ip', ['netns', 'exec', lab.pair.topo.ns.client, 'python3', join(root, 'test/lab/agents/fill-udp.py'),
      LAB_ADDR.client, LAB_ADDR.server, String(FILL_SPORT), String(FILL_SPORTS), String(FILL_DPORT)], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.#child.stderr?.on('data', (d: Buffer) => (this.#err += d.toString()));
    this.#lines = createInterface({ input: this.#child.stdout as NodeJS.ReadableStream })[Symbol.asyncIterator]();
  }

  async #line(): Promise<string> {
    const r = await this.#lines.next();
    if (r.done) throw new Error(`fill agent ended: ${this.#err}`);
    return r.value;
  }

  async ready(): Promise<void> {
    const l = await this.#line();
    if (l !== 'ready') throw new Error(`fill agent: ${l} ${this.#err}`);
  }

  async send(start: number, count: number, rate: number): Promise<string> {
    this.#child.stdin?.write(`${start} ${count} ${Math.round(rate)}\n`);
    return this.#line();
  }

  stop(): void {
    this.#child.kill('SIGKILL');
  }
}

/** fw's queues: packets waiting now, and dropped so far (queue full + socket buffer full), from /proc/net/netfilter/nfnetlink_queue. */
function queueState(lab: DrillLab, fw: Fw): { waiting: number; dropped: number } {
  const q = { waiting: 0, dropped: 0 };
  for (const l of lab.pair.topo.exec(fw, 'cat', ['/proc/net/netfilter/nfnetlink_queue']).split('\n')) {
    const f = l.trim().split(/\s+/);
    if (f.length < 7) continue;
    q.waiting += Number(f[2]);
    q.dropped += Number(f[5]) + Number(f[6]);
  }
  return q;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Fill fw1 (the master) with `entries` flows and wait until fw2 holds them too. Idempotent: entries
 * already there are refreshed, missing ones made (so it also tops a table up between runs).
 * `rate`: packets/s (the data plane takes ~20 k/s on this machine with SNAT).
 */
export async function fillTable(lab: DrillLab, entries: number, o: { rate?: number; maxPasses?: number; progress?: (s: string) => void } = {}): Promise<FillResult> {
  const topo = lab.pair.topo;
  const drop = ['PREROUTING', '-p', 'udp', '--dport', `${FILL_DPORT}:${FILL_DPORT + Math.ceil(entries / FILL_SPORTS)}`, '-j', 'DROP'];
  if (topo.try('server', 'iptables', ['-t', 'raw', '-C', ...drop]).code !== 0) topo.exec('server', 'iptables', ['-t', 'raw', '-A', ...drop]);
  const t0 = Date.now();
  let passes = 0;
  let sent = 0;
  let fw1 = ctCount(lab, 'fw1');
  // Chunks, paced by what the queues take: a chunk that saw queue drops (counted once the queues
  // are empty again) is sent again (its entries that made it are only refreshed); the rate goes
  // down only when a chunk lost much (the drops come from the daemon's pauses, not its rate). Both
  // nodes' queues are watched: on a loaded machine the pair may hand over during a fill (a false
  // failover at 10 ms), and the packets then go through fw2. Packets lost in such a handover show
  // in no counter: another pass (entries there only refreshed) makes them up.
  let rate = o.rate ?? 12000;
  const chunk = 5000;
  const queues = () => {
    const a = queueState(lab, 'fw1');
    const b = queueState(lab, 'fw2');
    return { waiting: a.waiting + b.waiting, dropped: a.dropped + b.dropped };
  };
  const agent = new FillAgent(lab);
  try {
    await agent.ready();
    while (fw1 < entries * (1 - SHORT_OK) && passes < (o.maxPasses ?? 3)) {
      passes++;
      let resent = 0;
      for (let start = 0; start < entries;) {
        const n = Math.min(chunk, entries - start);
        const before = queues().dropped;
        await agent.send(start, n, rate);
        sent += n;
        // Until the queues are empty and stay so (the last packets may still be on their way:
        // drops read too early would be taken for the next chunk's, and this one's lost).
        let q = queues();
        for (let i = 0, calm = 0; i < 200 && calm < 2; i++) {
          await sleep(q.waiting > 0 ? 10 : 40);
          q = queues();
          calm = q.waiting > 0 ? 0 : calm + 1;
        }
        const dropped = q.dropped - before;
        if (dropped > 0 && resent < entries) {
          if (dropped > n / 10) rate = Math.max(2000, rate * 0.8);
          resent += n;
          continue;
        }
        if (dropped === 0) rate = Math.min(30000, rate * 1.05);
        start += n;
      }
      await sleep(500);
      fw1 = ctCount(lab, 'fw1');
      o.progress?.(`fill pass ${passes}: ${entries + resent} packets sent (${resent} again after queue drops), last rate ${rate.toFixed(0)}/s, fw1 holds ${fw1} entries after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    }
  } finally {
    agent.stop();
  }
  const fw1Seconds = (Date.now() - t0) / 1000;
  let fw2 = ctCount(lab, 'fw2');
  for (const end = Date.now() + 120_000; fw2 < Math.min(fw1, entries * (1 - SHORT_OK)) && Date.now() < end;) {
    await sleep(1000);
    fw2 = ctCount(lab, 'fw2');
  }
  const stats = JSON.parse(lab.pair.twinwall('fw1', 'stats', '-o', 'json').out || '{}') as unknown;
  const r: FillResult = { entries, fw1, fw2, passes, sent, fw1Seconds, fw2Seconds: (Date.now() - t0) / 1000, natExhausted: sumKey(stats, 'nat_exhausted'), tableFull: sumKey(stats, 'table_full') };
  o.progress?.(`fill ${entries}: fw1 ${fw1}, fw2 ${fw2} entries after ${r.fw2Seconds.toFixed(1)} s (${passes} pass(es)); nat_exhausted ${r.natExhausted}, table_full ${r.tableFull}`);
  if (fw1 < entries * (1 - SHORT_OK) || fw2 < entries * (1 - SHORT_OK)) throw new Error(`table fill: fw1 holds ${fw1}, fw2 ${fw2} of ${entries} entries after ${passes} pass(es)`);
  return r;
}

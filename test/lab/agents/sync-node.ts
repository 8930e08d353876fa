/**
 * A twinwall engine with state sync on the lab's sync link, driven one request per stdin line
 * (serve-lines.ts). It stands for one firewall of the pair in the sync lab tests and the sync
 * benchmark: the load is generated inside the engine (new connections as packets through
 * Engine.process, no NFQUEUE), the sync is the real thing (UDP multicast on sync0).
 *
 *   ip netns exec FW node dist/test/lab/agents/sync-node.js
 *
 * Requests:
 *   start {nodeId, address, group?, peer?, port, mtu?, keyHex, maxEntries?}
 *   load {n, rate?, tcp?}   n new connections (UDP, or TCP handshakes) at `rate` per second (0: as
 *                           fast as possible); answers when done with the time taken
 *   count                   entries in the table, and the peer view
 *   until {count, ms}       answers when the table holds `count` entries: {count, at} (at: ms of
 *                           the shared clock), or an error after `ms`
 *   records                 every entry as base64 records (for ct diff in the test)
 *   stamps                  creation time (active) or apply time (standby) per flow key, in ms
 *                           of the shared clock performance.timeOrigin + performance.now()
 *   stats                   sync stats, the CPU time used so far (cpuUs), and when the table
 *                           first held 1000 entries after start (firstEntriesAt, shared clock; 0:
 *                           not yet)
 *   quit
 */
import { setThreadRealtime } from '../../../src/failover/advert-pacer.js';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { CtStatus, recordsToBytes, type ConntrackEventSink, type ConntrackTable } from '../../../src/node/conntrack/index.js';
import { Engine, EngineResult } from '../../../src/node/engine/index.js';
import { compileRuleset, parseRuleset } from '../../../src/node/filter/index.js';
import { buildTcp, buildUdp } from '../../../src/node/packet/build.js';
import { TcpFlag } from '../../../src/node/packet/fields.js';
import { Keyring, SyncNode, UdpTransport, tableRecords, warmUpResync, type SyncNodeOptions } from '../../../src/sync/index.js';
import { badRequest, serveLines } from './serve-lines.js';

const IN = 2;
const OUT = 3;
const RULES = `
chains:
  forward:
    policy: accept
nat:
  snat:
    # TCP flows are SNATed (their mapping is replicated); UDP ones are not, so that a million of
    # them do not run out of the 64 k ports of one outside address.
    - { out: outside0, src: 10.0.0.0/8, proto: tcp, to: 198.51.100.10 }
`;

interface StartArgs {
  nodeId: number;
  address: string;
  group?: string;
  peer?: string;
  port: number;
  mtu?: number;
  keyHex: string;
  maxEntries?: number;
  /** Sync tuning (SyncNodeOptions: flushMs, maxInFlight, windowSize...). */
  tuning?: Partial<SyncNodeOptions>;
  /** The main thread (engine and sync) in SCHED_RR at this priority (setThreadRealtime); 0 or absent: normal. */
  realtimePriority?: number;
}

let engine: Engine | null = null;
/** Event-loop delay while stamping (a stall here is lag there). */
const loopDelay = monitorEventLoopDelay({ resolution: 1 });
let sync: SyncNode | null = null;
let transport: UdpTransport | null = null;
const wall = (): number => performance.timeOrigin + performance.now();
/**
 * Flow number -> ms: created here, or applied here. A preallocated array, not a Map: a Map of
 * 100 k entries rehashes and collects as it grows, stalls that would show up as sync lag.
 */
let stamps = new Float64Array(0);
let stamping = false;

/** While stamping: stamps replicated entries as they arrive, then hands every event to sync. */
class StampingSink implements ConntrackEventSink {
  constructor(readonly next: ConntrackEventSink) {}
  ctNew(t: ConntrackTable, slot: number): void {
    if (stamping && (t.statusOf(slot) & CtStatus.REPLICATED) !== 0) {
      const n = flowNumber(t, slot);
      if (n >= 0 && n < stamps.length) stamps[n] = wall();
    }
    this.next.ctNew(t, slot);
  }
  ctUpdate(t: ConntrackTable, slot: number, changes: number): void {
    this.next.ctUpdate(t, slot, changes);
  }
  ctDestroy(t: ConntrackTable, slot: number, reason: number): void {
    this.next.ctDestroy(t, slot, reason);
  }
}

/** The generator's flow number back from the tuple (see connect): source host and port. */
function flowNumber(t: ConntrackTable, slot: number): number {
  const o = t.tupleOffset(slot, 0);
  return ((t.tuples[o] & 0xffffff) - 1) * 64000 + ((t.tuples[o + 8] >>> 16) - 1024);
}

function newEngine(entries: number, preallocate: boolean): Engine {
  return new Engine({
    conntrack: { maxEntries: entries, initialCapacity: preallocate ? entries : undefined, prefault: preallocate },
    ruleset: compileRuleset(parseRuleset(RULES), { interfaceName: (i: number) => (i === IN ? 'inside0' : i === OUT ? 'outside0' : undefined) }),
  });
}

async function start(a: StartArgs): Promise<object> {
  if (a.realtimePriority) {
    const err = setThreadRealtime(a.realtimePriority);
    if (err !== 0) throw new Error(`SCHED_RR ${a.realtimePriority} refused (errno ${err}): run as root`);
  }
  // Sized up front, as operators size nf_conntrack_max: a growth rehashes the whole table (a
  // stall of tens of ms at a million entries) in the middle of the figures.
  engine = newEngine(a.maxEntries ?? 200_000, true);
  // As the daemon does first, before its sync socket opens (src/sync/warmup.ts).
  const warm = await warmUpResync({ mtu: a.mtu, clock: engine.clock, newTable: (n) => newEngine(n, false).conntrack.table });
  transport = await UdpTransport.open({ localAddress: a.address, port: a.port, group: a.group, peerAddress: a.peer });
  sync = new SyncNode(engine.conntrack.table, transport, {
    nodeId: a.nodeId,
    keys: new Keyring([{ id: 1, secret: Buffer.from(a.keyHex, 'hex') }], 1),
    mtu: a.mtu,
    clock: engine.clock,
    helperState: engine.helperState,
    ...a.tuning,
  });
  // The stamping wrapper only while stamping ('stamp on'): otherwise the table's sink is sync's
  // sender, as in the daemon (code optimised for one sink meets no other one mid-resync).
  engine.setEventSink(sync.sink);
  // When sync started (its resync request goes out now), on the clock the lab shares: a bench
  // timing a restart starts here, not when the answer reaches it (a busy machine delays that).
  const startedAt = wall();
  sync.start();
  watchFirstEntries(engine.conntrack.table);
  return { epoch: sync.epoch, warmup: warm, startedAt };
}

/** Entries whose arrival `stats` dates (firstEntriesAt): the start of a resync. */
const FIRST_ENTRIES = 1000;
/** When the table first held FIRST_ENTRIES entries after start (shared clock), 0: not yet. */
let firstEntriesAt = 0;

/**
 * Date the first FIRST_ENTRIES entries from here, checked every millisecond for ten seconds: a
 * bench that asked with `until` once its start was answered got the time its request came, the
 * entries being there long before on a busy machine.
 */
function watchFirstEntries(t: ConntrackTable): void {
  firstEntriesAt = 0;
  const t0 = performance.now();
  const timer = setInterval(() => {
    if (t.count >= FIRST_ENTRIES) firstEntriesAt = wall();
    if (firstEntriesAt !== 0 || performance.now() - t0 > 10_000) clearInterval(timer);
  }, 1);
}

/** CPU time this process used so far (user + system), microseconds. */
function cpuUs(): number {
  const c = process.cpuUsage();
  return c.user + c.system;
}

let flowSeq = 0;
const out = new EngineResult();

/** One new connection: a UDP datagram, or a TCP handshake's SYN and SYN-ACK. */
function connect(e: Engine, tcp: boolean, udpPkt: Buffer): void {
  const n = flowSeq++;
  const host = 1 + Math.floor(n / 64000);
  const sport = 1024 + (n % 64000);
  const now = e.now();
  if (stamping && n < stamps.length) stamps[n] = wall();
  if (!tcp) {
    // Rewrite the source address and port of one datagram in place (checksums are not checked).
    udpPkt.writeUInt32BE((10 << 24) | host, 12);
    udpPkt.writeUInt16BE(sport, 20);
    e.process(udpPkt, 0, udpPkt.length, { inIf: IN, outIf: OUT, mark: 0, now }, out);
    return;
  }
  const src = `10.${(host >> 16) & 255}.${(host >> 8) & 255}.${host & 255}`;
  const syn = buildTcp({ src, dst: '203.0.113.7', sport, dport: 443, flags: TcpFlag.SYN, seq: 1000 });
  e.process(syn, 0, syn.length, { inIf: IN, outIf: OUT, mark: 0, now }, out);
  const synack = buildTcp({ src: '203.0.113.7', dst: '198.51.100.10', sport: 443, dport: sport, flags: TcpFlag.SYN | TcpFlag.ACK, seq: 5000, ack: 1001 });
  e.process(synack, 0, synack.length, { inIf: OUT, outIf: IN, mark: 0, now }, out);
}

async function load(a: { n: number; rate?: number; tcp?: boolean }): Promise<object> {
  const e = engine as Engine;
  const rate = a.rate ?? 0;
  const t0 = performance.now();
  let done = 0;
  const template = buildUdp({ src: '10.0.0.1', dst: '203.0.113.8', sport: 1, dport: 53, payload: 'q' });
  while (done < a.n) {
    // Batches of at most 1 ms worth (or 2000) so timers and sockets run between them.
    const due = rate > 0 ? Math.min(a.n, Math.floor(((performance.now() - t0) / 1000) * rate) + 1) : Math.min(a.n, done + 2000);
    const pkt = Buffer.from(template);
    const before = done;
    for (; done < due; done++) connect(e, a.tcp ?? false, pkt);
    // Ahead of the rate: sleep (a timer) rather than spin, so that the generator does not take a
    // whole core from the peer and the kernel on a 2-core machine (which showed up as lag).
    if (done === before && rate > 0) await new Promise((r) => setTimeout(r, 1));
    else await new Promise((r) => setImmediate(r));
  }
  return { created: done, ms: performance.now() - t0 };
}

/**
 * Answer once the table holds at least `count` entries (checked every millisecond here, so that
 * a benchmark waiting for convergence does not poll over the pipe meanwhile and take CPU from
 * the node it measures), with the time it did, or an error after `ms`.
 */
function until(a: { count: number; ms: number }): Promise<object> {
  const t = (engine as Engine).conntrack.table;
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const check = (): boolean => {
      if (t.count >= a.count) {
        resolve({ count: t.count, at: wall() });
        return true;
      }
      if (performance.now() - t0 > a.ms) {
        reject(new Error(`the table holds ${t.count} of ${a.count} entries after ${a.ms} ms`));
        return true;
      }
      return false;
    };
    if (check()) return;
    const timer = setInterval(() => {
      if (check()) clearInterval(timer);
    }, 1);
  });
}

function records(): object {
  const e = engine as Engine;
  return { records: recordsToBytes(tableRecords(e.conntrack.table, e.now())).toString('base64') };
}

serveLines(async (cmd, arg) => {
  switch (cmd) {
    case 'start':
      return start(JSON.parse(arg) as StartArgs);
    case 'load':
      return load(JSON.parse(arg) as { n: number; rate?: number; tcp?: boolean });
    case 'until':
      return until(JSON.parse(arg) as { count: number; ms: number });
    case 'count':
      return { count: engine?.conntrack.table.count ?? 0, peer: sync?.peer ?? null };
    case 'records':
      return records();
    case 'stamp':
      stamping = arg === 'on';
      if (engine !== null && sync !== null) engine.setEventSink(stamping ? new StampingSink(sync.sink) : sync.sink);
      if (stamping) {
        loopDelay.reset();
        loopDelay.enable();
      } else loopDelay.disable();
      stamps = new Float64Array(stamping ? (engine?.conntrack.table.maxEntries ?? 0) + 1_000_000 : 0);
      return {};
    case 'stamps': {
      // Only the flows stamped: [flow number, ms] pairs.
      const pairs: [number, number][] = [];
      for (let i = 0; i < stamps.length; i++) if (stamps[i] > 0) pairs.push([i, stamps[i]]);
      return { stamps: pairs, loopDelayP99Ms: loopDelay.percentile(99) / 1e6, loopDelayMaxMs: loopDelay.max / 1e6 };
    }
    case 'stats':
      return { firstEntriesAt, cpuUs: cpuUs(), systemUs: process.cpuUsage().system, minorFaults: process.resourceUsage().minorPageFault, rx: transport?.batchStats() ?? null, stats: sync?.stats, nextSeq: sync?.sender.nextSeq, peerApplied: sync?.sender.peerApplied, lagP50: sync?.lagPercentile(50), lagP99: sync?.lagPercentile(99) };
    case 'quit':
      await sync?.close();
      setImmediate(() => process.exit(0));
      return {};
    default:
      throw badRequest(cmd, 'start, load, until, count, records, stamp on|off, stamps, stats or quit');
  }
}, async () => {
  await sync?.close();
});

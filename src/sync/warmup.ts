/**
 * JIT warm-up of the bulk resync path, run once as sync starts, before this node asks its peer
 * for the table.
 *
 * Why: a restarted standby's dump arrives in a process whose receive path (decode, MAC, index,
 * import) V8 has never run. Measured with `perf record -a` over a 1 M entry resync in the lab:
 * ~18 % of the receiving node's CPU went to V8's compiler threads, and its main thread spent a
 * good part of the first hundreds of thousands of entries in interpreter and baseline code
 * (KeyedLoadIC, LoadIC, *_Baseline builtins), while it is the bottleneck of the whole resync.
 *
 * So two scratch SyncNodes in this process (their own tables, a random key of their own, their
 * own stats; an in-process LoopTransport, nothing on the wire) run `rounds` whole resyncs of
 * `entries` synthetic entries (UDP and TCP, IPv4 and some IPv6, some with NAT): request, dump with
 * its flow control, REPORTs, RESYNC_END and its sweep; into an empty table and over a full one.
 * The code both halves run is then optimised when the real dump comes (or when this node serves
 * one). Nothing of the live node changes.
 */
import { randomBytes } from 'node:crypto';
import { ConntrackTable, CtStatus, ENTRY_RECORD_WORDS, TcpState } from '../node/conntrack/index.js';
import { ER_AGE_S, ER_REPLY, ER_STATUS, ER_TCP, ER_TIMEOUT_MS } from '../node/conntrack/entry-record.js';
import { Keyring } from './auth.js';
import { SyncNode } from './sync-node.js';
import { LoopTransport } from './transport.js';

export interface ResyncWarmupOptions {
  /** Entries in the scratch table (default 16384). */
  entries?: number;
  /** Whole resyncs run (default 3). */
  rounds?: number;
  /** The live node's sync MTU (datagram sizes as in the real dump). */
  mtu?: number;
  /** The live node's clock. */
  clock?: () => number;
  /** Give up after this many ms (default 2000): a warm-up never holds a start up for long. */
  limitMs?: number;
  /**
   * A scratch table of `entries` entries made as the live one is (an Engine's: NAT holds its
   * resources). Code optimised on a plain table met another shape in the live one (the table's
   * resources, its event sink) and was thrown away at the first real entry (V8 deopt: "wrong
   * map"), to be compiled again in the middle of the dump. Default: a plain ConntrackTable.
   */
  newTable?: (entries: number) => ConntrackTable;
}

export interface ResyncWarmupResult {
  /** Resyncs that completed. */
  rounds: number;
  /** Entries the receiving scratch node applied over all rounds. */
  applied: number;
  /** Rounds of the first tour that completed (3 when it ran to its end; see warmUpResync). */
  tourRounds: number;
  ms: number;
}

/** Run the warm-up; resolves (never rejects for a resync that did not finish: see `rounds`). */
export async function warmUpResync(o: ResyncWarmupOptions = {}): Promise<ResyncWarmupResult> {
  const t0 = performance.now();
  const entries = o.entries ?? 16384;
  const rounds = o.rounds ?? 3;
  const limitMs = o.limitMs ?? 2000;
  const newTable = o.newTable ?? ((n: number) => new ConntrackTable({ maxEntries: n, initialCapacity: n }));
  const clock = o.clock ?? Date.now;
  // First a tour of every path with few entries, too few for the optimiser to compile anything:
  // then the type feedback covers them all (creates, updates in place, removals, a running wheel)
  // when the rounds below make the code hot. Optimised after creates alone, the import was thrown
  // away at the first update (V8 deopt: "insufficient type feedback") late in the warm-up, and its
  // new compilation (~100 ms of a compiler thread on a busy machine) was still going, or was
  // dropped ("dependency change"), when the real dump came: its first ~100 ms ran unoptimised.
  const tour = await runRounds(newTable, Math.min(TOUR_ENTRIES, entries), 3, clock, o.mtu, t0 + limitMs);
  const bulk = await runRounds(newTable, entries, rounds, clock, o.mtu, t0 + limitMs);
  return { rounds: bulk.rounds, applied: bulk.applied, tourRounds: tour.rounds, ms: performance.now() - t0 };
}

/** Entries of the warm-up's first tour (see warmUpResync). */
const TOUR_ENTRIES = 96;

/** Up to `rounds` whole resyncs of `entries` between two scratch nodes, until `deadline` (ms). */
async function runRounds(newTable: (n: number) => ConntrackTable, entries: number, rounds: number, clock: () => number, mtu: number | undefined, deadline: number): Promise<{ rounds: number; applied: number }> {
  const keys = new Keyring([{ id: 1, secret: randomBytes(32) }], 1);
  const [ta, tb] = LoopTransport.pair();
  const active = newTable(entries);
  const standby = newTable(entries);
  fillSynthetic(active, entries, clock());
  // A window big enough for the dump's flow control (it keeps half the window in flight at most).
  const opts = { keys, mtu, clock, windowSize: 512 };
  const a = new SyncNode(active, ta, { ...opts, nodeId: 1 });
  const b = new SyncNode(standby, tb, { ...opts, nodeId: 2 });
  // Each table's event sink is its node's sender, as a node's engine has it (engine.setEventSink).
  active.sink = a.sink;
  standby.sink = b.sink;
  let done = 0;
  try {
    for (let r = 0; r < rounds; r++) {
      const left = deadline - performance.now();
      if (left <= 0) break;
      // The paths a real dump takes, each before the optimiser settles: round 1 into an empty
      // table whose timer wheel never ran (a node just started), round 2 over the entries it
      // holds (index hits, entries updated in place), then into an emptied table whose wheel
      // runs (the engine's tick). Code optimised without one of them was thrown away when it
      // came (V8 deopt: "insufficient type feedback").
      if (r !== 1) standby.flush();
      if (r >= 2) {
        active.advance(clock());
        standby.advance(clock());
      }
      const finished = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), left);
        b.receiver.onResyncDone = () => {
          clearTimeout(timer);
          resolve(true);
        };
        if (r === 0) b.start();
        else b.requestResync();
      });
      if (!finished) break;
      done++;
    }
  } finally {
    await a.close();
    await b.close();
  }
  const s = b.stats.entriesApplied;
  return { rounds: done, applied: s.create + s.update };
}

/**
 * `n` entries the way a busy firewall holds them: 3 in 4 UDP, the rest TCP ESTABLISHED; every
 * 16th IPv6; every 8th source-NATed (its reply tuple to another address and port).
 */
function fillSynthetic(t: ConntrackTable, n: number, now: number): void {
  const r = new Uint32Array(ENTRY_RECORD_WORDS);
  for (let i = 0; i < n; i++) {
    r.fill(0);
    const tcp = i % 4 === 3;
    const v6 = i % 16 === 5;
    const nat = i % 8 === 1;
    const proto = tcp ? 6 : 17;
    const meta = ((v6 ? 6 : 4) << 8) | proto;
    const sport = 1024 + (i % 60000);
    const dport = tcp ? 443 : 53;
    // Original: inside host -> server.
    r[0] = v6 ? 0x20010db8 : ((10 << 24) | (i & 0xffffff)) >>> 0;
    if (v6) r[3] = i;
    r[4] = v6 ? 0x20010db8 : 0xcb007108;
    if (v6) r[7] = 0x53;
    r[8] = ((sport << 16) | dport) >>> 0;
    r[9] = meta;
    // Reply: server -> inside host, or -> the NAT address and port.
    for (let k = 0; k < 4; k++) {
      r[ER_REPLY + k] = r[4 + k];
      r[ER_REPLY + 4 + k] = r[k];
    }
    const rport = nat ? 20000 + (i % 40000) : sport;
    if (nat) {
      r[ER_REPLY + 4] = v6 ? 0x20010db8 : 0xc6336401;
      if (v6) r[ER_REPLY + 7] = 0x64;
    }
    r[ER_REPLY + 8] = ((dport << 16) | rport) >>> 0;
    r[ER_REPLY + 9] = meta;
    r[ER_STATUS] = CtStatus.SEEN_REPLY | CtStatus.ASSURED | (nat ? CtStatus.SRC_NAT : 0);
    r[ER_TIMEOUT_MS] = tcp ? 432_000_000 : 180_000;
    r[ER_AGE_S] = i % 600;
    if (tcp) {
      // ESTABLISHED with windows both ways (tcp-store.ts exportEntry's layout).
      r[ER_TCP] = TcpState.ESTABLISHED;
      r[ER_TCP + 1] = 7 | (7 << 16);
      r[ER_TCP + 3] = 502;
      for (let d = 0; d < 2; d++) {
        const base = 1_000_000 + i * 7 + d * 50_000_000;
        r[ER_TCP + 4 + d * 4] = base;
        r[ER_TCP + 5 + d * 4] = base + 64_240;
        r[ER_TCP + 6 + d * 4] = 64_240;
        r[ER_TCP + 7 + d * 4] = base + 1000;
      }
    }
    t.importEntry(r, 0, now);
  }
}

/**
 * Where a bulk resync's time goes, in one process without a network: a table of N UDP entries
 * (made by real packets through an engine) is dumped by the sender into datagrams (export,
 * encode, MAC), which are then taken apart by the stages the receiving node runs: MAC check
 * alone, decode alone, import alone, and the whole receive path (SyncNode.receive) into an empty
 * preallocated table. Prints microseconds per entry and per datagram for each stage.
 * Run: node dist/bench/sync/stages.js [--entries N]
 */
import { ENTRY_RECORD_WORDS, CtStatus, type ConntrackTable } from '../../src/node/conntrack/index.js';
import { Engine, EngineResult } from '../../src/node/engine/index.js';
import { compileRuleset, parseRuleset } from '../../src/node/filter/index.js';
import { buildUdp } from '../../src/node/packet/build.js';
import { Keyring, SyncNode, type SyncTransport } from '../../src/sync/index.js';
import { decodeEntry, newDecodedEntry, type DecodedEntry } from '../../src/sync/entry-codec.js';
import { HEADER_BYTES, MAC_BYTES } from '../../src/sync/wire.js';

const arg = process.argv.indexOf('--entries');
const N = arg > 0 ? Number(process.argv[arg + 1]) : 1_000_000;
const KEY = { id: 1, secret: Buffer.from('0123456789abcdef0123456789abcdef') };
const rules = compileRuleset(parseRuleset('chains:\n  forward:\n    policy: accept\n'), { interfaceName: (i: number) => `if${i}` });

class Collect implements SyncTransport {
  onMessage: ((buf: Buffer) => void) | null = null;
  readonly out: Buffer[] = [];
  keep = false;
  send(buf: Buffer): void {
    if (this.keep) this.out.push(Buffer.from(buf));
  }
  async close(): Promise<void> {}
}

function newEngine(): Engine {
  return new Engine({ conntrack: { maxEntries: N + 1000, initialCapacity: N + 1000, prefault: true }, ruleset: rules });
}

/** N new UDP flows through the engine, in batches of 2000 with a turn of the event loop between. */
async function fill(e: Engine): Promise<void> {
  const pkt = buildUdp({ src: '10.0.0.1', dst: '203.0.113.8', sport: 1, dport: 53, payload: 'q' });
  const res = new EngineResult();
  for (let i = 0; i < N; i++) {
    pkt.writeUInt32BE((10 << 24) | (i >>> 8), 12);
    pkt.writeUInt16BE(1024 + (i & 0xff), 20);
    pkt.writeUInt16BE(0, 26);
    e.process(pkt, 0, pkt.length, { inIf: 2, outIf: 3, mark: 0, now: e.now() }, res);
    if (i % 2000 === 1999) await new Promise((r) => setImmediate(r));
  }
}

function per(label: string, ms: number, entries: number, datagrams: number): void {
  console.log(`  ${label.padEnd(34)} ${ms.toFixed(0).padStart(6)} ms  ${((ms * 1000) / entries).toFixed(3)} us/entry  ${((ms * 1000) / datagrams).toFixed(2)} us/datagram  ${Math.round(entries / (ms / 1000)).toLocaleString('en')} entries/s`);
}

async function main(): Promise<void> {
  // 0. Live replication on the active: the same new flows through an engine with and without
  // sync as its event sink (ctNew, coalescing, export, encode, MAC, handing over to the socket).
  const live = { plain: Infinity, sync: Infinity };
  let liveDatagrams = 0;
  for (let round = 0; round < 2; round++) {
    for (const mode of ['plain', 'sync'] as const) {
      const e = newEngine();
      const n = mode === 'sync' ? new SyncNode(e.conntrack.table, new Collect(), { nodeId: 1, keys: new Keyring([KEY], 1), clock: e.clock, windowSize: 1 << 17 }) : null;
      if (n !== null) e.setEventSink(n.sink);
      const t = performance.now();
      await fill(e);
      live[mode] = Math.min(live[mode], performance.now() - t);
      if (n !== null) {
        liveDatagrams = n.stats.sent.update ?? 0;
        await n.close();
      }
    }
  }
  console.log(`live replication on the active, ${N.toLocaleString('en')} new UDP flows through the engine:`);
  per('engine alone', live.plain, N, liveDatagrams);
  per('engine + sync', live.sync, N, liveDatagrams);
  per('sync\'s share', live.sync - live.plain, N, liveDatagrams);

  const a = newEngine();
  await fill(a);
  const ta = new Collect();
  const na = new SyncNode(a.conntrack.table, ta, { nodeId: 1, keys: new Keyring([KEY], 1), clock: a.clock, maxInFlight: 1 << 30, windowSize: 1 << 17 });
  a.setEventSink(na.sink);
  // As toward a peer of this version (its messages say it reads entries without the reply tuple).
  na.sender.peerReadsReversed = true;
  console.log(`bulk resync stages, ${a.conntrack.table.count.toLocaleString('en')} UDP entries:`);
  // 1. The dump (sender): export, encode, seal.
  ta.keep = true;
  let t0 = performance.now();
  na.sender.startResync(12345);
  while (na.sender.resyncing) await new Promise((r) => setImmediate(r));
  const dumpMs = performance.now() - t0;
  const dgs = ta.out;
  per('dump (export, encode, MAC)', dumpMs, N, dgs.length);
  const bytes = dgs.reduce((s, d) => s + d.length, 0);
  console.log(`  ${dgs.length} datagrams, ${(bytes / dgs.length).toFixed(0)} bytes each, ${(N / dgs.length).toFixed(1)} entries each`);

  // 2. MAC check alone.
  const keys = new Keyring([KEY], 1);
  t0 = performance.now();
  let ok = 0;
  for (const d of dgs) if (keys.verify(d, 1) === 'ok') ok++;
  per('MAC check', performance.now() - t0, N, dgs.length);
  if (ok !== dgs.length) throw new Error('MAC check failed');

  // 3. Decode alone.
  const rec = new Uint32Array(ENTRY_RECORD_WORDS);
  const dec: DecodedEntry = newDecodedEntry();
  const recs = new Uint32Array(N * ENTRY_RECORD_WORDS);
  let k = 0;
  t0 = performance.now();
  for (const d of dgs) {
    const end = d.length - MAC_BYTES;
    if (d[3] !== 1) continue;
    const count = d.readUInt16BE(HEADER_BYTES);
    let o = HEADER_BYTES + 2;
    for (let i = 0; i < count; i++) {
      decodeEntry(d, o, end, rec, dec);
      o += dec.length;
      if (k < N) recs.set(rec, k++ * ENTRY_RECORD_WORDS);
    }
  }
  per('decode', performance.now() - t0, N, dgs.length);

  // 4. Import alone, into an empty preallocated table (best of three).
  const W = ENTRY_RECORD_WORDS;
  let best = Infinity;
  for (let round = 0; round < 3; round++) {
    const t: ConntrackTable = newEngine().conntrack.table;
    const now = performance.now();
    t0 = performance.now();
    for (let i = 0; i < k; i++) t.importEntry(recs, i * W, now, CtStatus.REPLICATED, true);
    best = Math.min(best, performance.now() - t0);
  }
  per('import (table.importEntry)', best, N, dgs.length);

  // 4b. The same in batches of a datagram's entries, their buckets loaded first (table.hashBatch).
  const per1 = Math.round(N / dgs.length);
  const hashes = new Int32Array(2 * per1);
  best = Infinity;
  for (let round = 0; round < 3; round++) {
    const t: ConntrackTable = newEngine().conntrack.table;
    const now = performance.now();
    t0 = performance.now();
    for (let i = 0; i < k; i += per1) {
      const n = Math.min(per1, k - i);
      t.hashBatch(recs, i * W, W, n, hashes);
      for (let j = 0; j < n; j++) t.importHashed(recs, (i + j) * W, now, CtStatus.REPLICATED, true, 0, hashes[2 * j], hashes[2 * j + 1]);
    }
    best = Math.min(best, performance.now() - t0);
  }
  per(`import in batches of ${per1} (hashBatch)`, best, N, dgs.length);

  // 5. The whole receive path into an empty preallocated table.
  const b2 = newEngine();
  const tb = new Collect();
  const nb = new SyncNode(b2.conntrack.table, tb, { nodeId: 2, keys: new Keyring([KEY], 1), clock: b2.clock });
  b2.setEventSink(nb.sink);
  t0 = performance.now();
  for (const d of dgs) nb.receive(d);
  per('receive (SyncNode.receive)', performance.now() - t0, N, dgs.length);
  if (b2.conntrack.table.count !== N) throw new Error(`receiver holds ${b2.conntrack.table.count} of ${N}`);
  await na.close();
  await nb.close();
}

await main();

/**
 * Engine benchmarks (issue targets in brackets):
 *   1. established TCP packets/s through parse + conntrack + a 100-rule ruleset + verdict, one core,
 *      with 1k, 100k and 1M live flows            [>= 1.5 M packets/s at 100k flows]
 *   2. new connections/s, SYN to entry created     [>= 300 k/s]
 *   3. memory per tracked connection at 1M entries, heap + array buffers after GC [<= 256 bytes]
 *
 * Run: npm run bench   (tsc, then node --expose-gc dist/bench/engine.js)
 * Packets are real bytes generated before timing into one large buffer (a packet every 64 bytes), as
 * the data plane finds them in its receive buffers, so the generator's cost and cache footprint
 * stay out of the figures.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Engine, EngineResult, PacketBatch, type PacketMeta } from '../src/node/engine/engine.js';
import { compileRuleset, parseRuleset } from '../src/node/filter/index.js';
import { buildTcp, writeTcpInto } from '../src/node/packet/build.js';
import { TcpFlag } from '../src/node/packet/fields.js';

const { SYN, ACK, PSH } = TcpFlag;
const rulesPath = fileURLToPath(new URL('../../test/fixtures/rules/bench-100.yaml', import.meta.url));
const TEMPLATES = 16;

function ruleset() {
  return compileRuleset(parseRuleset(readFileSync(rulesPath, 'utf8')), { interfaceName: () => undefined });
}

function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) {
    g();
    g();
  }
}

/** Flow i: client 10.1.0.(i%16+1), sport from i, server 10.2.0.1:80. */
class Traffic {
  readonly c2s: Buffer[] = [];
  readonly s2c: Buffer[] = [];
  readonly cseq: Uint32Array;
  readonly sseq: Uint32Array;
  readonly turn: Uint8Array;
  constructor(readonly flows: number) {
    for (let t = 0; t < TEMPLATES; t++) {
      this.c2s.push(buildTcp({ src: `10.1.0.${t + 1}`, dst: '10.2.0.1', sport: 1, dport: 80, flags: ACK, window: 65535, payloadLength: 1 }));
      this.s2c.push(buildTcp({ src: '10.2.0.1', dst: `10.1.0.${t + 1}`, sport: 80, dport: 1, flags: ACK, window: 65535 }));
    }
    this.cseq = new Uint32Array(flows);
    this.sseq = new Uint32Array(flows);
    this.turn = new Uint8Array(flows);
  }
  sport(i: number): number {
    return 1024 + ((i / TEMPLATES) | 0);
  }
}

// The data plane stamps each batch of packets with the clock once; so does the benchmark, per 256.
const meta: PacketMeta = { inIf: 2, outIf: 3, mark: 0, now: Date.now() };

/** SYN, SYN/ACK, ACK for every flow; returns new connections per second (the SYN pass alone). */
function openFlows(engine: Engine, tr: Traffic): { synPerSec: number } {
  const out = new EngineResult();
  const synTpl: Buffer[] = [];
  for (let t = 0; t < TEMPLATES; t++) synTpl.push(buildTcp({ src: `10.1.0.${t + 1}`, dst: '10.2.0.1', sport: 1, dport: 80, flags: SYN, window: 65535, mss: 1460 }));
  const t0 = performance.now();
  for (let i = 0; i < tr.flows; i++) {
    const b = synTpl[i % TEMPLATES];
    writeTcpInto(b, 0, tr.sport(i), 80, 1000, 0, SYN);
    engine.process(b, 0, b.length, meta, out);
  }
  const t1 = performance.now();
  for (let i = 0; i < tr.flows; i++) {
    const b = tr.s2c[i % TEMPLATES];
    writeTcpInto(b, 0, 80, tr.sport(i), 5000, 1001, SYN | ACK);
    engine.process(b, 0, b.length, meta, out);
  }
  for (let i = 0; i < tr.flows; i++) {
    const b = tr.c2s[i % TEMPLATES];
    // The handshake's last ACK carries no data: use the server template's length rules via seq only.
    writeTcpInto(b, 0, tr.sport(i), 80, 1001, 5001, ACK);
    engine.process(b, 0, b.length, meta, out);
    tr.cseq[i] = 1002;
    tr.sseq[i] = 5001;
  }
  return { synPerSec: tr.flows / ((t1 - t0) / 1000) };
}

const STRIDE = 64;

/**
 * The packet stream, generated before timing into one large buffer (a packet every STRIDE bytes),
 * as the data plane would find packets in its receive buffers: random flows, each alternating
 * client data (1 byte) and the server's ACK, with correct sequence numbers.
 */
function generate(tr: Traffic, packets: number): { buf: Buffer; lens: Uint16Array } {
  const buf = Buffer.alloc(packets * STRIDE);
  const lens = new Uint16Array(packets);
  let x = 0x9e3779b9;
  for (let k = 0; k < packets; k++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const i = (x >>> 0) % tr.flows;
    const at = k * STRIDE;
    if (tr.turn[i] === 0) {
      const tpl = tr.c2s[i % TEMPLATES];
      tpl.copy(buf, at);
      lens[k] = tpl.length;
      writeTcpInto(buf, at, tr.sport(i), 80, tr.cseq[i], tr.sseq[i], ACK | PSH);
      tr.cseq[i] = (tr.cseq[i] + 1) >>> 0;
      tr.turn[i] = 1;
    } else {
      const tpl = tr.s2c[i % TEMPLATES];
      tpl.copy(buf, at);
      lens[k] = tpl.length;
      writeTcpInto(buf, at, 80, tr.sport(i), tr.sseq[i], tr.cseq[i], ACK);
      tr.turn[i] = 0;
    }
  }
  return { buf, lens };
}

/**
 * Run a generated stream through the engine: one by one (Engine.process) or in batches
 * (Engine.processBatch), stamping the clock once per 256 packets as the data plane would per read.
 */
function established(engine: Engine, stream: { buf: Buffer; lens: Uint16Array }, batch: number): { seconds: number; accepted: number } {
  const { buf, lens } = stream;
  const packets = lens.length;
  const B = Math.max(1, batch);
  const pb = new PacketBatch(B);
  const results: EngineResult[] = [];
  for (let j = 0; j < B; j++) results.push(new EngineResult());
  let accepted = 0;
  const t0 = performance.now();
  if (batch > 0) {
    for (let k = 0; k + B <= packets; k += B) {
      if ((k & 255) < B) meta.now = Date.now();
      pb.count = 0;
      for (let j = 0; j < B; j++) pb.add(buf, (k + j) * STRIDE, lens[k + j], meta.inIf, meta.outIf, 0);
      engine.processBatch(pb, meta, results);
      for (let j = 0; j < B; j++) if (results[j].verdict === 1) accepted++;
    }
  } else {
    const out = results[0];
    for (let k = 0; k < packets; k++) {
      if ((k & 255) === 0) meta.now = Date.now();
      if (engine.process(buf, k * STRIDE, lens[k], meta, out) === 1) accepted++;
    }
  }
  return { seconds: (performance.now() - t0) / 1000, accepted };
}

function fmt(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : `${(n / 1e3).toFixed(1)} k`;
}

/** Established packets/s over `flows` live flows, single and batched, on the same kind of stream. */
function benchEstablished(flows: number, packets: number): { single: number; batched: number } {
  const engine = new Engine({ conntrack: { maxEntries: flows + 1024 }, ruleset: ruleset() });
  const tr = new Traffic(flows);
  openFlows(engine, tr);
  if (engine.conntrack.table.count !== flows) throw new Error(`expected ${flows} entries, have ${engine.conntrack.table.count}`);
  established(engine, generate(tr, 200_000), 0); // warm-up (JIT)
  established(engine, generate(tr, 200_000), 32);
  const rates: number[] = [];
  for (const batch of [0, 32]) {
    const stream = generate(tr, packets);
    const run = established(engine, stream, batch);
    if (run.accepted !== packets) throw new Error(`only ${run.accepted} of ${packets} packets accepted`);
    rates.push(packets / run.seconds);
  }
  console.log(`established  flows=${String(flows).padStart(8)}  one by one ${fmt(rates[0])}pkt/s   batches of 32 ${fmt(rates[1])}pkt/s`);
  return { single: rates[0], batched: rates[1] };
}

function benchNew(flows: number): number {
  const engine = new Engine({ conntrack: { maxEntries: flows + 1024, initialCapacity: flows + 1024 }, ruleset: ruleset() });
  const tr = new Traffic(flows);
  openFlows(new Engine({ conntrack: { maxEntries: 4096 }, ruleset: ruleset() }), new Traffic(4096)); // warm-up
  const { synPerSec } = openFlows(engine, tr);
  console.log(`new connections  ${fmt(synPerSec)}conn/s (SYN to entry created, ${flows} connections, table preallocated)`);
  return synPerSec;
}

function benchMemory(flows: number): number {
  gc();
  const m0 = process.memoryUsage();
  const engine = new Engine({ conntrack: { maxEntries: flows }, ruleset: ruleset() });
  const tr = new Traffic(flows);
  openFlows(engine, tr);
  // The traffic generator's own per-flow arrays are not the engine's: release them before measuring.
  tr.cseq.fill(0);
  gc();
  const m1 = process.memoryUsage();
  const genBytes = tr.cseq.byteLength + tr.sseq.byteLength + tr.turn.byteLength;
  const heap = m1.heapUsed - m0.heapUsed;
  const ab = m1.arrayBuffers - m0.arrayBuffers - genBytes;
  const per = (heap + ab) / engine.conntrack.table.count;
  console.log(
    `memory  ${engine.conntrack.table.count} entries: ${(per).toFixed(1)} bytes/entry ` +
      `(heap ${(heap / 1e6).toFixed(1)} MB + array buffers ${(ab / 1e6).toFixed(1)} MB; table arrays ${(engine.conntrack.table.arrayBytes / engine.conntrack.table.count).toFixed(1)} B/entry)`,
  );
  return per;
}

const quick = process.argv.includes('--quick');
console.log(`twinwall engine benchmark, node ${process.version}, ${quick ? 'quick' : 'full'} run, one core`);
const est: Record<number, { single: number; batched: number }> = {};
for (const flows of quick ? [1000, 100_000] : [1000, 100_000, 1_000_000]) {
  est[flows] = benchEstablished(flows, quick ? 1_000_000 : 4_000_000);
}
const newRate = benchNew(quick ? 200_000 : 1_000_000);
const mem = benchMemory(1_000_000);
console.log('');
const best = Math.max(est[100_000].single, est[100_000].batched);
console.log(`target established at 100k flows >= 1.5 M pkt/s: ${fmt(est[100_000].single)}pkt/s one by one, ${fmt(est[100_000].batched)}pkt/s batched: ${best >= 1.5e6 ? 'MET' : 'NOT MET'}`);
console.log(`target new connections >= 300 k/s: ${fmt(newRate)}conn/s ${newRate >= 3e5 ? 'MET' : 'NOT MET'}`);
console.log(`target memory <= 256 B/entry at 1M: ${mem.toFixed(1)} B ${mem <= 256 ? 'MET' : 'NOT MET'}`);

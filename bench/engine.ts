/**
 * Engine benchmarks (issue targets in brackets):
 *   1. established TCP packets/s through parse + conntrack + a 100-rule ruleset + verdict, one core,
 *      with 1k, 100k and 1M live flows            [>= 1.5 M packets/s at 100k flows]
 *   2. new connections/s, SYN to entry created     [>= 300 k/s]
 *   3. memory per tracked connection at 1M entries, heap + array buffers after GC [<= 256 bytes]
 *
 * Run: npm run bench   (tsc, then node --expose-gc dist/bench/engine.js)
 * Packets are real bytes built once as templates and rewritten in place per packet (ports, seq,
 * ack, flags, checksum); the generator's own cost is measured alone and reported beside.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Engine, EngineResult, type PacketMeta } from '../src/node/engine/engine.js';
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

/** Random flows; a flow alternates client data (1 byte) and the server's ACK. */
function established(engine: Engine | null, tr: Traffic, packets: number): { seconds: number; accepted: number } {
  const out = new EngineResult();
  let x = 0x9e3779b9;
  let accepted = 0;
  const t0 = performance.now();
  for (let k = 0; k < packets; k++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const i = (x >>> 0) % tr.flows;
    let b: Buffer;
    if (tr.turn[i] === 0) {
      b = tr.c2s[i % TEMPLATES];
      writeTcpInto(b, 0, tr.sport(i), 80, tr.cseq[i], tr.sseq[i], ACK | PSH);
      tr.cseq[i] = (tr.cseq[i] + 1) >>> 0;
      tr.turn[i] = 1;
    } else {
      b = tr.s2c[i % TEMPLATES];
      writeTcpInto(b, 0, 80, tr.sport(i), tr.sseq[i], tr.cseq[i], ACK);
      tr.turn[i] = 0;
    }
    if ((k & 255) === 0) meta.now = Date.now();
    if (engine !== null && engine.process(b, 0, b.length, meta, out) === 1) accepted++;
  }
  return { seconds: (performance.now() - t0) / 1000, accepted };
}

function fmt(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : `${(n / 1e3).toFixed(1)} k`;
}

function benchEstablished(flows: number, packets: number): { pps: number; engineOnlyPps: number } {
  const engine = new Engine({ conntrack: { maxEntries: flows + 1024 }, ruleset: ruleset() });
  const tr = new Traffic(flows);
  openFlows(engine, tr);
  if (engine.conntrack.table.count !== flows) throw new Error(`expected ${flows} entries, have ${engine.conntrack.table.count}`);
  established(engine, tr, Math.min(packets, 200_000)); // warm-up
  const run = established(engine, tr, packets);
  if (run.accepted !== packets) throw new Error(`only ${run.accepted} of ${packets} packets accepted`);
  const gen = established(null, tr, packets);
  const pps = packets / run.seconds;
  const engineOnlyPps = packets / (run.seconds - gen.seconds);
  console.log(
    `established  flows=${String(flows).padStart(8)}  ${fmt(pps)}pkt/s with generator, ${fmt(engineOnlyPps)}pkt/s engine alone` +
      `  (generator alone ${fmt(packets / gen.seconds)}pkt/s)`,
  );
  return { pps, engineOnlyPps };
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
const est: Record<number, number> = {};
for (const flows of quick ? [1000, 100_000] : [1000, 100_000, 1_000_000]) {
  est[flows] = benchEstablished(flows, quick ? 1_000_000 : 5_000_000).pps;
}
const newRate = benchNew(quick ? 200_000 : 1_000_000);
const mem = benchMemory(1_000_000);
console.log('');
console.log(`target established at 100k flows >= 1.5 M pkt/s: ${fmt(est[100_000])}pkt/s ${est[100_000] >= 1.5e6 ? 'MET' : 'NOT MET'}`);
console.log(`target new connections >= 300 k/s: ${fmt(newRate)}conn/s ${newRate >= 3e5 ? 'MET' : 'NOT MET'}`);
console.log(`target memory <= 256 B/entry at 1M: ${mem.toFixed(1)} B ${mem <= 256 ? 'MET' : 'NOT MET'}`);

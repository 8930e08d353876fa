/**
 * Keeps the packet path's code hot on a node that forwards nothing (the warm standby).
 *
 * A backup runs no packets through its engine, so when it takes over, its first packets run
 * code V8 has never optimised (or whose bytecode it has flushed after a long idle): measured in
 * the drill lab at 10 ms adverts, the new master's first takeover held each packet 7-14 ms for
 * ~50 ms after the claim (0.5 ms once warm), and every flow's stall grew from ~45 to ~78 ms.
 *
 * So, while not master, the node runs a small sample of its own replicated entries through a
 * scratch engine of the same classes: the entries are copied into the scratch table as
 * replicated, made live the ways a takeover does (eagerly, tolerant; and at the first packet),
 * then a few rounds of in-window packets of both directions go through Engine.process, NAT and
 * the ruleset included. The scratch engine has its own table, NAT ports and a copy of the
 * ruleset (its own rule counters and rate limits), no event sink (nothing reaches sync) and no
 * LOG output: nothing of the live engine changes but the code's warmth. A few hundred packets a
 * second, well under a millisecond of CPU.
 */
import { CtStatus, type ConntrackOptions } from '../conntrack/index.js';
import { ENTRY_RECORD_WORDS } from '../conntrack/entry-record.js';
import { TW_PORTS, TW_PROTO } from '../conntrack/tuple.js';
import type { CompiledRuleset } from '../filter/index.js';
import { buildTcp, buildUdp } from '../packet/build.js';
import { TcpFlag } from '../packet/fields.js';
import { Engine, EngineResult, type PacketMeta } from './engine.js';

const TCP = 6;
const UDP = 17;
const V_ACCEPT = 1;

export interface WarmupOptions {
  /** Entries sampled per pass (default 64). */
  flows?: number;
  /** Rounds of one packet each way per flow, per pass (default 3). */
  rounds?: number;
}

export interface WarmupStats {
  passes: number;
  packets: number;
  /** Of those, the ones the scratch engine accepted (the path a takeover's packets take). */
  accepted: number;
  /** Sampled entries the scratch table refused, and packets the scratch engine threw on (bugs). */
  errors: number;
  /** Duration of the last pass, ms. */
  lastMs: number;
}

export class StandbyWarmup {
  readonly stats: WarmupStats = { passes: 0, packets: 0, accepted: 0, errors: 0, lastMs: 0 };
  readonly #flows: number;
  readonly #rounds: number;
  #scratch: Engine | null = null;
  #cursor = 0;
  #seq = 1;
  readonly #rec = new Uint32Array(ENTRY_RECORD_WORDS);
  readonly #out = new EngineResult();
  readonly #meta: PacketMeta = { inIf: 0, outIf: 0, mark: 0, now: 0 };
  readonly #addr = new Uint32Array(4);

  /**
   * `live`: the node's engine (sampled, never changed). `compileRuleset`: a fresh compile of the
   * ruleset the live engine runs. `conntrack`: the live table's options (timeouts, TCP settings).
   */
  constructor(
    readonly live: Engine,
    readonly compileRuleset: () => CompiledRuleset,
    readonly conntrack: ConntrackOptions,
    opts: WarmupOptions = {},
  ) {
    this.#flows = opts.flows ?? 64;
    this.#rounds = opts.rounds ?? 3;
  }

  /** The live ruleset changed: the next pass compiles a new copy. */
  rulesetChanged(): void {
    this.#scratch = null;
  }

  /** One pass; returns the packets run. Never throws for a packet (the engine counts those). */
  run(): number {
    const t0 = performance.now();
    const e = (this.#scratch ??= this.#newScratch());
    const t = e.conntrack.table;
    t.flush();
    t.adoptReplicated = false;
    const slots = this.#sample(e);
    if (slots.length === 0) {
      this.stats.lastMs = performance.now() - t0;
      return 0;
    }
    // Made live as a takeover does: a small table eagerly (tolerant TCP), a large one at the first
    // packet (adoptReplicated): half the sample each way, so both paths stay warm.
    for (let i = 0; i < slots.length; i += 2) {
      t.clearStatus(slots[i], CtStatus.REPLICATED);
      if ((t.tuples[t.tupleOffset(slots[i], 0) + TW_PROTO] & 0xff) === TCP) e.conntrack.tcp.setTolerant(t.tcp, slots[i]);
    }
    t.adoptReplicated = true;
    const packets = this.#packets(e, slots);
    const meta = this.#meta;
    const out = this.#out;
    let n = 0;
    for (const p of packets) {
      meta.inIf = p.inIf;
      meta.outIf = 0;
      meta.mark = 0;
      meta.now = e.now();
      try {
        if (e.process(p.bytes, 0, p.bytes.length, meta, out) === V_ACCEPT) this.stats.accepted++;
      } catch {
        // The engine's bug on a sampled flow, counted; the warm-up only wants the code run.
        this.stats.errors++;
      }
      n++;
    }
    t.adoptReplicated = false;
    this.stats.passes++;
    this.stats.packets += n;
    this.stats.lastMs = performance.now() - t0;
    return n;
  }

  #newScratch(): Engine {
    const e = new Engine({
      conntrack: { ...this.conntrack, maxEntries: Math.max(256, this.#flows * 4), initialCapacity: undefined, prefault: false },
      ruleset: this.compileRuleset(),
      clock: this.live.clock,
    });
    e.setRouteLookup(this.live.routeLookup());
    return e;
  }

  /** Copy up to `flows` confirmed TCP / UDP entries of the live table into the scratch one, as replicated. */
  #sample(e: Engine): number[] {
    const src = this.live.conntrack.table;
    const dst = e.conntrack.table;
    const now = this.live.now();
    const hw = src.highWater;
    const out: number[] = [];
    const rec = this.#rec;
    // Bounded walk from where the last pass stopped, so a sparse large table costs little.
    for (let visited = 0; visited < hw && visited < this.#flows * 16 && out.length < this.#flows; visited++) {
      if (this.#cursor >= hw) this.#cursor = 0;
      const slot = this.#cursor++;
      if ((src.statusOf(slot) & CtStatus.CONFIRMED) === 0) continue;
      const proto = src.tuples[src.tupleOffset(slot, 0) + TW_PROTO] & 0xff;
      if (proto !== TCP && proto !== UDP) continue;
      src.exportEntry(slot, now, rec, 0);
      try {
        dst.importEntry(rec, 0, now, CtStatus.REPLICATED);
      } catch {
        // A live record the import refuses (not expected: it came from a table): counted, skipped.
        this.stats.errors++;
        continue;
      }
      if (dst.importedSlot >= 0) out.push(dst.importedSlot);
    }
    return out;
  }

  /**
   * Packets of `rounds` exchanges per flow, in order: original direction then reply. TCP ones in
   * the shapes a takeover's first packets have (the flows lost some during the outage): data with
   * timestamps, pure ACKs with SACK blocks, retransmissions, data without options, by turns. A
   * shape the code never ran before the takeover is run cold then (measured: the new master's
   * TCP tracking held its first batch 14 ms with warm-up packets of one shape only).
   */
  #packets(e: Engine, slots: number[]): { bytes: Buffer; inIf: number }[] {
    const t = e.conntrack.table;
    const routes = this.live.routeLookup();
    const out: { bytes: Buffer; inIf: number }[] = [];
    const ends = slots.map((slot) => {
      const o = t.tupleOffset(slot, 0);
      const r = t.tupleOffset(slot, 1);
      const proto = t.tuples[o + TW_PROTO] & 0xff;
      const family = t.tuples[o + TW_PROTO] >>> 8;
      const side = (off: number): { src: { family: number; words: number[] }; dst: { family: number; words: number[] }; sport: number; dport: number; inIf: number } => {
        const w = t.tuples;
        const src = { family, words: Array.from(w.subarray(off, off + 4)) };
        const dst = { family, words: Array.from(w.subarray(off + 4, off + 8)) };
        this.#addr.set(w.subarray(off, off + 4));
        return { src, dst, sport: w[off + TW_PORTS] >>> 16, dport: w[off + TW_PORTS] & 0xffff, inIf: routes ? routes.outIf(family, this.#addr) : 0 };
      };
      // Both sides start 16 bytes in, so a first retransmission has data to resend.
      return { proto, orig: side(o), reply: side(r), nxtO: (this.#seq += 7919) >>> 0, nxtR: (this.#seq += 104729) >>> 0 };
    });
    for (let round = 0; round < this.#rounds; round++) {
      for (let k = 0; k < ends.length; k++) {
        const f = ends[k];
        for (const dir of [0, 1]) {
          const s = dir === 0 ? f.orig : f.reply;
          let bytes: Buffer;
          if (f.proto === TCP) {
            // A consistent exchange: each side's next byte, acked by the other; kind 2 resends
            // the side's last data segment (a retransmission), kind 1 is a pure ACK carrying a
            // duplicate-SACK block of data already acked (valid: the kernel's window checks
            // take the SACK's right edge as the ack).
            const kind = (round + k) % 4;
            const ack = dir === 0 ? f.nxtR : f.nxtO;
            const nxt = dir === 0 ? f.nxtO : f.nxtR;
            const seq = kind === 2 ? (nxt - 16) >>> 0 : nxt;
            const len = kind === 1 ? 0 : 16;
            if (kind !== 2) {
              if (dir === 0) f.nxtO = (nxt + len) >>> 0;
              else f.nxtR = (nxt + len) >>> 0;
            }
            const ts = kind === 3 ? undefined : { val: (this.#seq + round) >>> 0, ecr: (this.#seq + round - 1) >>> 0 };
            bytes = buildTcp({ src: s.src, dst: s.dst, sport: s.sport, dport: s.dport, flags: kind === 1 ? TcpFlag.ACK : TcpFlag.ACK | TcpFlag.PSH,
              seq, ack, window: 512, payloadLength: len, ...(ts ? { timestamps: ts } : {}),
              ...(kind === 1 ? { sackBlocks: [[(ack - 16) >>> 0, ack]] as [number, number][] } : {}) });
          } else {
            bytes = buildUdp({ src: s.src, dst: s.dst, sport: s.sport, dport: s.dport, payloadLength: 16 });
          }
          out.push({ bytes, inIf: s.inIf });
        }
      }
    }
    return out;
  }
}

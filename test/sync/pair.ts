/**
 * Two engines and their sync nodes in one process, joined by LoopTransport (loss, duplication and
 * reordering injected per datagram), with a load generator of real packets through the active
 * engine. For the sync tests.
 */
import { Engine, EngineResult } from '../../src/node/engine/index.js';
import { compileRuleset, parseRuleset } from '../../src/node/filter/index.js';
import { buildTcp, buildUdp } from '../../src/node/packet/build.js';
import { TcpFlag } from '../../src/node/packet/fields.js';
import { Keyring, LoopTransport, SyncNode, diffRecords, tableRecords, type SyncNodeOptions } from '../../src/sync/index.js';

export const KEY = { id: 1, secret: Buffer.from('0123456789abcdef0123456789abcdef') };
const IN = 2;
const OUT = 3;
const names: Record<number, string> = { [IN]: 'inside0', [OUT]: 'outside0' };

export const RULES = `
chains:
  forward:
    policy: drop
    rules:
      - match: { ctstate: [ESTABLISHED, RELATED] }
        target: ACCEPT
      - match: { in: inside0, ctstate: NEW }
        target: ACCEPT
nat:
  snat:
    - { out: outside0, src: 10.0.0.0/8, to: 198.51.100.10 }
`;

export function engine(maxEntries = 200_000): Engine {
  return new Engine({
    conntrack: { maxEntries },
    ruleset: compileRuleset(parseRuleset(RULES), { interfaceName: (i: number) => names[i] }),
  });
}

export interface Side {
  engine: Engine;
  sync: SyncNode;
  transport: LoopTransport;
}

export function side(id: number, transport: LoopTransport, eng = engine(), o: Partial<SyncNodeOptions> = {}): Side {
  const sync = new SyncNode(eng.conntrack.table, transport, { nodeId: id, keys: new Keyring([KEY], 1), clock: eng.clock, helperState: eng.helperState, ...o });
  eng.setEventSink(sync.sink);
  return { engine: eng, sync, transport };
}

export function pair(o: Partial<SyncNodeOptions> = {}): { a: Side; b: Side; ta: LoopTransport; tb: LoopTransport } {
  const [ta, tb] = LoopTransport.pair();
  const a = side(1, ta, engine(), o);
  const b = side(2, tb, engine(), o);
  a.sync.start();
  b.sync.start();
  return { a, b, ta, tb };
}

const out = new EngineResult();
let port = 1024;

/** n new connections through an engine: a TCP handshake (SNATed) every other, a UDP flow the rest. */
export function load(e: Engine, n: number): void {
  for (let i = 0; i < n; i++) {
    const sport = 1024 + (port++ % 60000);
    const src = `10.${(port >> 16) & 255}.${(port >> 8) & 255}.${port & 255}`;
    const now = e.now();
    if (i % 2 === 0) {
      const syn = buildTcp({ src, dst: '203.0.113.7', sport, dport: 443, flags: TcpFlag.SYN, seq: 1000 });
      e.process(syn, 0, syn.length, { inIf: IN, outIf: OUT, mark: 0, now }, out);
      const synack = buildTcp({ src: '203.0.113.7', dst: '198.51.100.10', sport: 443, dport: sport, flags: TcpFlag.SYN | TcpFlag.ACK, seq: 5000, ack: 1001 });
      // The reply's destination is the SNAT address and port (kept when free).
      e.process(synack, 0, synack.length, { inIf: OUT, outIf: IN, mark: 0, now }, out);
    } else {
      const u = buildUdp({ src, dst: '203.0.113.8', sport, dport: 53, payload: 'q' });
      e.process(u, 0, u.length, { inIf: IN, outIf: OUT, mark: 0, now }, out);
    }
  }
}

/** Wait until b's table equals a's (per diffRecords), or time out; returns ms waited. */
export async function converge(a: Side, b: Side, timeoutMs = 2000): Promise<{ ms: number; diff: ReturnType<typeof diffRecords> }> {
  const t0 = performance.now();
  for (;;) {
    const diff = diffRecords(tableRecords(a.engine.conntrack.table, a.engine.now()), tableRecords(b.engine.conntrack.table, b.engine.now()));
    const ms = performance.now() - t0;
    if ((diff.missing.length === 0 && diff.extra.length === 0 && diff.differing.length === 0) || ms > timeoutMs) return { ms, diff };
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** Wait until both nodes finished their startup resync (the pair is in steady state). */
export async function ready(a: Side, b: Side, timeoutMs = 2000): Promise<void> {
  const t0 = performance.now();
  while (!(a.sync.peer?.synced && b.sync.peer?.synced)) {
    if (performance.now() - t0 > timeoutMs) throw new Error('sync pair did not finish its startup resync');
    await new Promise((r) => setTimeout(r, 2));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

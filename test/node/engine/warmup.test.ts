import { describe, expect, it, vi } from 'vitest';
import { Engine, EngineResult, StandbyWarmup } from '../../../src/node/engine/index.js';
import { compileRuleset, parseRuleset } from '../../../src/node/filter/index.js';
import { buildTcp, buildUdp } from '../../../src/node/packet/build.js';
import { TcpFlag } from '../../../src/node/packet/fields.js';
import { CtStatus, ENTRY_RECORD_WORDS } from '../../../src/node/conntrack/index.js';

const { SYN, ACK } = TcpFlag;
const IN = 2;
const OUT = 3;
const names: Record<number, string> = { [IN]: 'inside0', [OUT]: 'outside0' };
const RULES = `
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
const compile = () => compileRuleset(parseRuleset(RULES), { interfaceName: (i: number) => names[i] });

/** A backup's engine: flows made through it, then every entry turned replicated (the peer's). */
function backupEngine() {
  const now = 1_000_000;
  const live = new Engine({ conntrack: { maxEntries: 10_000 }, ruleset: compile(), clock: () => now });
  // The data plane's route table: 10/8 is inside, the rest outside.
  live.setRouteLookup({ outIf: (_family, dst) => ((dst[0] >>> 24) === 10 ? IN : OUT) });
  const out = new EngineResult();
  const send = (pkt: Buffer, inIf: number) => live.process(pkt, 0, pkt.length, { inIf, outIf: inIf === IN ? OUT : IN, mark: 0, now }, out);
  for (let i = 0; i < 20; i++) {
    const c = { src: '10.0.0.5', dst: '203.0.113.7', sport: 40000 + i, dport: 80 };
    send(buildTcp({ ...c, flags: SYN, seq: 100 }), IN);
    // The reply goes to the SNAT address and port the entry holds.
    const slot = out.slot;
    const t = live.conntrack.table;
    const r = t.tupleOffset(slot, 1);
    const natPort = t.tuples[r + 8] & 0xffff;
    send(buildTcp({ src: '203.0.113.7', dst: '198.51.100.10', sport: 80, dport: natPort, flags: SYN | ACK, seq: 500, ack: 101 }), OUT);
    send(buildTcp({ ...c, flags: ACK, seq: 101, ack: 501 }), IN);
  }
  for (let i = 0; i < 10; i++) send(buildUdp({ src: '10.0.0.6', dst: '203.0.113.8', sport: 5000 + i, dport: 53, payloadLength: 20 }), IN);
  const t = live.conntrack.table;
  t.forEach((slot) => t.addStatus(slot, CtStatus.REPLICATED));
  return live;
}

function snapshot(e: Engine): { records: number[][]; accepted: number; dropped: number } {
  const t = e.conntrack.table;
  const records: number[][] = [];
  const w = new Uint32Array(ENTRY_RECORD_WORDS);
  t.forEach((slot) => {
    t.exportEntry(slot, e.now(), w, 0);
    records.push([...w]);
  });
  return { records, accepted: e.stats.acceptedPackets, dropped: e.stats.droppedPackets };
}

describe('StandbyWarmup', () => {
  it('runs the replicated flows both ways through a scratch engine, accepted (NAT included), and changes nothing live', () => {
    const live = backupEngine();
    expect(live.conntrack.table.count).toBe(30);
    const before = snapshot(live);
    const ruleCounters = [...live.filter.ruleset.rulePackets];
    let compiles = 0;
    const w = new StandbyWarmup(live, () => (compiles++, compile()), { maxEntries: 10_000 }, { flows: 64, rounds: 3 });
    const n = w.run();
    // 30 flows, 3 rounds, one packet each way.
    expect(n).toBe(30 * 2 * 3);
    expect(w.stats.accepted).toBe(n);
    expect(w.stats.errors).toBe(0);
    expect(snapshot(live)).toEqual(before);
    expect([...live.filter.ruleset.rulePackets]).toEqual(ruleCounters);
    // Every live entry is still the peer's (replicated).
    live.conntrack.table.forEach((slot) => expect(live.conntrack.table.statusOf(slot) & CtStatus.REPLICATED).not.toBe(0));
    // Again: the scratch table starts empty each pass; the ruleset copy is compiled once.
    expect(w.run()).toBe(n);
    expect(w.stats.accepted).toBe(2 * n);
    expect(compiles).toBe(1);
    w.rulesetChanged();
    w.run();
    expect(compiles).toBe(2);
  });

  it('sends TCP in the shapes a takeover\'s first packets have: timestamps, pure ACKs with SACK, retransmissions, no options', () => {
    const live = backupEngine();
    const seen: { optBytes: number; payload: number; key: string }[] = [];
    const original = Engine.prototype.process;
    // Records the scratch engine's TCP packets (IPv4, 20-byte header), then runs them as usual.
    const spy = vi.spyOn(Engine.prototype, 'process').mockImplementation(function (this: Engine, ...args: Parameters<Engine['process']>) {
      const [buf, off, len] = args;
      if (this !== live && buf[off + 9] === 6) {
        const th = off + 20;
        const hl = (buf[th + 12] >> 4) * 4;
        seen.push({ optBytes: hl - 20, payload: len - 20 - hl, key: `${(buf[th] << 8) | buf[th + 1]}/${buf[th + 4]}.${buf[th + 5]}.${buf[th + 6]}.${buf[th + 7]}` });
      }
      return original.apply(this, args);
    });
    try {
      const w = new StandbyWarmup(live, compile, { maxEntries: 10_000 }, { flows: 64, rounds: 4 });
      w.run();
      expect(w.stats.accepted).toBe(w.stats.packets);
    } finally {
      spy.mockRestore();
    }
    expect(seen.some((p) => p.payload === 0 && p.optBytes === 24)).toBe(true); // pure ACK, timestamps and a SACK block
    expect(seen.some((p) => p.payload > 0 && p.optBytes === 12)).toBe(true); // data with timestamps
    expect(seen.some((p) => p.payload > 0 && p.optBytes === 0)).toBe(true); // data without options
    const data = seen.filter((p) => p.payload > 0).map((p) => p.key);
    expect(new Set(data).size).toBeLessThan(data.length); // a segment sent again
  });

  it('samples at most `flows` entries a pass, walking on from where the last pass stopped', () => {
    const live = backupEngine();
    const w = new StandbyWarmup(live, compile, { maxEntries: 10_000 }, { flows: 8, rounds: 1 });
    expect(w.run()).toBe(16);
    expect(w.run()).toBe(16);
    expect(w.stats.accepted).toBe(32);
  });

  it('does nothing on an empty table', () => {
    const live = new Engine({ conntrack: { maxEntries: 100 }, ruleset: compile() });
    const w = new StandbyWarmup(live, compile, { maxEntries: 100 });
    expect(w.run()).toBe(0);
  });
});

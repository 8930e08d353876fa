/**
 * The takeover of a large table (src/failover/takeover.ts, over EAGER_MAX entries; here forced
 * with eagerMax 0): the addresses are claimed at once, each entry becomes live at its first packet
 * (before it is tracked) or by the sweep after the claim, and leaving master stops the sweep.
 */
import { describe, expect, it } from 'vitest';
import { CtState, CtStatus } from '../../src/node/conntrack/index.js';
import { EngineResult } from '../../src/node/engine/index.js';
import { Verdict } from '../../src/node/filter/index.js';
import { buildTcp } from '../../src/node/packet/build.js';
import { TcpFlag } from '../../src/node/packet/fields.js';
import { Role, Takeover, VirtualAddresses, type IpRunner, type SweepDone } from '../../src/failover/index.js';
import { converge, load, pair, ready, type Side } from '../sync/pair.js';

const C = '10.7.7.8';
const S = '203.0.113.7';
const V = '198.51.100.10'; // pair.ts SNATs the inside to this

/** A, master, with `n` entries of load() and one TCP flow of ours whose data went on after B last heard of its window; B synced. */
async function setup(n: number) {
  const { a, b } = pair();
  await ready(a, b);
  load(a.engine, n);
  const out = new EngineResult();
  const via = (s: Side, pkt: Buffer, inIf: number) => {
    s.engine.process(pkt, 0, pkt.length, { inIf, outIf: inIf === 2 ? 3 : 2, mark: 0, now: s.engine.now() }, out);
    return out.verdict;
  };
  via(a, buildTcp({ src: C, dst: S, sport: 40001, dport: 443, flags: TcpFlag.SYN, seq: 1000, window: 65535 }), 2);
  via(a, buildTcp({ src: S, dst: V, sport: 443, dport: 40001, flags: TcpFlag.SYN | TcpFlag.ACK, seq: 5000, ack: 1001, window: 65535 }), 3);
  via(a, buildTcp({ src: C, dst: S, sport: 40001, dport: 443, flags: TcpFlag.ACK, seq: 1001, ack: 5001, window: 65535 }), 2);
  expect((await converge(a, b)).diff.missing).toEqual([]);
  let seq = 1001;
  for (let i = 0; i < 50; i++) {
    via(a, buildTcp({ src: C, dst: S, sport: 40001, dport: 443, flags: TcpFlag.ACK, seq, ack: 5001, window: 65535, payloadLength: 1400 }), 2);
    seq += 1400;
    via(a, buildTcp({ src: S, dst: V, sport: 443, dport: 40001, flags: TcpFlag.ACK, seq: 5001, ack: seq, window: 65535 }), 3);
  }
  const next = buildTcp({ src: C, dst: S, sport: 40001, dport: 443, flags: TcpFlag.ACK, seq, ack: 5001, window: 65535, payloadLength: 1400 });
  const t = b.engine.conntrack.table;
  const count = () => {
    let replicated = 0;
    let tolerant = 0;
    t.forEach((s) => {
      if ((t.statusOf(s) & CtStatus.REPLICATED) !== 0) replicated++;
      if (b.engine.conntrack.tcp.isTolerant(t.tcp, s)) tolerant++;
    });
    return { replicated, tolerant };
  };
  // The ip batch the claim runs, and the REPLICATED count then.
  const claims: number[] = [];
  const ip: IpRunner = { run: async () => (claims.push(count().replicated), { failed: [], output: [] }), close: () => undefined };
  const vips = new VirtualAddresses([{ interface: 'inside0', cidr: '10.50.1.1/24' }], { ip, settings: { apply: () => undefined, restore: () => [] }, macOf: () => '02:00:00:00:00:01' });
  const takeover = new Takeover(t, b.engine.conntrack.tcp, vips, { eagerMax: 0 });
  return { a, b, t, out, via, next, count, claims, takeover };
}

describe('takeover of a large table (lazy)', () => {
  it('claims the addresses at once; an entry is live at its first packet, the sweep makes the rest live', async () => {
    const s = await setup(200);
    const { b, t, out, count, claims, takeover } = s;
    expect(count()).toEqual({ replicated: 201, tolerant: 0 });
    const swept = new Promise<SweepDone>((r) => (takeover.onSweep = r));
    await takeover.transition(Role.BACKUP, Role.MASTER);
    // Claimed before any entry was made live; the step says so.
    expect(claims).toEqual([201]);
    expect(takeover.steps.at(-1)).toMatchObject({ to: 'master', entries: 201, lazy: true });
    expect(t.adoptReplicated).toBe(true);
    // The first packet of our transfer through B, 70 KB past the window data B was last sent:
    // its entry becomes live and tolerant before it is tracked, so the packet passes.
    expect(s.via(b, s.next, 2)).toBe(Verdict.ACCEPT);
    expect(out.ctState).toBe(CtState.ESTABLISHED);
    expect((t.statusOf(out.slot) & CtStatus.REPLICATED)).toBe(0);
    expect(count()).toEqual({ replicated: 200, tolerant: 1 });
    // Then the sweep: every other entry live, the TCP ones tolerant (load()'s TCP half and ours).
    expect(await swept).toMatchObject({ entries: 200, slices: 1, cancelled: false });
    expect(count()).toEqual({ replicated: 0, tolerant: 101 });
    expect(t.adoptReplicated).toBe(false);
    // Leaving: every entry the peer's again.
    await takeover.transition(Role.MASTER, Role.BACKUP);
    expect(count().replicated).toBe(201);
    await s.a.sync.close();
    await b.sync.close();
  });

  it('leaving master stops the sweep and stops making entries live', async () => {
    const s = await setup(100);
    const { t, count, takeover } = s;
    const swept = new Promise<SweepDone>((r) => (takeover.onSweep = r));
    // Master, and back at once, before the sweep's first slice.
    const up = takeover.transition(Role.BACKUP, Role.MASTER);
    const down = takeover.transition(Role.MASTER, Role.BACKUP);
    await up;
    await down;
    expect(await swept).toMatchObject({ entries: 0, cancelled: true });
    expect(t.adoptReplicated).toBe(false);
    expect(count().replicated).toBe(101);
    // A packet now leaves the entry the peer's.
    s.via(s.b, s.next, 2);
    expect(count().replicated).toBe(101);
    await s.a.sync.close();
    await s.b.sync.close();
  });
});

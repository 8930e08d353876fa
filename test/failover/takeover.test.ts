import { describe, expect, it } from 'vitest';
import { CtState, CtStatus, ImportResult } from '../../src/node/conntrack/index.js';
import { EngineResult, type Engine } from '../../src/node/engine/index.js';
import { Verdict } from '../../src/node/filter/index.js';
import { buildTcp } from '../../src/node/packet/build.js';
import { TcpFlag } from '../../src/node/packet/fields.js';
import { Role, Takeover, VipError, VirtualAddresses, type IpRunner, type Launch } from '../../src/failover/index.js';
import type { LoopTransport } from '../../src/sync/index.js';

import { converge, load, pair, ready, side, sleep, type Side } from '../sync/pair.js';

const S = '203.0.113.7';
/** pair.ts SNATs the inside to this. */
const V = '198.51.100.10';
const out = new EngineResult();
/** A packet through an engine (inside is interface 2, outside 3); the verdict, details in `out`. */
function via(e: Engine, pkt: Buffer, inIf: number): number {
  e.process(pkt, 0, pkt.length, { inIf, outIf: inIf === 2 ? 3 : 2, mark: 0, now: e.now() }, out);
  return out.verdict;
}

/** The side on `t` killed and started again empty (a new epoch) on the same link to `peer`. */
async function restart(old: Side, t: LoopTransport, peer: LoopTransport, id: number): Promise<Side> {
  await old.sync.close();
  t.peer = peer;
  await sleep(5); // a new epoch (ms)
  const fresh = side(id, t);
  fresh.sync.start();
  return fresh;
}

/** Commands as they would run, and the table's REPLICATED count at each (the order of steps). */
function fakeCommands(replicated: () => number, fail: (line: string) => string | null = () => null) {
  const calls: { cmd: string; args: string[]; replicated: number }[] = [];
  const ip: IpRunner = {
    run: async (lines) => {
      calls.push({ cmd: 'ip', args: [...lines], replicated: replicated() });
      const failed = lines.map((line, index) => ({ index, line, reason: fail(line) ?? '' })).filter((f) => f.reason !== '');
      return { failed, output: [] };
    },
    close: () => undefined,
  };
  const stopped: string[] = [];
  const launch: Launch = async (cmd, args, done) => {
    calls.push({ cmd, args, replicated: replicated() });
    done(true);
    return { stop: () => void stopped.push(args.at(-1) as string) };
  };
  const sysctl: string[] = [];
  const settings = {
    apply: (ifs: readonly string[], key: string, value: string) => {
      if (ifs.includes('ro0')) throw new Error('EROFS: read-only file system');
      sysctl.push(`${ifs.join(',')} ${key}=${value}`);
    },
    restore: () => {
      sysctl.push('restored');
      return [];
    },
  };
  const macOf = (iface: string) => (iface === 'inside0' ? '02:00:00:00:00:01' : '02:00:00:00:00:02');
  return { calls, ip, launch, stopped, settings, sysctl, macOf, opts: { ip, launch, settings, macOf } };
}

const VIPS = [{ interface: 'inside0', cidr: '10.50.1.1/24' }, { interface: 'outside0', cidr: '198.51.100.10/24' }];

describe('virtual addresses', () => {
  it('are claimed and announced by the kernel in one batch (arp_notify, the MAC set again), repeated, released in one batch', async () => {
    const f = fakeCommands(() => 0);
    const v = new VirtualAddresses(VIPS, { ...f.opts, announceCount: 3, repeatMs: 20 });
    v.start();
    expect(f.sysctl).toEqual(['inside0 arp_notify=1', 'outside0 arp_notify=1']);
    await v.claim();
    const announce = ['link set dev inside0 address 02:00:00:00:00:01', 'link set dev outside0 address 02:00:00:00:00:02'];
    expect(f.calls.map((c) => [c.cmd, ...c.args])).toEqual([
      ['ip', 'addr replace 10.50.1.1/24 dev inside0', 'addr replace 198.51.100.10/24 dev outside0', ...announce],
    ]);
    // The repeats, a repeatMs apart; then nothing more.
    await new Promise((r) => setTimeout(r, 100));
    expect(f.calls.map((c) => c.args)).toEqual([expect.anything(), announce, announce]);
    await v.release();
    expect(f.calls.at(-1)!.args).toEqual(['addr del 10.50.1.1/24 dev inside0', 'addr del 198.51.100.10/24 dev outside0']);
    expect(v.stats).toEqual({ claims: 1, releases: 1, announcements: 6, errors: 0 });
    v.close();
    expect(f.sysctl.at(-1)).toBe('restored');
  });

  it('stop announcing when released: a gratuitous ARP from a node that no longer holds the address would turn the neighbours back to it', async () => {
    const f = fakeCommands(() => 0);
    const v = new VirtualAddresses(VIPS, { ...f.opts, announceCount: 3, repeatMs: 30 });
    await v.claim();
    await v.release();
    const n = f.calls.length;
    await new Promise((r) => setTimeout(r, 100));
    expect(f.calls.length).toBe(n);
  });

  it('fall back to arping on an interface where arp_notify cannot be set or the MAC cannot be written', async () => {
    const f = fakeCommands(() => 0, (line) => (line.startsWith('link set dev inside0') ? 'RTNETLINK answers: Device or resource busy' : null));
    const v = new VirtualAddresses([...VIPS, { interface: 'ro0', cidr: '192.0.2.1/24' }], { ...f.opts, announceCount: 2, repeatMs: 10_000 });
    await v.claim();
    expect(v.methods).toEqual(new Map([['inside0', 'arping'], ['outside0', 'kernel'], ['ro0', 'arping']]));
    expect(v.fallbacks).toEqual([
      'ro0: arp_notify: EROFS: read-only file system',
      'inside0: link set dev inside0 address 02:00:00:00:00:01: RTNETLINK answers: Device or resource busy',
    ]);
    expect(f.calls.slice(1).map((c) => [c.cmd, ...c.args])).toEqual([
      ['arping', '-q', '-U', '-c', '2', '-I', 'inside0', '10.50.1.1'],
      ['arping', '-q', '-U', '-c', '2', '-I', 'ro0', '192.0.2.1'],
    ]);
    await v.release();
    expect(f.stopped).toEqual(['10.50.1.1', '192.0.2.1']);
    // The next claim announces inside0 with arping straight away.
    await v.claim();
    expect(f.calls.at(-3)!.args).toEqual(['addr replace 10.50.1.1/24 dev inside0', 'addr replace 198.51.100.10/24 dev outside0', 'addr replace 192.0.2.1/24 dev ro0', 'link set dev outside0 address 02:00:00:00:00:02']);
    v.close();
  });

  it('a claim that fails says which address and why; a release of an address not held is not an error', async () => {
    const f = fakeCommands(() => 0, (line) => (line.includes('198.51.100.10/24') ? (line.startsWith('addr del') ? 'RTNETLINK answers: Cannot assign requested address' : 'Cannot find device "outside0"') : null));
    const v = new VirtualAddresses(VIPS, f.opts);
    await expect(v.claim()).rejects.toThrow(/cannot claim "addr replace 198.51.100.10\/24 dev outside0": Cannot find device "outside0"/);
    await v.release();
    expect(v.stats).toMatchObject({ claims: 0, releases: 1, errors: 1 });
    v.close();
  });

  it('refuses bad settings whole, with the path and reason of each', () => {
    expect(() => new VirtualAddresses([{ interface: 'inside0', cidr: '10.50.1.1' }, { interface: 'bad name!', cidr: '10.0.0.1/24' }])).toThrow(VipError);
    expect(() => new VirtualAddresses([{ interface: 'inside0', cidr: '10.50.1.1' }, { interface: 'bad name!', cidr: '10.0.0.1/24' }]))
      .toThrow(/failover.virtualAddresses\[0\]: "10.50.1.1" is not an IPv4 address with a prefix length.*failover.virtualAddresses\[1\]: interface "bad name!"/);
  });
});

describe('takeover', () => {
  it('makes the replicated entries live before claiming the addresses, and a TCP flow goes on through the new master', async () => {
    const { a, b } = pair();
    await ready(a, b);
    load(a.engine, 200);
    // A transfer of our own through A: the handshake is replicated at once (a state change), the
    // 70 KB after it only with the lazy refresh (every second), so B's window data stays behind.
    const C = '10.7.7.7';
    expect(via(a.engine, buildTcp({ src: C, dst: S, sport: 40000, dport: 443, flags: TcpFlag.SYN, seq: 1000, window: 65535 }), 2)).toBe(Verdict.ACCEPT);
    expect(via(a.engine, buildTcp({ src: S, dst: V, sport: 443, dport: 40000, flags: TcpFlag.SYN | TcpFlag.ACK, seq: 5000, ack: 1001, window: 65535 }), 3)).toBe(Verdict.ACCEPT);
    expect(via(a.engine, buildTcp({ src: C, dst: S, sport: 40000, dport: 443, flags: TcpFlag.ACK, seq: 1001, ack: 5001, window: 65535 }), 2)).toBe(Verdict.ACCEPT);
    expect((await converge(a, b)).diff.missing).toEqual([]);
    let seq = 1001;
    for (let i = 0; i < 50; i++) {
      expect(via(a.engine, buildTcp({ src: C, dst: S, sport: 40000, dport: 443, flags: TcpFlag.ACK, seq, ack: 5001, window: 65535, payloadLength: 1400 }), 2)).toBe(Verdict.ACCEPT);
      seq += 1400;
      expect(via(a.engine, buildTcp({ src: S, dst: V, sport: 443, dport: 40000, flags: TcpFlag.ACK, seq: 5001, ack: seq, window: 65535 }), 3)).toBe(Verdict.ACCEPT);
    }
    const next = buildTcp({ src: C, dst: S, sport: 40000, dport: 443, flags: TcpFlag.ACK, seq, ack: 5001, window: 65535, payloadLength: 1400 });

    const t = b.engine.conntrack.table;
    const replicated = (): number => {
      let n = 0;
      t.forEach((s) => void (n += (t.statusOf(s) & CtStatus.REPLICATED) !== 0 ? 1 : 0));
      return n;
    };
    expect(replicated()).toBe(201);
    const f = fakeCommands(replicated);
    const takeover = new Takeover(t, b.engine.conntrack.tcp, new VirtualAddresses(VIPS, f.opts));
    await takeover.transition(Role.BACKUP, Role.MASTER);
    expect(replicated()).toBe(0);
    // The addresses were claimed (and announced) only once every entry was live.
    expect(f.calls.map((c) => [c.cmd, c.replicated])).toEqual([['ip', 0]]);
    expect(takeover.steps.at(-1)).toMatchObject({ to: 'master', entries: 201 });
    let tolerant = 0;
    t.forEach((s) => void (tolerant += b.engine.conntrack.tcp.isTolerant(t.tcp, s) ? 1 : 0));
    expect(tolerant).toBe(101); // load()'s TCP half and ours
    // The transfer goes on through B, 70 KB past the window data B was last sent.
    expect(via(b.engine, next, 2)).toBe(Verdict.ACCEPT);
    expect(out.ctState).toBe(CtState.ESTABLISHED);
    // Leaving: the addresses go first, then the entries are the peer's again.
    await takeover.transition(Role.MASTER, Role.BACKUP);
    expect(f.calls.at(-1)).toMatchObject({ cmd: 'ip', args: ['addr del 10.50.1.1/24 dev inside0', 'addr del 198.51.100.10/24 dev outside0'], replicated: 0 });
    expect(replicated()).toBe(201);
    await a.sync.close();
    await b.sync.close();
  });

  it('after a switchover, neither the old master\'s pending refresh nor its messages in flight touch the new master\'s live entries', async () => {
    const { a, b } = pair({ refreshMs: 100 });
    await ready(a, b);
    const C = '10.7.7.9';
    via(a.engine, buildTcp({ src: C, dst: S, sport: 40002, dport: 443, flags: TcpFlag.SYN, seq: 1000, window: 65535 }), 2);
    via(a.engine, buildTcp({ src: S, dst: V, sport: 443, dport: 40002, flags: TcpFlag.SYN | TcpFlag.ACK, seq: 5000, ack: 1001, window: 65535 }), 3);
    via(a.engine, buildTcp({ src: C, dst: S, sport: 40002, dport: 443, flags: TcpFlag.ACK, seq: 1001, ack: 5001, window: 65535 }), 2);
    expect((await converge(a, b)).diff.missing).toEqual([]);
    // Data through A: a window change, pending in A's lazy refresh.
    via(a.engine, buildTcp({ src: C, dst: S, sport: 40002, dport: 443, flags: TcpFlag.ACK, seq: 1001, ack: 5001, window: 65535, payloadLength: 1000 }), 2);
    const vips = () => new VirtualAddresses([], {});
    // The switchover: A leaves (its entries become the peer's), B takes over (live, tolerant).
    await new Takeover(a.engine.conntrack.table, a.engine.conntrack.tcp, vips()).transition(Role.MASTER, Role.BACKUP);
    await new Takeover(b.engine.conntrack.table, b.engine.conntrack.tcp, vips()).transition(Role.BACKUP, Role.MASTER);
    const tb = b.engine.conntrack.table;
    const live = (): { replicated: number; tolerant: number } => {
      let replicated = 0;
      let tolerant = 0;
      tb.forEach((s) => {
        if ((tb.statusOf(s) & CtStatus.REPLICATED) !== 0) replicated++;
        if (b.engine.conntrack.tcp.isTolerant(tb.tcp, s)) tolerant++;
      });
      return { replicated, tolerant };
    };
    expect(live()).toEqual({ replicated: 0, tolerant: 1 });
    const sentBefore = a.sync.stats.entriesSent.update;
    // A's refresh comes and goes: it sends nothing for entries it no longer owns.
    await new Promise((r) => setTimeout(r, 250));
    expect(a.sync.stats.entriesSent.update).toBe(sentBefore);
    expect(live()).toEqual({ replicated: 0, tolerant: 1 });
    // A message from A still in flight (sent before it stepped down) reaches B: B's live entry stands.
    const w = new Uint32Array(48);
    a.engine.conntrack.table.forEach((s) => a.engine.conntrack.table.exportEntry(s, a.engine.now(), w, 0));
    expect(tb.importEntry(w, 0, b.engine.now(), CtStatus.REPLICATED, true, CtStatus.REPLICATED)).toBe(ImportResult.KEPT);
    expect(live()).toEqual({ replicated: 0, tolerant: 1 });
    await a.sync.close();
    await b.sync.close();
  });

  it('after a takeover, the new master replicates the destroy of an entry it took over (the old master, now backup, drops it too)', async () => {
    const { a, b } = pair();
    await ready(a, b);
    load(a.engine, 20);
    expect((await converge(a, b)).diff.missing).toEqual([]);
    const vips = () => new VirtualAddresses([], {});
    // A switchover: A is the backup now, B the master of every entry.
    await new Takeover(a.engine.conntrack.table, a.engine.conntrack.tcp, vips()).transition(Role.MASTER, Role.BACKUP);
    await new Takeover(b.engine.conntrack.table, b.engine.conntrack.tcp, vips()).transition(Role.BACKUP, Role.MASTER);
    // B ends all of them (deleted: a flush, as a timeout would); none was ever sent by B.
    b.engine.conntrack.table.flush();
    expect(b.engine.conntrack.table.count).toBe(0);
    const { diff } = await converge(b, a);
    expect(diff.extra).toEqual([]);
    expect(a.engine.conntrack.table.count).toBe(0);
    expect(b.sync.stats.entriesSent.destroy).toBe(20);
    await a.sync.close();
    await b.sync.close();
  });

  it('a node restarted after a switchover holds the master\'s table, not the old master\'s history of flows the new master ended', async () => {
    const { a, b, tb } = pair();
    await ready(a, b);
    // A (master) creates 20 entries: its messages carry them.
    load(a.engine, 20);
    expect((await converge(a, b)).diff.missing).toEqual([]);
    const vips = () => new VirtualAddresses([], {});
    // Switchover: B is the master; B ends the 20 flows (its destroys reach A).
    await new Takeover(a.engine.conntrack.table, a.engine.conntrack.tcp, vips()).transition(Role.MASTER, Role.BACKUP);
    await new Takeover(b.engine.conntrack.table, b.engine.conntrack.tcp, vips()).transition(Role.BACKUP, Role.MASTER);
    b.engine.conntrack.table.flush();
    await converge(b, a);
    expect(a.engine.conntrack.table.count).toBe(0);
    // A master again (B is killed), with one flow of its own; B restarts empty, on the same link.
    await new Takeover(a.engine.conntrack.table, a.engine.conntrack.tcp, vips()).transition(Role.BACKUP, Role.MASTER);
    const b2 = await restart(b, tb, a.transport, 2);
    load(a.engine, 1);
    // A's early messages (the 20 creates) are still in its resend window; B2 must not take them
    // for the present: A holds 1 entry, so must B2.
    await ready(a, b2);
    await sleep(300);
    const { diff } = await converge(a, b2);
    expect({ extra: diff.extra.length, missing: diff.missing.length }).toEqual({ extra: 0, missing: 0 });
    expect(b2.engine.conntrack.table.count).toBe(1);
    await a.sync.close();
    await b2.sync.close();
  });

  it('a master that heard a second master re-learns its TCP windows: the flows the other forwarded meanwhile go on through it', async () => {
    const { a, b } = pair();
    await ready(a, b);
    const C = '10.7.7.8';
    // Two flows through A, each past its handshake and confirmed in both directions.
    const seqs = [0, 1].map((i) => {
      const sport = 41000 + i;
      via(a.engine, buildTcp({ src: C, dst: S, sport, dport: 443, flags: TcpFlag.SYN, seq: 1000, window: 65535 }), 2);
      via(a.engine, buildTcp({ src: S, dst: V, sport: 443, dport: sport, flags: TcpFlag.SYN | TcpFlag.ACK, seq: 5000, ack: 1001, window: 65535 }), 3);
      via(a.engine, buildTcp({ src: C, dst: S, sport, dport: 443, flags: TcpFlag.ACK, seq: 1001, ack: 5001, window: 65535 }), 2);
      return 1001;
    });
    expect((await converge(a, b)).diff.missing).toEqual([]);
    // Split brain: B takes over too and carries 70 KB of each flow; A, master still, keeps its
    // own (now stale) window data: the peer's updates do not touch a master's live entries.
    const vips = () => new VirtualAddresses([], {});
    await new Takeover(b.engine.conntrack.table, b.engine.conntrack.tcp, vips()).transition(Role.BACKUP, Role.MASTER);
    for (const i of [0, 1]) {
      for (let k = 0; k < 50; k++) {
        expect(via(b.engine, buildTcp({ src: C, dst: S, sport: 41000 + i, dport: 443, flags: TcpFlag.ACK, seq: seqs[i], ack: 5001, window: 65535, payloadLength: 1400 }), 2)).toBe(Verdict.ACCEPT);
        seqs[i] += 1400;
        via(b.engine, buildTcp({ src: S, dst: V, sport: 443, dport: 41000 + i, flags: TcpFlag.ACK, seq: 5001, ack: seqs[i], window: 65535 }), 3);
      }
    }
    // The server's ACK of the data A never saw (ACK above what A believes the client sent).
    const ackOf = (i: number) => buildTcp({ src: S, dst: V, sport: 443, dport: 41000 + i, flags: TcpFlag.ACK, seq: 5001, ack: seqs[i], window: 65535 });
    // Without a re-learn, A drops the flows B carried (flow 0)...
    expect(via(a.engine, ackOf(0), 3)).toBe(Verdict.DROP);
    // ...A heard B's adverts and stays master (B yields): it re-learns, and flow 1 goes on through A.
    const ta = new Takeover(a.engine.conntrack.table, a.engine.conntrack.tcp, vips());
    await ta.transition(Role.MASTER, Role.MASTER);
    expect(ta.steps.at(-1)).toMatchObject({ to: 'master', reclaim: true, entries: 2 });
    expect(via(a.engine, ackOf(1), 3)).toBe(Verdict.ACCEPT);
    expect(via(a.engine, buildTcp({ src: C, dst: S, sport: 41001, dport: 443, flags: TcpFlag.ACK, seq: seqs[1], ack: 5001, window: 65535, payloadLength: 1400 }), 2)).toBe(Verdict.ACCEPT);
    expect(out.ctState).toBe(CtState.ESTABLISHED);
    await a.sync.close();
    await b.sync.close();
  });

  it('a node restarted while the master is still adopting a large table (lazy takeover) gets every entry in its resync', async () => {
    const { a, b, ta } = pair();
    await ready(a, b);
    load(a.engine, 20);
    expect((await converge(a, b)).diff.missing).toEqual([]);
    // A is killed; B takes over lazily: its entries stay REPLICATED until a packet or the sweep.
    b.engine.conntrack.table.adoptReplicated = true;
    const a2 = await restart(a, ta, b.transport, 1);
    await ready(a2, b);
    await sleep(50);
    // Both hold the 20: A2 from B's dump (the not yet adopted ones included), and B kept its own
    // (the resync it asked of the restarted A2 must not sweep them as the peer's).
    expect([a2.engine.conntrack.table.count, b.engine.conntrack.table.count]).toEqual([20, 20]);
    await a2.sync.close();
    await b.sync.close();
  });

  it('runs quick transitions one after the other: a release never overtakes the claim before it', async () => {
    const { a, b } = pair();
    await ready(a, b);
    const order: string[] = [];
    const f = fakeCommands(() => 0);
    const slow: IpRunner = {
      run: async (lines) => {
        const what = lines[0].startsWith('addr del') ? 'release' : 'claim';
        order.push(`start ${what}`);
        await new Promise((r) => setTimeout(r, 20));
        order.push(`end ${what}`);
        return { failed: [], output: [] };
      },
      close: () => undefined,
    };
    const takeover = new Takeover(b.engine.conntrack.table, b.engine.conntrack.tcp, new VirtualAddresses(VIPS, { ...f.opts, ip: slow }));
    const p1 = takeover.transition(Role.BACKUP, Role.MASTER);
    const p2 = takeover.transition(Role.MASTER, Role.FAULT);
    await Promise.all([p1, p2]);
    expect(order).toEqual(['start claim', 'end claim', 'start release', 'end release']);
    await a.sync.close();
    await b.sync.close();
  });
});


import { afterEach, describe, expect, it } from 'vitest';
import { CtStatus } from '../../src/node/conntrack/index.js';
import { Engine, EngineResult } from '../../src/node/engine/index.js';
import { buildUdp } from '../../src/node/packet/build.js';
import { Keyring, LoopTransport, MsgType } from '../../src/sync/index.js';
import { EntryOp, HEADER_BYTES, MAC_BYTES, MsgFlag, Section } from '../../src/sync/wire.js';
import { KEY, converge, engine, load, pair, ready, side, sleep, type Side } from './pair.js';

/**
 * These in-process tests assert that the tables converge (within converge's bound, a few seconds
 * for a loaded machine), not how fast: the time to converge after the load stops (the issue's
 * 100 ms) is a figure of bench/sync on real multicast (`--only tail`).
 */

const open: Side[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) await s.sync.close();
});
function track<T extends { a: Side; b: Side }>(p: T): T {
  open.push(p.a, p.b);
  return p;
}

/** n new UDP flows through the engine from addresses it does not NAT (192.168/16): no NAT mapping. */
let plainPort = 1024;
function plainFlows(e: Engine, n: number): void {
  const res = new EngineResult();
  for (let i = 0; i < n; i++, plainPort++) {
    const u = buildUdp({ src: `192.168.${(plainPort >> 8) & 255}.${plainPort & 255}`, dst: '203.0.113.8', sport: 1024 + (plainPort % 60000), dport: 53, payload: 'q' });
    e.process(u, 0, u.length, { inIf: 2, outIf: 3, mark: 0, now: e.now() }, res);
  }
}

/** Loss patterns by datagram: a fate per send (0 deliver, 1 drop, 2 duplicate, 3 reorder). */
function random(p: number, seed = 1): () => number {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    return x / 0x7fffffff < p ? 1 : 0;
  };
}

/** An active that made 3000 entries, then a standby on `standbyEngine` started after them. */
async function lateStandby(standbyEngine: ReturnType<typeof engine>): Promise<{ a: Side; b: Side; ta: LoopTransport }> {
  const [ta, tb] = LoopTransport.pair();
  const a = side(1, ta);
  open.push(a);
  a.sync.start();
  load(a.engine, 3000);
  await sleep(10);
  const b = side(2, tb, standbyEngine);
  open.push(b);
  b.sync.start();
  return { a, b, ta };
}

describe('state sync between two engines (in-process link)', () => {
  it('replicates new connections with their NAT mapping and TCP state; the standby holds them as REPLICATED', async () => {
    const { a, b } = track(pair());
    load(a.engine, 200);
    const { diff } = await converge(a, b);
    expect([diff.missing.length, diff.extra.length, diff.differing.length]).toEqual([0, 0, 0]);
    const tb = b.engine.conntrack.table;
    expect(tb.count).toBe(200);
    let replicated = 0;
    tb.forEach((s) => void (replicated += (tb.statusOf(s) & CtStatus.REPLICATED) !== 0 ? 1 : 0));
    expect(replicated).toBe(200);
    // The standby counts the SNAT ports as taken.
    expect(b.engine.nat.poolStats().reduce((n, p) => n + p.portsInUse, 0)).toBe(a.engine.nat.poolStats().reduce((n, p) => n + p.portsInUse, 0));
    // Nothing flows back: the standby never sends the peer's entries.
    expect(b.sync.stats.entriesSent.create).toBe(0);
  });

  it('replicates destroys, and sends nothing for a flow created and destroyed within the flush window', async () => {
    const { a, b } = track(pair({ flushMs: 20 }));
    load(a.engine, 10);
    await converge(a, b);
    const sentBefore = a.sync.stats.entriesSent.create;
    a.engine.conntrack.table.flush();
    load(a.engine, 4);
    a.engine.conntrack.table.flush();
    const { diff } = await converge(a, b);
    expect(diff.extra).toHaveLength(0);
    expect(b.engine.conntrack.table.count).toBe(0);
    expect(a.sync.stats.entriesSent.create).toBe(sentBefore);
    expect(a.sync.stats.entriesSent.destroy).toBe(10);
  });

  // A fate per direction, made afresh per test. 1 %: one datagram in every 100 each way, at a fixed
  // place (random at 1 % over the ~100 datagrams of this load dropped no UPDATE in some runs, as
  // the count of control messages around them varies, and then nothing was retransmitted).
  for (const [name, fate] of [
    ['1 % loss', () => { let i = 0; return () => (++i % 100 === 37 ? 1 : 0); }],
    ['10 % loss', () => random(0.1, 11)],
    ['bursty loss (runs of 20 every 100)', () => { let i = 0; return () => (i++ % 100 < 20 ? 1 : 0); }],
  ] as const) {
    it(`converges under ${name} on the sync link, both ways (data and NACKs)`, async () => {
      const p = track(pair());
      await ready(p.a, p.b);
      p.ta.fate = fate();
      p.tb.fate = fate();
      for (let i = 0; i < 20; i++) {
        load(p.a.engine, 100);
        await sleep(1);
      }
      // Load stopped: the standby comes to hold the same table.
      const { diff } = await converge(p.a, p.b, 5000);
      expect([diff.missing.length, diff.extra.length, diff.differing.length]).toEqual([0, 0, 0]);
      expect(p.a.sync.stats.retransmitted).toBeGreaterThan(0);
    });
  }

  it('sends flows without NAT without their reply tuple only to a peer that says it reads that, and stays equal either way', async () => {
    const { a, b, ta, tb } = track(pair());
    const keys = new Keyring([KEY], 1);
    // b plays a node of an older version: its messages do not carry READS_REVERSED (re-signed).
    let oldPeer = true;
    tb.fate = (buf) => {
      if (oldPeer) {
        buf[5] &= ~MsgFlag.READS_REVERSED;
        keys.sign(buf, buf.length - MAC_BYTES);
      }
      return 0;
    };
    const reversed = { with: 0, without: 0 };
    ta.fate = (buf) => {
      if (buf[3] !== MsgType.UPDATE) return 0;
      let o = HEADER_BYTES + 2;
      for (let i = buf.readUInt16BE(HEADER_BYTES); i > 0; i--) {
        if (buf[o] !== EntryOp.DESTROY) reversed[(buf[o + 1] & Section.REPLY_REVERSED) !== 0 ? 'with' : 'without']++;
        o += buf.readUInt16BE(o + 2);
      }
      return 0;
    };
    await ready(a, b);
    plainFlows(a.engine, 200);
    expect((await converge(a, b)).diff.missing).toEqual([]);
    expect(reversed.with).toBe(0);
    expect(reversed.without).toBeGreaterThanOrEqual(200);
    // b "upgraded": its next message says it reads them, and a's entries without NAT go short.
    oldPeer = false;
    b.sync.receiver.requestResync();
    await sleep(20);
    plainFlows(a.engine, 200);
    load(a.engine, 20);
    const { diff } = await converge(a, b);
    expect([diff.missing.length, diff.extra.length, diff.differing.length]).toEqual([0, 0, 0]);
    expect(reversed.with).toBeGreaterThanOrEqual(200);
  });

  it('applies each message exactly once, in order, whatever the duplication and reordering', async () => {
    const p = track(pair());
    await ready(p.a, p.b);
    let i = 0;
    p.ta.fate = () => [0, 2, 3, 0, 3, 2][i++ % 6];
    for (let k = 0; k < 10; k++) {
      load(p.a.engine, 50);
      await sleep(3);
    }
    p.ta.flushHeld();
    const { diff } = await converge(p.a, p.b);
    expect([diff.missing.length, diff.extra.length, diff.differing.length]).toEqual([0, 0, 0]);
    expect(p.b.sync.stats.drops.duplicate).toBeGreaterThan(0);
    // Every create applied once: no update was needed to repair anything.
    expect(p.b.sync.stats.entriesApplied.create).toBe(500);
  });

  it('repairs loss of the first messages after a start and of the last before the link goes idle', async () => {
    const p = track(pair());
    let n = 0;
    // Drop the first 5 datagrams from a (including the first UPDATEs) ...
    p.ta.fate = () => (n++ < 5 ? 1 : 0);
    load(p.a.engine, 30);
    await sleep(5);
    load(p.a.engine, 30);
    // ... and the last ones: everything a sends for 3 ms after this load.
    const stop = performance.now() + 3;
    p.ta.fate = () => (performance.now() < stop ? 1 : 0);
    load(p.a.engine, 30);
    const { diff } = await converge(p.a, p.b);
    expect([diff.missing.length, diff.extra.length]).toEqual([0, 0]);
  });

  it('while its last data is unconfirmed, the active repeats ALIVE every 20 ms or so, not at doubling delays, so a burst of loss hides the tail briefly', async () => {
    const p = track(pair());
    await ready(p.a, p.b);
    // The link is down both ways for 480 ms after a load: count the ALIVEs the active tries.
    const down = performance.now() + 480;
    let alives = 0;
    p.ta.fate = (buf) => {
      if (performance.now() >= down) return 0;
      if (buf[3] === MsgType.ALIVE) alives++;
      return 1;
    };
    p.tb.fate = () => (performance.now() < down ? 1 : 0);
    load(p.a.engine, 50);
    await sleep(480);
    // Every ~20 ms: ~24 (doubling delays made 6, plus the 200 ms heartbeat's 2).
    expect(alives).toBeGreaterThanOrEqual(12);
    const { diff } = await converge(p.a, p.b);
    expect([diff.missing.length, diff.extra.length]).toEqual([0, 0]);
  });

  it('a restarted standby asks for a bulk resync and converges; so does one that starts late', async () => {
    // The standby starts after the active made 3000 entries: the resync brings everything.
    const { a, b, ta } = await lateStandby(engine());
    let { diff } = await converge(a, b);
    expect(diff.missing).toHaveLength(0);
    for (let i = 0; i < 100 && b.sync.stats.resyncsCompleted === 0; i++) await sleep(5);
    expect(b.sync.stats.resyncsCompleted).toBe(1);
    expect(b.sync.peer?.synced).toBe(true);
    // Restart it (a fresh process: empty table, new epoch) while load goes on.
    await b.sync.close();
    const tb2 = new LoopTransport();
    ta.peer = tb2;
    tb2.peer = ta;
    const b2 = side(2, tb2, engine());
    open.push(b2);
    b2.sync.start();
    load(a.engine, 500);
    ({ diff } = await converge(a, b2));
    expect([diff.missing.length, diff.extra.length, diff.differing.length]).toEqual([0, 0, 0]);
  });

  it('a node not started yet asks for nothing, even after first contact: one dump, asked for at start', async () => {
    const [ta, tb] = LoopTransport.pair();
    const a = side(1, ta);
    const b = side(2, tb);
    open.push(a, b);
    a.sync.start();
    load(a.engine, 200);
    const requests: number[] = [];
    tb.fate = (buf) => {
      if (buf[3] === MsgType.RESYNC_REQUEST) requests.push(buf.readUInt32BE(HEADER_BYTES + 4));
      return 0;
    };
    // b receives a's messages (first contact) for longer than its resync retry (100 ms).
    await sleep(250);
    expect(b.sync.peer?.id).toBe(1);
    expect(requests).toEqual([]);
    b.sync.start();
    await ready(a, b);
    expect(new Set(requests).size).toBe(1);
    expect(a.sync.stats.resyncsServed).toBe(1);
    expect((await converge(a, b)).diff.missing).toEqual([]);
  });

  it('a resync that does not fit in the standby\'s table leaves it "not synced", counted as short', async () => {
    const { b } = await lateStandby(engine(1000));
    for (let i = 0; i < 400 && b.sync.stats.resyncsCompleted === 0; i++) await sleep(5);
    expect(b.sync.stats.resyncsCompleted).toBe(1);
    expect(b.engine.conntrack.table.count).toBeLessThanOrEqual(1000);
    expect(b.sync.stats.entriesTableFull + b.engine.conntrack.table.earlyDrops).toBeGreaterThan(0);
    expect(b.sync.stats.resyncsShort).toBe(1);
    expect(b.sync.peer?.synced).toBe(false);
  });

  it('an active that restarted (new epoch) is resynced: entries it no longer has are swept from the standby', async () => {
    const { a, b, ta, tb } = track(pair());
    load(a.engine, 100);
    await converge(a, b);
    expect(b.engine.conntrack.table.count).toBe(100);
    // a restarts: empty table, new epoch, same id, same link.
    await a.sync.close();
    ta.peer = tb;
    const a2 = side(1, ta, engine(), { epoch: a.sync.epoch + 1000 });
    open.push(a2);
    a2.sync.start();
    load(a2.engine, 20);
    const { diff } = await converge(a2, b);
    expect([diff.missing.length, diff.extra.length]).toEqual([0, 0]);
    expect(b.engine.conntrack.table.count).toBe(20);
    expect(b.sync.stats.resyncSwept).toBe(100);
  });

  it('a message whose third entry is garbled: the two before it are applied, in order, the rest of it dropped and counted once', async () => {
    const { a, b, ta } = track(pair());
    await ready(a, b);
    // Keep a's next UPDATE, and everything a sends meanwhile (its resends too), from b.
    let held: Buffer | null = null;
    const fate = ta.fate;
    ta.fate = (buf) => {
      if (held === null && buf[3] === MsgType.UPDATE) held = Buffer.from(buf);
      return 1;
    };
    load(a.engine, 10);
    await sleep(20);
    const msg = held as unknown as Buffer;
    expect(msg).not.toBeNull();
    const payloadLength = msg.readUInt16BE(6);
    expect(msg.readUInt16BE(HEADER_BYTES)).toBeGreaterThanOrEqual(3);
    // Walk to the third entry (each entry's length at its bytes 2-3) and give it an unknown op.
    let o = HEADER_BYTES + 2;
    const tuples: string[] = [];
    for (let i = 0; i < 2; i++) {
      tuples.push(msg.subarray(o + 6, o + 18).toString('hex'));
      o += msg.readUInt16BE(o + 2);
    }
    msg[o] = 77;
    a.sync.framer.seal(msg, MsgType.UPDATE, msg[5], msg.readUInt32BE(20), payloadLength);
    const bt = b.engine.conntrack.table;
    const before = bt.count;
    const created = b.sync.stats.entriesApplied.create;
    b.sync.receive(msg);
    expect(b.sync.stats.drops.bad_payload).toBe(1);
    expect(b.sync.stats.entriesApplied.create - created).toBe(2);
    expect(bt.count).toBe(before + 2);
    // The two applied are the message's first two entries (original tuples as sent).
    const have = new Set<string>();
    bt.forEach((slot) => {
      const w = bt.tuples;
      const t = bt.tupleOffset(slot, 0);
      const h = Buffer.alloc(12);
      h.writeUInt32BE(w[t], 0);
      h.writeUInt32BE(w[t + 4], 4);
      h.writeUInt32BE(w[t + 8], 8);
      have.add(h.toString('hex'));
    });
    for (const t of tuples) expect(have.has(t)).toBe(true);
    ta.fate = fate;
  });

  it('drops garbled, truncated, forged, replayed and stale datagrams, counted by reason, without touching the table', async () => {
    const { a, b, ta } = track(pair());
    await ready(a, b);
    const captured: Buffer[] = [];
    const fate = ta.fate;
    ta.fate = (buf) => {
      captured.push(Buffer.from(buf));
      return fate(buf);
    };
    load(a.engine, 20);
    await converge(a, b);
    const before = b.engine.conntrack.table.count;
    const update = captured.find((c) => c[3] === MsgType.UPDATE) as Buffer;
    const applied = { ...b.sync.stats.entriesApplied };
    // Replays of everything captured.
    for (const c of captured) b.sync.receive(Buffer.from(c));
    // Forged: a changed byte in the payload (MAC no longer matches).
    const forged = Buffer.from(update);
    forged[40] ^= 0xff;
    b.sync.receive(forged);
    // Unknown key id.
    const otherKey = Buffer.from(update);
    otherKey[4] = 9;
    b.sync.receive(otherKey);
    // Truncated, garbage, wrong magic, wrong version.
    b.sync.receive(update.subarray(0, 30));
    b.sync.receive(Buffer.from('hello world, this is not a sync message at all'));
    const magic = Buffer.from(update);
    magic[0] = 0;
    b.sync.receive(magic);
    const version = Buffer.from(update);
    version[2] = 99;
    b.sync.receive(version);
    const d = b.sync.stats.drops;
    expect(d.duplicate).toBeGreaterThan(0);
    expect(d.bad_mac).toBe(1);
    expect(d.unknown_key).toBe(1);
    expect(d.too_short).toBeGreaterThanOrEqual(1);
    expect(d.bad_magic).toBe(2);
    expect(d.bad_version).toBe(1);
    expect(b.engine.conntrack.table.count).toBe(before);
    expect(b.sync.stats.entriesApplied).toEqual(applied);
    expect(b.sync.stats.authFailures).toBe(2);
  });

  it('loses nothing for good when the first messages after a start are lost: 100 starts at 5 % loss', async () => {
    let missingForGood = 0;
    let slowest = 0;
    for (let run = 0; run < 100; run++) {
      const [ta, tb] = LoopTransport.pair();
      const drop = random(0.05, run + 1);
      ta.fate = drop;
      tb.fate = drop;
      const a = side(1, ta);
      const b = side(2, tb);
      // Load before and while both start: the startup resync requests and the first UPDATEs may be lost.
      load(a.engine, 20);
      a.sync.start();
      b.sync.start();
      load(a.engine, 20);
      const { diff, ms } = await converge(a, b, 1000);
      missingForGood += diff.missing.length + diff.extra.length + diff.differing.length;
      slowest = Math.max(slowest, ms);
      await a.sync.close();
      await b.sync.close();
    }
    expect(missingForGood).toBe(0);
    expect(slowest).toBeLessThan(1000);
  }, 60_000);

  it('never sends a datagram above the configured sync MTU (IP and UDP headers included)', async () => {
    const mtu = 600;
    const p = track(pair({ mtu }));
    await ready(p.a, p.b);
    let largest = 0;
    for (const t of [p.ta, p.tb]) {
      t.fate = (buf) => {
        largest = Math.max(largest, buf.length);
        return 0;
      };
    }
    load(p.a.engine, 300);
    // A bulk dump too: the standby asks for everything again.
    p.b.sync.requestResync();
    const { diff } = await converge(p.a, p.b);
    expect(diff.missing).toHaveLength(0);
    for (let i = 0; i < 100 && p.b.sync.stats.resyncsCompleted < 2; i++) await sleep(5);
    expect(p.b.sync.stats.resyncsCompleted).toBeGreaterThanOrEqual(2);
    expect(largest).toBeGreaterThan(mtu - 28 - 120);
    expect(largest).toBeLessThanOrEqual(mtu - 28);
  });

  it('a bulk dump keeps to its rate limit while live updates and destroys go on, and ends equal', async () => {
    const [ta, tb] = LoopTransport.pair();
    const a = side(1, ta, engine(), { resyncRate: 20_000 });
    open.push(a);
    a.sync.start();
    load(a.engine, 3000);
    await sleep(20);
    const b = side(2, tb);
    open.push(b);
    const t0 = performance.now();
    b.sync.start();
    // While the dump runs (3000 entries at 20 k/s: about 150 ms), new flows and destroys.
    await sleep(40);
    expect(a.sync.sender.resyncing).toBe(true);
    load(a.engine, 200);
    let destroyed = 0;
    const ta2 = a.engine.conntrack.table;
    ta2.forEach((slot) => {
      if (destroyed < 100) {
        ta2.destroy(slot, 3);
        destroyed++;
      }
    });
    for (let i = 0; i < 200 && b.sync.stats.resyncsCompleted === 0; i++) await sleep(5);
    const ms = performance.now() - t0;
    expect(b.sync.stats.resyncsCompleted).toBe(1);
    expect(ms).toBeGreaterThanOrEqual(130);
    const { diff } = await converge(a, b);
    expect([diff.missing.length, diff.extra.length, diff.differing.length]).toEqual([0, 0, 0]);
    expect(b.engine.conntrack.table.count).toBe(3100);
  });
});

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Keyring } from '../../src/sync/index.js';
import { ElectionConfigError, Role, addressBytes, encodeAdvert, newAdvert, pacerLeaseMs, type Advert } from '../../src/failover/index.js';
import { KEY, SimNet } from './sim.js';

const I = 10; // advert interval, ms
/** RFC 5798 master-down interval at this priority: 3 x interval + (256 - priority) x interval / 256. */
const masterDown = (priority: number): number => 3 * I + ((256 - priority) * I) / 256;
const skew = (priority: number): number => ((256 - priority) * I) / 256;

function pair(o: { a?: number; b?: number; preempt?: boolean; preemptDelayMs?: number } = {}) {
  const net = new SimNet(I);
  const a = net.add(1, { priority: o.a ?? 200, address: '10.9.0.1', preempt: o.preempt ?? true, preemptDelayMs: o.preemptDelayMs ?? 0 });
  const b = net.add(2, { priority: o.b ?? 100, address: '10.9.0.2', preempt: o.preempt ?? true, preemptDelayMs: o.preemptDelayMs ?? 0 });
  return { net, a, b };
}

/** A pair started and settled: A master, B backup (with the default priorities). */
function running(o: Parameters<typeof pair>[0] = {}) {
  const p = pair(o);
  p.a.election.start();
  p.b.election.start();
  p.net.run(20 * I);
  return p;
}

describe('election', () => {
  it('elects the higher priority at start, within its master-down interval, and the other follows it', () => {
    const { net, a, b } = pair();
    a.election.start();
    b.election.start();
    net.run(masterDown(200) + 1);
    expect(a.role).toBe(Role.MASTER);
    expect(a.becameMasterAt()).toBeCloseTo(masterDown(200), 3);
    expect(b.role).toBe(Role.BACKUP);
    expect(b.election.master?.id).toBe(1);
    net.run(100 * I);
    // Steady: one master, the backup never took over, adverts every interval.
    expect(net.masters().map((n) => n.id)).toEqual([1]);
    expect(b.log.map((l) => l.to)).toEqual([Role.BACKUP]);
    expect(a.election.stats.advertsSent).toBeGreaterThanOrEqual(100);
  });

  it('takes over from a killed master after the backup\'s master-down interval (3 x interval + skew)', () => {
    const { net, a, b } = running();
    const killedAt = net.clock.now;
    a.dead = true;
    net.run(10 * I);
    expect(b.role).toBe(Role.MASTER);
    const took = b.becameMasterAt() - killedAt;
    // The last advert came at most one interval before the kill.
    expect(took).toBeLessThanOrEqual(masterDown(100) + 0.1);
    expect(took).toBeGreaterThan(masterDown(100) - I - 0.1);
    expect(b.log.at(-1)?.reason).toMatch(/master 1 silent/);
  });

  it('takes over at once when the master\'s process is gone (its peer link closed), and only then', () => {
    const { net, a, b } = running();
    const m = b.election.master;
    expect(m).toMatchObject({ id: 1, address: '10.9.0.1' });
    const epoch = (m as { epoch: number }).epoch;
    // Not the master followed, or an earlier start of it: nothing.
    b.election.peerGone(3, epoch, 'test');
    b.election.peerGone(1, epoch - 1, 'test');
    expect(b.role).toBe(Role.BACKUP);
    // Killed: no priority 0, but the link closes.
    a.dead = true;
    const killedAt = net.clock.now;
    b.election.peerGone(1, epoch, 'its peer link closed');
    expect(b.role).toBe(Role.MASTER);
    expect(b.becameMasterAt()).toBe(killedAt);
    expect(b.log.at(-1)?.reason).toMatch(/master 1's process is gone \(its peer link closed\)/);
    expect(b.election.stats.peerGone).toBe(1);
    // A master (or a node in FAULT) ignores it.
    b.election.peerGone(1, epoch, 'again');
    expect(b.election.stats.peerGone).toBe(1);
    net.run(10 * I);
    expect(net.masters().map((n) => n.id)).toEqual([2]);
  });

  it('hands over at once when the master stops (priority 0): a pair has no other backup to wait for (no skew time)', () => {
    const { net, a, b } = running();
    const stoppedAt = net.clock.now;
    a.election.stop();
    expect(a.role).toBe(Role.INIT);
    net.run(2 * I);
    expect(b.role).toBe(Role.MASTER);
    expect(b.becameMasterAt() - stoppedAt).toBeLessThanOrEqual(0.2);
    expect(skew(100)).toBeGreaterThan(1); // what VRRP would have waited
  });

  it('a higher priority preempts a running master, after the preemption delay when one is set', () => {
    for (const delay of [0, 50 * I]) {
      const { net, a, b } = pair({ preemptDelayMs: delay });
      b.election.start();
      net.run(20 * I);
      expect(b.role).toBe(Role.MASTER);
      const startedAt = net.clock.now;
      a.election.start();
      net.run(delay + masterDown(200) + 2 * I);
      expect(a.role).toBe(Role.MASTER);
      expect(b.role).toBe(Role.BACKUP);
      const waited = a.becameMasterAt() - startedAt;
      expect(waited).toBeGreaterThanOrEqual(delay);
      expect(waited).toBeLessThanOrEqual(delay + masterDown(200) + I + 0.2);
      expect(a.log.at(-1)?.reason).toBe('preempting master 2 (priority 100)');
      expect(net.masters()).toHaveLength(1);
    }
  });

  it('a node holding preemption (its state not in place yet) lets a lower master be, and preempts once released; with no master it takes over anyway', () => {
    const { net, a, b } = pair();
    b.election.start();
    net.run(20 * I);
    a.election.holdPreemption(true);
    a.election.start();
    net.run(100 * I);
    expect([a.role, b.role]).toEqual([Role.BACKUP, Role.MASTER]);
    const releasedAt = net.clock.now;
    a.election.holdPreemption(false);
    net.run(masterDown(200) + 2 * I);
    expect([a.role, b.role]).toEqual([Role.MASTER, Role.BACKUP]);
    expect(a.becameMasterAt() - releasedAt).toBeLessThanOrEqual(masterDown(200) + I + 0.2);
    // Held, but nobody is master: it takes over (better than no one forwarding).
    const p = pair();
    p.a.election.holdPreemption(true);
    p.a.election.start();
    p.b.election.start();
    p.net.run(20 * I);
    expect([p.a.role, p.b.role]).toEqual([Role.MASTER, Role.BACKUP]);
  });

  it('without preemption the running master stays, whatever the priorities', () => {
    const { net, a, b } = pair({ preempt: false });
    b.election.start();
    net.run(20 * I);
    a.election.start();
    net.run(200 * I);
    expect(b.role).toBe(Role.MASTER);
    expect(a.role).toBe(Role.BACKUP);
  });

  it('switches over on demand at once, stays switched, and back again (A -> B -> A)', () => {
    const { net, a, b } = running();
    let t = net.clock.now;
    expect(a.election.switchover()).toBe(true);
    expect(b.election.switchover()).toBe(false); // not master
    net.run(I);
    expect(b.role).toBe(Role.MASTER);
    expect(b.becameMasterAt() - t).toBeLessThanOrEqual(0.2);
    // A has the higher priority, yet does not take it back: the switchover demoted it.
    net.run(100 * I);
    expect([a.role, b.role]).toEqual([Role.BACKUP, Role.MASTER]);
    expect(a.election.priority).toBe(1);
    t = net.clock.now;
    expect(b.election.switchover()).toBe(true);
    net.run(2 * I);
    expect(a.role).toBe(Role.MASTER);
    expect(a.becameMasterAt() - t).toBeLessThanOrEqual(0.2);
    // Master again: the demotion is gone, and B (now demoted) does not take it back.
    expect(a.election.priority).toBe(200);
    net.run(100 * I);
    expect(net.masters().map((n) => n.id)).toEqual([1]);
  });

  it('resolves split brain when the link heals: priority first, then the higher address', () => {
    for (const [pa, pb, winner] of [[200, 100, 1], [100, 200, 2], [150, 150, 2]] as const) {
      const { net, a, b } = running({ a: pa, b: pb });
      net.setCut(1, 2, true);
      net.run(20 * I);
      expect(net.masters()).toHaveLength(2);
      const healedAt = net.clock.now;
      net.setCut(1, 2, false);
      net.run(2 * I);
      expect(net.masters().map((n) => n.id)).toEqual([winner]);
      const loser = winner === 1 ? b : a;
      // Resolved within an interval of the heal: the first advert either way settles it.
      expect(loser.log.at(-1)?.to).toBe(Role.BACKUP);
      expect(loser.log.at(-1)!.at - healedAt).toBeLessThanOrEqual(I + 0.2);
      expect(loser.election.stats.splitBrainSeen + (winner === 1 ? a : b).election.stats.splitBrainSeen).toBeGreaterThan(0);
      // The winner heard the other master (which had announced the addresses): it announces them
      // again, once (MASTER -> MASTER, for the takeover to claim again).
      const again = (winner === 1 ? a : b).log.filter((l) => l.at >= healedAt && l.from === Role.MASTER && l.to === Role.MASTER);
      expect(again).toHaveLength(1);
      expect(again[0].reason).toMatch(/announcing the addresses again/);
      expect(loser.log.filter((l) => l.from === Role.MASTER && l.to === Role.MASTER)).toHaveLength(0);
    }
  });

  it('a master whose timer fires up to three intervals late (a hiccup on a loaded machine) goes on: no yield, no takeover', () => {
    const { net, a, b } = running();
    // Right after one of A's adverts: B's master-down time (3 x I + skew) runs from here.
    const sent = a.election.stats.advertsSent;
    while (a.election.stats.advertsSent === sent) net.run(0.01);
    const before = [a.log.length, b.log.length];
    a.paused = true;
    net.run(3.4 * I); // the next advert fires 2.4 intervals late
    a.paused = false;
    net.run(20 * I);
    expect([a.role, b.role]).toEqual([Role.MASTER, Role.BACKUP]);
    expect([a.log.length, b.log.length]).toEqual(before);
    // Counted: how late at worst, and once over one interval late (status and metrics show it).
    expect(a.election.stats.advertLateMaxMs).toBeGreaterThan(2.3 * I);
    expect(a.election.stats.advertLateMaxMs).toBeLessThan(2.5 * I);
    expect(a.election.stats.advertsLate).toBe(1);
  });

  it('a fault steps the master down at once and keeps the node out until it clears', () => {
    const { net, a, b } = running();
    const t = net.clock.now;
    a.election.setHealth('dataplane', { fault: true });
    expect(a.role).toBe(Role.FAULT);
    net.run(I);
    expect(b.role).toBe(Role.MASTER);
    expect(b.becameMasterAt() - t).toBeLessThanOrEqual(0.2);
    // The backup dies too: a node in FAULT still never takes over.
    b.dead = true;
    net.run(50 * I);
    expect(a.role).toBe(Role.FAULT);
    expect(a.election.faults).toEqual(['dataplane']);
    a.election.setHealth('dataplane', null);
    expect(a.role).toBe(Role.BACKUP);
    net.run(masterDown(200) + 1);
    expect(a.role).toBe(Role.MASTER);
  });

  it('a health penalty below the backup\'s priority hands over (tracking weight)', () => {
    const { net, a, b } = running({ a: 200, b: 150 });
    a.election.setHealth('sync-link', { penalty: 100 });
    expect(a.election.priority).toBe(100);
    net.run(masterDown(150) + 2 * I);
    expect([a.role, b.role]).toEqual([Role.BACKUP, Role.MASTER]);
    a.election.setHealth('sync-link', null);
    net.run(masterDown(200) + 2 * I);
    expect([a.role, b.role]).toEqual([Role.MASTER, Role.BACKUP]);
  });

  it('a master frozen (SIGSTOP) for longer than the master-down time yields when it resumes, never forwarding as a second master', () => {
    const { net, a, b } = running();
    a.paused = true;
    net.run(10 * I);
    expect(b.role).toBe(Role.MASTER);
    a.paused = false;
    // The overdue advert timer fires at once: A sees it was frozen and yields without advertising.
    net.run(0.01);
    expect(a.role).toBe(Role.BACKUP);
    expect(a.log.at(-1)?.reason).toMatch(/stalled/);
    expect(net.masters().map((n) => n.id)).toEqual([2]);
    // Then, as the higher priority, it preempts in the normal way: one handover, no flapping.
    net.run(100 * I);
    expect(net.masters().map((n) => n.id)).toEqual([1]);
    expect(b.log.map((l) => l.to)).toEqual([Role.BACKUP, Role.MASTER, Role.BACKUP]);
  });

  it('a frozen master that reads the new master\'s advert before its overdue timer yields too, without announcing its addresses again', () => {
    const { net, a, b } = running();
    a.paused = true;
    net.run(10 * I);
    expect(b.role).toBe(Role.MASTER);
    a.paused = false;
    // The datagrams queued while it was frozen come first (the election worker reads them before
    // running an overdue timer): B's advert, a lower master.
    a.election.receive(net.wire.filter((w) => w.from === 2).at(-1)!.buf);
    expect(a.role).toBe(Role.BACKUP);
    expect(a.log.at(-1)?.reason).toMatch(/stalled/);
    expect(a.log.filter((l) => l.from === Role.MASTER && l.to === Role.MASTER)).toEqual([]);
    expect(net.masters().map((n) => n.id)).toEqual([2]);
  });

  it('counts and ignores forged, garbled, truncated, foreign, replayed and duplicated adverts', () => {
    const { net, b } = running();
    const genuine = net.wire.filter((w) => w.from === 1).at(-1)!.buf;
    const before = { role: b.role, master: b.election.master?.id, received: b.election.stats.advertsReceived };
    const forger = new Keyring([{ id: 1, secret: Buffer.from('another key, same id, 32 bytes!!') }], 1);
    const fake: Advert = { ...newAdvert(), priority: 254, role: Role.MASTER, groupId: 1, intervalMs: I, sender: 3, epoch: 1, seq: 1, address: addressBytes('10.9.0.3') };
    const forged = Buffer.from(encodeAdvert(fake, forger, Buffer.alloc(64)));
    const otherKeyId = Buffer.from(encodeAdvert(fake, new Keyring([{ id: 7, secret: KEY.secret }], 7), Buffer.alloc(64)));
    const otherGroup = Buffer.from(encodeAdvert({ ...fake, groupId: 2 }, new Keyring([KEY], 1), Buffer.alloc(64)));
    const badField = Buffer.from(encodeAdvert({ ...fake, intervalMs: 0 }, new Keyring([KEY], 1), Buffer.alloc(64)));
    const garbled = Buffer.from(genuine);
    garbled[30] ^= 1;
    const wrongVersion = Buffer.from(genuine);
    wrongVersion[2] = 2;
    const cases: [Buffer, string][] = [
      [forged, 'bad_mac'], [otherKeyId, 'unknown_key'], [otherGroup, 'other_group'], [badField, 'bad_field'],
      [garbled, 'bad_mac'], [wrongVersion, 'bad_version'], [genuine.subarray(0, 30), 'too_short'],
      [Buffer.concat([genuine, Buffer.alloc(1)]), 'bad_length'], [Buffer.alloc(60), 'bad_magic'],
      [genuine, 'duplicate'], [net.wire.filter((w) => w.from === 1)[3].buf, 'replay'],
    ];
    for (const [buf, why] of cases) {
      const n = b.election.stats.drops[why as keyof typeof b.election.stats.drops] ?? 0;
      net.inject(b, buf);
      expect(b.election.stats.drops[why as keyof typeof b.election.stats.drops]).toBe(n + 1);
    }
    expect({ role: b.role, master: b.election.master?.id, received: b.election.stats.advertsReceived }).toEqual(before);
    // Random bytes never throw.
    fc.assert(fc.property(fc.uint8Array({ maxLength: 100 }), (bytes) => {
      b.election.receive(Buffer.from(bytes));
    }), { numRuns: 500 });
    expect(b.role).toBe(Role.BACKUP);
  });

  it('refuses impossible settings with what to change', () => {
    const net = new SimNet(I);
    expect(() => net.add(1, { priority: 255, address: '10.9.0.1' })).toThrow(ElectionConfigError);
    expect(() => net.add(1, { priority: 0, address: '10.9.0.1' })).toThrow(/1-254/);
    expect(() => net.add(1, { priority: 100, address: '10.9.0.1', advertIntervalMs: 0 })).toThrow(/interval/);
  });

  it('ends with exactly one master among the live nodes after any faults heal (property)', () => {
    type Ev =
      | { k: 'kill' | 'revive' | 'pause' | 'resume' | 'stop' | 'start' | 'switchover' | 'fault' | 'clear'; n: number }
      | { k: 'cut' | 'heal' }
      | { k: 'wait'; ms: number };
    const ev: fc.Arbitrary<Ev> = fc.oneof(
      fc.record({ k: fc.constantFrom('kill', 'revive', 'pause', 'resume', 'stop', 'start', 'switchover', 'fault', 'clear'), n: fc.integer({ min: 0, max: 1 }) }) as fc.Arbitrary<Ev>,
      fc.record({ k: fc.constantFrom('cut', 'heal') }) as fc.Arbitrary<Ev>,
      fc.record({ k: fc.constant('wait'), ms: fc.integer({ min: 0, max: 20 * I }) }) as fc.Arbitrary<Ev>,
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 254 }), fc.integer({ min: 1, max: 254 }), fc.boolean(), fc.array(ev, { maxLength: 30 }), (pa, pb, preempt, evs) => {
        const { net, a, b } = pair({ a: pa, b: pb, preempt });
        const nodes = [a, b];
        a.election.start();
        b.election.start();
        for (const e of evs) {
          if (e.k === 'wait') net.run(e.ms);
          else if (!('n' in e)) net.setCut(1, 2, e.k === 'cut');
          else {
            const n = nodes[e.n];
            if (e.k === 'kill') n.dead = true;
            else if (e.k === 'revive' && n.dead) {
              // A restart: a fresh node in its place (new epoch), started.
              const fresh = net.add(n.id, { priority: e.n === 0 ? pa : pb, address: e.n === 0 ? '10.9.0.1' : '10.9.0.2', preempt, epoch: net.clock.now + 1000 + n.id });
              net.nodes.splice(net.nodes.indexOf(n), 1);
              nodes[e.n] = fresh;
              fresh.election.start();
            } else if (e.k === 'pause') n.paused = true;
            else if (e.k === 'resume') n.paused = false;
            else if (e.k === 'stop') n.election.stop();
            else if (e.k === 'start') n.election.start();
            else if (e.k === 'switchover') n.election.switchover();
            else if (e.k === 'fault') n.election.setHealth('check', { fault: true });
            else n.election.setHealth('check', null);
          }
        }
        // Heal everything; every live node running and healthy.
        net.setCut(1, 2, false);
        for (const n of nodes) {
          n.paused = false;
          n.election.setHealth('check', null);
          n.election.start();
        }
        net.run(50 * I);
        const live = nodes.filter((n) => !n.dead);
        if (live.length > 0) expect(net.masters()).toHaveLength(1);
        for (const n of live) if (n.role !== Role.MASTER) expect(n.role).toBe(Role.BACKUP);
        // And it stays that way.
        const m = net.masters()[0]?.id;
        net.run(50 * I);
        expect(net.masters()[0]?.id).toBe(m);
      }),
      { numRuns: 300 },
    );
  });
});

/** A pair whose adverts go through pacers (the master's repeated on a thread of their own), started and settled. */
function pacedPair() {
  const net = new SimNet(I);
  const a = net.add(1, { priority: 200, address: '10.9.0.1', paced: true });
  const b = net.add(2, { priority: 100, address: '10.9.0.2', paced: true });
  a.election.start();
  b.election.start();
  net.run(20 * I);
  return { net, a, b };
}

describe('election with an advert pacer', () => {
  it('a master whose election thread is held 60 ms (a GC, a busy core) goes on advertising: no takeover, no yield', () => {
    const { net, a, b } = pacedPair();
    expect([a.role, b.role]).toEqual([Role.MASTER, Role.BACKUP]);
    const before = [a.log.length, b.log.length];
    a.held = true;
    net.run(6 * I); // twice the master-down time: without the pacer B takes over and A yields
    a.release();
    net.run(20 * I);
    expect([a.role, b.role]).toEqual([Role.MASTER, Role.BACKUP]);
    expect([a.log.length, b.log.length]).toEqual(before);
    // The adverts were the pacer's, numbered with the election's own in one sequence (B saw no replay).
    expect(a.election.stats.advertsSent).toBeGreaterThanOrEqual(40);
    expect(b.election.stats.drops.replay ?? 0).toBe(0);
    expect(a.election.stats.advertsLate).toBe(0);
  });

  it('the same hold without a pacer is a takeover (what the pacer is for)', () => {
    const { net, a, b } = running();
    a.paused = true; // a timer on the election's thread: held is paused
    net.run(6 * I);
    a.paused = false;
    net.run(0.01);
    expect(b.role).toBe(Role.MASTER);
  });

  it('a master frozen (SIGSTOP) past the master-down time yields on resume, whichever wakes first, its timer or the datagrams', () => {
    for (const datagramsFirst of [false, true]) {
      const { net, a, b } = pacedPair();
      a.paused = true;
      net.run(10 * I);
      expect(b.role).toBe(Role.MASTER);
      a.paused = false;
      if (datagramsFirst) a.election.receive(net.wire.filter((w) => w.from === 2).at(-1)!.buf);
      net.run(0.01);
      expect(a.role).toBe(Role.BACKUP);
      expect(a.log.at(-1)?.reason).toMatch(/stalled \d+ ms/);
      expect(a.log.filter((l) => l.from === Role.MASTER && l.to === Role.MASTER)).toEqual([]);
      expect(net.masters().map((n) => n.id)).toEqual([2]);
      // The pacer stopped: A's next adverts are a backup's (none), until it preempts as usual.
      expect(a.pacer?.pacing).toBe(false);
      net.run(100 * I);
      expect(net.masters().map((n) => n.id)).toEqual([1]);
      expect(b.log.map((l) => l.to)).toEqual([Role.BACKUP, Role.MASTER, Role.BACKUP]);
    }
  });

  it('an election thread held past the pacer\'s lease lets the adverts stop: the backup takes over, the master yields when it runs', () => {
    const { net, a, b } = pacedPair();
    const lease = pacerLeaseMs(I);
    a.held = true;
    net.run(lease - I);
    expect(b.role).toBe(Role.BACKUP); // the pacer carried it
    net.run(I + masterDown(100) + I);
    expect(b.role).toBe(Role.MASTER);
    a.release();
    net.run(0.01);
    expect(a.role).toBe(Role.BACKUP);
    expect(a.log.at(-1)?.reason).toMatch(/lease ran out/);
    net.run(100 * I);
    expect(net.masters().map((n) => n.id)).toEqual([1]);
  });

  it('a step-down (switchover, stop) stops the pacer and the backup takes over at once', () => {
    const { net, a, b } = pacedPair();
    expect(a.pacer?.pacing).toBe(true);
    a.election.switchover();
    expect(a.pacer?.pacing).toBe(false);
    net.run(I);
    expect([a.role, b.role]).toEqual([Role.BACKUP, Role.MASTER]);
    expect(b.pacer?.pacing).toBe(true);
    b.election.stop();
    expect(b.pacer?.pacing).toBe(false);
    net.run(I);
    expect(a.role).toBe(Role.MASTER);
  });
});

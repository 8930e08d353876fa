import { afterEach, describe, expect, it } from 'vitest';
import { cli } from './run-cli.js';
import type { SyncStatus } from '../../../src/node/control/index.js';
import type { TableDiff } from '../../../src/cli/commands/ct-diff.js';
import { CtStatus, ENTRY_RECORD_WORDS, TcpState } from '../../../src/node/conntrack/index.js';
import { ER_TCP } from '../../../src/node/conntrack/entry-record.js';
import { feedTraffic, startTestNode, writeNodeFiles, type TestNode } from '../daemon/fixture.js';
import { startSyncPair, syncSection, synced, until, type SyncPair } from '../daemon/sync-pair.js';

let p: SyncPair | null = null;
let t: TestNode | null = null;
afterEach(async () => {
  await p?.cleanup();
  await t?.cleanup();
  p = null;
  t = null;
});

/** Both tables hold the same entries (the peer's as REPLICATED). */
async function converged(pair: SyncPair, n: number): Promise<void> {
  await until(() => pair.a.node.engine.conntrack.table.count === n && pair.b.node.engine.conntrack.table.count === n, `${n} entries on both nodes`);
}

describe('twinwall sync status', () => {
  it('shows the peer, synced, lag, messages, bytes, NACKs, resyncs and drops; and the same as json', async () => {
    p = await startSyncPair();
    await synced(p);
    feedTraffic(p.a);
    await converged(p, 2);
    await until(() => p!.a.node.sync!.lagPercentile(99) >= 0, 'lag samples');
    const r = await cli(['--socket', p.a.socket, 'sync', 'status']);
    expect(r.code).toBe(0);
    const lines = r.out.trim().split('\n');
    expect(lines[0]).toMatch(/^node 1 on sync0 192\.168\.50\.1, multicast 225\.0\.0\.50:3780 \(mtu 1500\), up since \d{4}-/);
    expect(lines[1]).toMatch(/^peer: node 2, up since \S+, last contact \d+\.\d s ago$/);
    expect(lines[2]).toBe("synced: yes (this node holds the peer's whole table)");
    expect(lines[3]).toMatch(/^lag: p50 \d+(\.\d\d)? ms, p99 \d+(\.\d\d)? ms; \d+ of our messages not applied by the peer yet \(next seq \d+, peer applied \d+\)$/);
    expect(lines[4]).toMatch(/^messages: sent \d+ \(.*update \d+.*\), received \d+ \(.*report \d+.*\)$/);
    expect(lines[5]).toMatch(/^bytes: sent \d+, received \d+$/);
    expect(lines[6]).toBe('entries: sent 2 new / 0 updated / 0 destroyed; applied 0 new / 0 updated / 0 destroyed; 0 refused, 0 table full, 0 kept (our own live entry)');
    expect(lines[7]).toMatch(/^NACKs: sent 0, received 0; retransmitted 0 \(0 no longer held\); gaps 0$/);
    expect(lines[8]).toMatch(/^resyncs: requested \d+, served \d+, completed 1 \(0 entries swept\)$/);
    expect(lines[9]).toMatch(/^drops: \d+.*; auth failures 0, replays dropped \d+$/);

    const js = JSON.parse((await cli(['--socket', p.b.socket, 'sync', 'status', '-o', 'json'])).out) as SyncStatus;
    expect(js).toMatchObject({ nodeId: 2, peer: { id: 1, synced: true }, stats: { entriesApplied: { create: 2 } } });
  });

  it('says a peer was never heard, and refuses on a node without sync (exit 1)', async () => {
    p = await startSyncPair({ keys: [`${'3c'.repeat(32)}\n`, `${'7d'.repeat(32)}\n`] });
    await until(() => p!.a.node.sync!.stats.authFailures > 0, 'an authentication failure');
    const r = await cli(['--socket', p.a.socket, 'sync', 'status']);
    expect(r.out).toContain('peer: none heard yet\nsynced: no\nlag: no samples yet;');
    expect(r.out).toMatch(/drops: \d+ \(bad_mac \d+\); auth failures [1-9]/);
    t = await startTestNode();
    const off = await cli(['--socket', t.socket, 'sync', 'status']);
    expect(off.code).toBe(1);
    expect(off.err).toContain('SYNC_NOT_CONFIGURED: sync is not configured on this node');
  });
});

describe('twinwall sync resync', () => {
  it('asks the peer for a bulk resync that completes, and removes what the peer no longer has', async () => {
    p = await startSyncPair();
    await synced(p);
    feedTraffic(p.a);
    await converged(p, 2);
    const tb = p.b.node.engine.conntrack.table;
    // A stale replicated entry on b that a never had: only a resync can tell.
    const rec = new Uint32Array(ENTRY_RECORD_WORDS);
    tb.forEach((slot) => tb.exportEntry(slot, p!.b.node.engine.now(), rec, 0));
    rec[8] = (rec[8] & 0xffff) | (61000 << 16);
    rec[18] = (rec[18] & 0xffff0000) | 61000;
    tb.importEntry(rec, 0, p.b.node.engine.now(), CtStatus.REPLICATED);
    expect(tb.count).toBe(3);
    const done = p.b.node.sync!.stats.resyncsCompleted;
    const r = await cli(['--socket', p.b.socket, 'sync', 'resync']);
    expect([r.code, r.err]).toEqual([0, 'twinwall: bulk resync asked of the peer; watch `twinwall sync status` for its completion.\n']);
    await until(() => p!.b.node.sync!.stats.resyncsCompleted > done, 'the resync to complete');
    expect(tb.count).toBe(2);
    expect(p.b.node.sync!.stats.resyncSwept).toBe(1);
    t = await startTestNode();
    const off = await cli(['--socket', t.socket, 'sync', 'resync']);
    expect([off.code, off.err]).toEqual([1, expect.stringContaining('SYNC_NOT_CONFIGURED')]);
  });
});

describe('twinwall ct diff', () => {
  it('finds the tables equal once sync converged (exit 0), and lists an entry deleted on the peer (exit 1)', async () => {
    p = await startSyncPair();
    await synced(p);
    feedTraffic(p.a);
    await converged(p, 2);
    const s = ['--socket', p.a.socket, 'ct', 'diff', '--peer-socket', p.b.socket];
    const same = await cli(s);
    expect([same.code, same.out, same.err]).toEqual([0, 'tables equal: 2 entries on this node and on the peer\n', '']);

    // Delete the UDP entry on the standby only (its own deletes of the peer's entries are not sent back).
    const list = JSON.parse((await cli(['--socket', p.b.socket, 'ct', 'list', '-p', 'udp', '-o', 'json'])).out) as { id: number }[];
    expect((await cli(['--socket', p.b.socket, 'ct', 'delete', String(list[0].id)])).code).toBe(0);
    const d = await cli(s);
    expect(d.code).toBe(1);
    const lines = d.out.trim().split('\n');
    expect(lines[0]).toBe('missing on the peer (1), on this node only:');
    expect(lines[1]).toMatch(/^ {2}udp +17 +\d+ src=10\.1\.0\.6 dst=10\.2\.0\.53 sport=5353 dport=53 .*\[UNREPLIED\].* id=\d+$/);
    expect(lines[2]).toBe('tables differ: 1 missing on the peer, 0 extra on the peer, 0 differing (2 entries on this node, 1 on the peer)');
    expect(d.err).toBe('twinwall: tables differ: 1 missing on the peer, 0 extra on the peer, 0 differing (2 entries on this node, 1 on the peer)\n');

    // Seen from the peer the same entry is extra; as json.
    const back = await cli(['--socket', p.b.socket, 'ct', 'diff', '--peer-socket', p.a.socket, '-o', 'json']);
    expect(back.code).toBe(1);
    const js = JSON.parse(back.out) as TableDiff;
    expect(js).toMatchObject({ equal: false, here: { socket: p.b.socket, entries: 1 }, peer: { socket: p.a.socket, entries: 2 }, missing: [], differing: [] });
    expect(js.extra.map((e) => [e.proto, e.original.dport])).toEqual([['udp', 53]]);
    expect(js.extra[0]).not.toHaveProperty('record');
  });

  it('lists an entry that differs (TCP state) with the fields', async () => {
    p = await startSyncPair();
    await synced(p);
    feedTraffic(p.a);
    await converged(p, 2);
    // Change the standby's copy behind sync's back: its TCP state. Export, edit the state byte,
    // import over it, still REPLICATED (so the standby does not send it back).
    const tb = p.b.node.engine.conntrack.table;
    const now = p.b.node.engine.now();
    let changed = 0;
    tb.forEach((slot) => {
      if ((tb.tuples[tb.tupleOffset(slot, 0) + 9] & 0xff) !== 6) return;
      const rec = new Uint32Array(ENTRY_RECORD_WORDS);
      tb.exportEntry(slot, now, rec, 0);
      rec[ER_TCP] = (rec[ER_TCP] & ~0xff) | TcpState.TIME_WAIT;
      tb.importEntry(rec, 0, now, CtStatus.REPLICATED);
      changed++;
    });
    expect(changed).toBe(1);
    const d = await cli(['--socket', p.a.socket, 'ct', 'diff', '--peer-socket', p.b.socket]);
    expect(d.code).toBe(1);
    const lines = d.out.trim().split('\n');
    expect(lines[0]).toBe('differing (1):');
    expect(lines[1]).toMatch(/^ {2}tcp +6 +\d+ ESTABLISHED src=10\.1\.0\.5 /);
    expect(lines[2]).toMatch(/^ {2}tcp +6 +\d+ TIME_WAIT src=10\.1\.0\.5 .*\[REPLICATED\].* id=\d+ {2}\(peer\)$/);
    expect(lines[3]).toMatch(/^ {4}differ in: .*tcp state/);
  });

  it('exits 2 when the peer socket does not answer', async () => {
    t = await startTestNode();
    const r = await cli(['--socket', t.socket, 'ct', 'diff', '--peer-socket', '/tmp/twinwall-no-peer.sock']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('DAEMON_UNREACHABLE: cannot reach the twinwall daemon on /tmp/twinwall-no-peer.sock');
  });
});

describe('twinwall node with a sync section', () => {
  it('refuses a missing key file with its path before anything starts (exit 2)', async () => {
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = mkdtempSync(join(tmpdir(), 'tw-cli-sync-'));
    try {
      const { configPath } = writeNodeFiles(dir, undefined, { configExtra: syncSection(1).replace('group: 225.0.0.50', 'group: 10.0.0.50') });
      const r = await cli(['node', '--config', configPath]);
      expect(r.code).toBe(2);
      expect(r.err).toContain('CONFIG_INVALID');
      expect(r.err).toMatch(/\/sync\/keys\/0\/file \(line \d+, column \d+\): cannot read key file .*sync\.key: ENOENT/);
      expect(r.err).toMatch(/\/sync\/group \(line \d+, column \d+\): 10\.0\.0\.50 is not a multicast address/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

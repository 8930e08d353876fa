/**
 * The pair with failover as operators run it: `twinwall node --config FILE` in fw1 (priority 200)
 * and fw2 (100), each with sync and a failover section (adverts every 50 ms on inside0, outside0
 * and sync0; virtual addresses on inside0 and outside0). What an operator sees: `twinwall failover
 * status` on both, the virtual addresses on the master only, a planned switchover moving them,
 * a killed master replaced, SIGTERM releasing them; a real Prometheus scraping both with the
 * alert rules of deploy/.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { labAvailable, labRequired } from './netns.js';
import { LAB_ADDR } from './topology.js';
import { compileProject } from './compile.js';
import { DaemonPair, NAT_RULES as rules, VIP_IN, VIP_OUT, type Fw } from './daemon-pair.js';
import { LabPrometheus } from './prometheus.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const avail = labAvailable();
if (!avail.ok && labRequired) throw new Error(`TWINWALL_REQUIRE_LAB=1 but ${avail.why}`);


describe.skipIf(!avail.ok)('a twinwall pair with failover in the lab (two daemons)', () => {
  const pair = new DaemonPair('twfo-');
  let prom: LabPrometheus | null = null;
  const { topo, dir, daemons } = pair;
  const twinwall = (fw: Fw, ...args: string[]) => pair.twinwall(fw, ...args);
  const until = (what: string, ok: () => boolean, ms?: number): Promise<void> => pair.until(what, ok, ms);

  type Status = { role: string; priority: number; master: { id: number } | null; steps: { to: string; entries: number; error?: string }[] };
  const status = (fw: Fw): Status | null => {
    const r = twinwall(fw, 'failover', 'status', '-o', 'json');
    return r.code === 0 ? (JSON.parse(r.out) as Status) : null;
  };
  const holds = (fw: Fw): [boolean, boolean] => {
    const a = topo.exec(fw, 'ip', ['-4', '-o', 'addr', 'show']);
    return [a.includes(`${VIP_IN}/24`), a.includes(`${VIP_OUT}/24`)];
  };

  function start(fw: Fw, queue: number): void {
    pair.start(fw, [
      // fw2's main thread in SCHED_RR (node.realtimePriority), as conntrackd's Scheduler setting.
      `node: { name: lab-${fw}${fw === 'fw2' ? ', realtimePriority: 5' : ''} }`,
      `dataplane: { interfaces: [inside0, outside0], queue: ${queue} }`,
      `ruleset: ${rules}`,
      'conntrack: { maxEntries: 4096 }',
      `control: { socket: ${pair.sock(fw)} }`,
      `metrics: { listen: "${LAB_ADDR[fw].sync}:${fw === 'fw1' ? 9751 : 9752}" }`,
      'log: { level: info }',
      ...DaemonPair.pairSections(fw, { intervalMs: 50, vipIn: VIP_IN, vipOut: VIP_OUT }),
      `  notify: ${join(dir, 'notify.sh')}`,
    ]);
  }

  beforeAll(async () => {
    compileProject(root);
    topo.build();
    writeFileSync(join(dir, 'sync.key'), `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
    // The notify hook: one line per transition, as keepalived's notify scripts are used.
    writeFileSync(join(dir, 'notify.sh'), `#!/bin/sh\necho "$(hostname) $1 $2 $3" >> ${join(dir, 'notify.log')}\n`, { mode: 0o755 });
    start('fw1', 57);
    start('fw2', 58);
    for (const fw of ['fw1', 'fw2'] as const) await until(`${fw} answering on its socket`, () => existsSync(pair.sock(fw)) && status(fw) !== null);
  }, 90_000);

  afterAll(() => {
    prom?.stop();
    pair.cleanup();
  });

  it('elects fw1: it holds both virtual addresses, fw2 follows it and holds none', async () => {
    await until('fw1 master, fw2 backup', () => status('fw1')?.role === 'master' && status('fw2')?.role === 'backup');
    expect(status('fw2')?.master?.id).toBe(1);
    await until('the addresses on fw1', () => holds('fw1').every(Boolean));
    expect(holds('fw2')).toEqual([false, false]);
    expect(status('fw1')?.steps.at(-1)).toMatchObject({ to: 'master' });
    expect(status('fw1')?.steps.at(-1)?.error).toBeUndefined();
    const text = twinwall('fw2', 'failover', 'status');
    expect(text.out).toMatch(/^role: backup, priority 100$/m);
    expect(text.out).toMatch(/^master: node 1 \(priority 200\)$/m);
    // The role and the election's counters in /metrics, for the alert rules (no master, two masters).
    await new Promise((r) => setTimeout(r, 1100)); // the counters are fetched from the election thread every second
    const scrape = (fw: Fw): string => topo.exec(fw, 'curl', ['-sS', '--max-time', '5', `http://${LAB_ADDR[fw].sync}:${fw === 'fw1' ? 9751 : 9752}/metrics`]);
    const m1 = scrape('fw1');
    const m2 = scrape('fw2');
    expect(m1).toMatch(/^twinwall_failover_role\{role="master",node="lab-fw1"\} 1$/m);
    expect(m2).toMatch(/^twinwall_failover_role\{role="backup",node="lab-fw2"\} 1$/m);
    expect(m2).toMatch(/^twinwall_failover_role\{role="master",node="lab-fw2"\} 0$/m);
    expect(Number(/^twinwall_failover_adverts_received_total\{node="lab-fw2"\} (\d+)$/m.exec(m2)?.[1])).toBeGreaterThan(10);
    expect(Number(/^twinwall_failover_adverts_sent_total\{node="lab-fw1"\} (\d+)$/m.exec(m1)?.[1])).toBeGreaterThan(10);
    expect(m1).toMatch(/^twinwall_failover_priority\{node="lab-fw1"\} 200$/m);
    // How late the master's advert timer ran at worst: some, and under three intervals (no yield).
    const late = Number(/^twinwall_failover_advert_late_max_seconds\{node="lab-fw1"\} ([0-9.e-]+)$/m.exec(m1)?.[1]);
    expect(late).toBeGreaterThan(0);
    expect(late).toBeLessThan(0.15);
    expect(m1).toMatch(/^twinwall_failover_adverts_late_total\{node="lab-fw1"\} \d+$/m);
  });

  it('a real Prometheus scrapes both nodes: role and sync series come back from its API, the pair\'s alert rules load and none fires', async () => {
    // In fw1's namespace: it reaches both nodes on the sync network.
    prom = new LabPrometheus(topo, 'fw1', dir, [`${LAB_ADDR.fw1.sync}:9751`, `${LAB_ADDR.fw2.sync}:9752`]);
    prom.start();
    const p = prom;
    await until('Prometheus scraped both nodes', () => p.query('up{job="twinwall"} == 1').length === 2, 30_000);
    await until('role series in Prometheus', () => p.valueOf('twinwall_failover_role{role="master"}', 'lab-fw1') === '1', 10_000);
    expect(p.valueOf('twinwall_failover_role{role="master"}', 'lab-fw2')).toBe('0');
    expect(p.valueOf('twinwall_failover_role{role="backup"}', 'lab-fw2')).toBe('1');
    expect(p.valueOf('twinwall_sync_peer_synced', 'lab-fw2')).toBe('1');
    expect(p.query('twinwall_sync_lag_seconds_count').map((x) => x.metric.node).sort()).toEqual(['lab-fw1', 'lab-fw2']);
    expect(p.query('sum(twinwall_failover_role{role="master"})')[0]?.value[1]).toBe('1');
    // The rules from deploy/ are loaded, and with one master nothing fires.
    expect(p.rules().map((r) => r.name)).toContain('TwinwallTwoMasters');
    expect(p.alerts().filter((a) => a.labels.alertname === 'TwinwallNoMaster' || a.labels.alertname === 'TwinwallTwoMasters')).toEqual([]);
  }, 60_000);

  it('a planned switchover moves the addresses to fw2, and fw1 stays backup', async () => {
    const r = twinwall('fw1', 'failover', 'switchover');
    expect(r.code, r.err).toBe(0);
    await until('fw2 master with the addresses', () => status('fw2')?.role === 'master' && holds('fw2').every(Boolean));
    expect(holds('fw1')).toEqual([false, false]);
    await new Promise((r2) => setTimeout(r2, 500));
    expect(status('fw1')?.role).toBe('backup');
    // The backup refuses a switchover: it is not master.
    const again = twinwall('fw1', 'failover', 'switchover');
    expect(again.code).not.toBe(0);
    expect(again.err).toMatch(/not master/);
  });

  it('a killed master (SIGKILL) is replaced: fw1 takes over on its peer link (the dead process closed it) and claims the addresses', async () => {
    const before = status('fw1') as Status & { peerLink: { up: boolean } | null };
    expect(before.peerLink?.up).toBe(true);
    // The master holds the link fw1 made to it in its death watch (death-watch.ts).
    const dw = (status('fw2') as Status & { deathWatch: { running: boolean; added: number; released: number; failed: number } | null }).deathWatch;
    expect(dw).toMatchObject({ running: true, failed: 0 });
    expect(dw!.added - dw!.released).toBe(1);
    // Its adverts leave from the pacer's real-time thread (advert-pacer.ts); the backup's is idle.
    type Pacer = { pacer: { scheduling: string; pacing: boolean; sent: number; errors: number } | null };
    const pm = (status('fw2') as Status & Pacer).pacer;
    expect(pm).toMatchObject({ scheduling: 'fifo', pacing: true, errors: 0 });
    expect(pm!.sent).toBeGreaterThan(10);
    expect((status('fw1') as Status & Pacer).pacer).toMatchObject({ scheduling: 'fifo', pacing: false });
    // fw2's main thread runs SCHED_RR 5 (node.realtimePriority); fw1's normal scheduling.
    const sched = (pid: number | undefined): [number, number] => {
      const stat = readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return [Number(f[41 - 3]), Number(f[40 - 3])];
    };
    expect(sched(daemons.fw2?.child.pid)).toEqual([2, 5]);
    expect(sched(daemons.fw1?.child.pid)).toEqual([0, 0]);
    daemons.fw2?.child.kill('SIGKILL');
    await daemons.fw2?.exited;
    await until('fw1 master with the addresses', () => status('fw1')?.role === 'master' && holds('fw1').every(Boolean), 5000);
    // Taken over because the link closed, not after the master-down time.
    const after = status('fw1') as Status & { stats: { peerGone: number } };
    expect(after.stats.peerGone).toBe(1);
    // Shut down by its watcher when the process died, before its memory was torn down.
    await until('the death watch\'s report', () => pair.log.includes('[fw2] twinwall-deathwatch: the daemon died: 1 peer link shut down'), 2000);
    expect(readFileSync(join(dir, 'notify.log'), 'utf8')).toMatch(/master backup master 2's process is gone \(its peer link closed\)/);
  });

  it('the killed node kept its addresses; restarted, it releases them at once and comes back as backup', async () => {
    expect(holds('fw2')).toEqual([true, true]); // SIGKILL: nothing released them
    start('fw2', 58);
    await until('fw2 back as backup without the addresses', () => status('fw2')?.role === 'backup' && !holds('fw2').some(Boolean), 20_000);
    expect(status('fw1')?.role).toBe('master');
    expect(holds('fw1')).toEqual([true, true]);
  });

  it('SIGTERM: the master steps down and releases its addresses, exit 0; the notify hook saw every transition', async () => {
    daemons.fw1?.child.kill('SIGTERM');
    expect(await daemons.fw1?.exited).toBe(0);
    expect(holds('fw1')).toEqual([false, false]);
    const notes = topo.exec('fw1', 'cat', [join(dir, 'notify.log')]);
    expect(notes).toMatch(/ master backup /);
    expect(notes).toMatch(/ backup master switchover/);
    expect(notes).toMatch(/ init master stop/);
  });
});

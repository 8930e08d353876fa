/**
 * deploy/: the alert rules pass `promtool check rules` and their own unit tests (`promtool test
 * rules`), the scrape config passes `promtool check config`, the pair's example configs are
 * accepted by the daemon's config parser, the rules and the dashboard only use series a node
 * exports, and the systemd unit starts the node as the README says.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfigFile } from '../../src/node/daemon/index.js';

const deploy = fileURLToPath(new URL('../../deploy/', import.meta.url));
const metricsSrc = fileURLToPath(new URL('../../src/node/metrics/', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'tw-deploy-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function promtool(...args: string[]): string {
  return execFileSync('promtool', args, { cwd: join(deploy, 'prometheus'), encoding: 'utf8' });
}

/** Every twinwall_* series name the metrics code registers. */
function exported(): Set<string> {
  const names = new Set<string>();
  for (const f of readdirSync(metricsSrc)) {
    for (const m of readFileSync(join(metricsSrc, f), 'utf8').matchAll(/'(twinwall_[a-z_]+)'/g)) names.add(m[1]);
  }
  return names;
}

/** twinwall_* names used in a text, histogram suffixes taken off. */
function used(text: string): string[] {
  return [...new Set([...text.matchAll(/\b(twinwall_[a-z_]+)/g)].map((m) => m[1].replace(/_(bucket|count|sum)$/, '')))];
}

describe('deploy/', () => {
  it('alert rules pass promtool check and their unit tests; the scrape config is valid', () => {
    expect(promtool('check', 'rules', 'twinwall-rules.yml')).toMatch(/SUCCESS: 9 rules found/);
    expect(promtool('test', 'rules', 'twinwall-rules.test.yml')).toMatch(/SUCCESS/);
    expect(promtool('check', 'config', 'prometheus.yml')).toMatch(/valid prometheus config/);
  });

  it('rules and dashboard use only series a node exports', () => {
    const have = exported();
    expect(have.has('twinwall_failover_role')).toBe(true);
    const rules = used(readFileSync(join(deploy, 'prometheus/twinwall-rules.yml'), 'utf8'));
    const dash = readFileSync(join(deploy, 'grafana/twinwall-dashboard.json'), 'utf8');
    const panels = (JSON.parse(dash) as { panels: { targets: { expr: string }[] }[] }).panels;
    expect(panels.length).toBeGreaterThan(5);
    const inDash = used(panels.flatMap((p) => p.targets.map((t) => t.expr)).join('\n'));
    for (const name of [...rules, ...inDash]) expect(have.has(name), `${name} is not exported by src/node/metrics`).toBe(true);
  });

  it('the pair example configs are accepted, differing only where a pair must', () => {
    mkdirSync(join(tmp, 'pair'));
    copyFileSync(join(deploy, 'examples/rules.yaml'), join(tmp, 'rules.yaml'));
    writeFileSync(join(tmp, 'pair/sync.key'), `${'ab'.repeat(32)}\n`);
    const [a, b] = ['fw-a', 'fw-b'].map((n) => {
      copyFileSync(join(deploy, `examples/pair/${n}.yaml`), join(tmp, `pair/${n}.yaml`));
      return loadConfigFile(join(tmp, `pair/${n}.yaml`));
    });
    expect([a.sync?.nodeId, b.sync?.nodeId]).toEqual([1, 2]);
    expect([a.failover?.priority, b.failover?.priority]).toEqual([200, 100]);
    expect(a.failover?.virtualAddresses).toEqual(b.failover?.virtualAddresses);
    expect(a.failover?.notify).toBe(join(tmp, 'pair/notify.sh'));
    expect(a.dataplane.excludedUdpPorts).toEqual([3780, 3781]);
  });

  it('the systemd unit runs `twinwall node --config`, reloads with SIGHUP, stops with SIGTERM, restarts on failure', () => {
    const unit = readFileSync(join(deploy, 'systemd/twinwall.service'), 'utf8');
    expect(unit).toMatch(/^ExecStart=\/usr\/bin\/node \/opt\/twinwall\/dist\/src\/cli\/main\.js node --config \/etc\/twinwall\/node\.yaml$/m);
    expect(unit).toMatch(/^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
    expect(unit).toMatch(/^KillSignal=SIGTERM$/m);
    expect(unit).toMatch(/^Restart=on-failure$/m);
    // Network administration, and the election thread's nice value (failover.threadNice).
    expect(unit).toMatch(/^CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW CAP_SYS_NICE$/m);
  });
});

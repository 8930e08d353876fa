import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/node/daemon/index.js';
import { configIssues } from './config-issues.js';

const dir = mkdtempSync(join(tmpdir(), 'tw-failover-cfg-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(join(dir, 'hex.key'), `${'ab'.repeat(32)}\n`);

const BASE = `
node: { name: fw-a }
dataplane: { interfaces: [inside0, outside0], queue: 2 }
ruleset: rules.yaml
`;
const SYNC = `
sync:
  nodeId: 1
  interface: sync0
  address: 192.168.50.1
  group: 225.0.0.50
  keys: [{ id: 1, file: hex.key }]
  sendKey: 1
`;
const FAILOVER = `
failover:
  priority: 200
  links: [inside0, outside0, sync0]
  virtualAddresses:
    - { interface: inside0, cidr: 10.50.1.1/24 }
    - { interface: outside0, cidr: 198.51.100.10/24 }
  notify: notify.sh
`;

const issues = (text: string): ReturnType<typeof configIssues> => configIssues(text, dir);

describe('node config: failover section', () => {
  it('is optional', () => {
    expect(parseConfig(BASE + SYNC, dir).failover).toBeNull();
  });

  it('resolves defaults and the notify script, and keeps the election port out of the queue', () => {
    const c = parseConfig(BASE + SYNC + FAILOVER, dir);
    expect(c.failover).toEqual({
      priority: 200, advertIntervalMs: 100, preempt: true, preemptDelayMs: 0, groupId: 1, group: '225.0.0.51', port: 3781,
      links: ['inside0', 'outside0', 'sync0'], unicastPeers: null,
      virtualAddresses: [{ interface: 'inside0', cidr: '10.50.1.1/24' }, { interface: 'outside0', cidr: '198.51.100.10/24' }],
      notify: join(dir, 'notify.sh'), stallMs: 500, threadNice: -10, realtimePriority: 10, peerLink: true,
      // By default the data interfaces (FAULT when down) and the sync link (a weight).
      track: [{ interface: 'inside0', weight: null }, { interface: 'outside0', weight: null }, { interface: 'sync0', weight: 50 }],
    });
    const own = parseConfig(BASE + SYNC + FAILOVER + '  track: [{ interface: outside0 }, { interface: sync0, weight: 120 }]\n', dir);
    expect(own.failover?.track).toEqual([{ interface: 'outside0', weight: null }, { interface: 'sync0', weight: 120 }]);
    expect(c.dataplane.excludedUdpPorts).toEqual([3780, 3781]);
  });

  it('takes unicast peers for networks without multicast: one per link, refused whole otherwise', () => {
    const peers = '  unicastPeers:\n    - { interface: inside0, address: 10.50.1.3 }\n    - { interface: outside0, address: 198.51.100.3 }\n    - { interface: sync0, address: 192.168.50.2 }\n';
    const c = parseConfig(BASE + SYNC + FAILOVER + peers, dir);
    expect(c.failover?.unicastPeers).toEqual({ inside0: '10.50.1.3', outside0: '198.51.100.3', sync0: '192.168.50.2' });
    const bad = '  unicastPeers:\n    - { interface: inside0, address: 224.0.0.18 }\n    - { interface: eth9, address: 10.0.0.9 }\n    - { interface: sync0, address: 192.168.50.2 }\n';
    const got = issues(BASE + SYNC + FAILOVER + bad);
    expect(got.map((i) => i.path)).toEqual(['/failover/unicastPeers/0/address', '/failover/unicastPeers/1/interface', '/failover/links/1']);
    expect(got[0].message).toMatch(/multicast address; give the peer's own address on inside0/);
    expect(got[1].message).toMatch(/eth9 is not one of failover.links/);
    expect(got[2].message).toMatch(/outside0 has no entry in failover.unicastPeers/);
  });

  it('refuses it whole without sync, with a bad group, the sync port, a link twice or a bad address, each with its path and line', () => {
    expect(issues(BASE + FAILOVER)).toEqual([{ path: '/failover', message: expect.stringMatching(/needs the sync section/), line: 7, column: 3 }]);
    const bad = FAILOVER
      .replace('priority: 200', 'priority: 200\n  group: 10.0.0.1\n  port: 3780')
      .replace('[inside0, outside0, sync0]', '[inside0, inside0]')
      .replace('cidr: 198.51.100.10/24', 'cidr: 198.51.100.10');
    const got = issues(BASE + SYNC + bad);
    expect(got.map((i) => i.path)).toEqual(['/failover/group', '/failover/port', '/failover/links/1', '/failover/virtualAddresses/1']);
    expect(got[0].message).toMatch(/not a multicast address/);
    expect(got[1].message).toMatch(/the sync port/);
    expect(got[3].message).toMatch(/prefix length/);
    expect(got.every((i) => typeof i.line === 'number')).toBe(true);
    expect(issues(BASE + SYNC + FAILOVER.replace('priority: 200', 'priority: 255')).map((i) => i.path)).toEqual(['/failover/priority']);
    expect(issues(BASE + SYNC + FAILOVER + '  realtimePriority: 100\n').map((i) => i.path)).toEqual(['/failover/realtimePriority']);
    expect(parseConfig(BASE + SYNC + FAILOVER + '  realtimePriority: 0\n', dir).failover?.realtimePriority).toBe(0);
  });

  it('node.realtimePriority: the main thread in SCHED_RR (default normal); refused unless below the advert pacer, with the path', () => {
    const rt = (n: number) => BASE.replace(/node: \{ name: ([^ ]+) \}/, `node: { name: $1, realtimePriority: ${n} }`);
    expect(rt(5)).toContain('realtimePriority: 5');
    expect(parseConfig(BASE + SYNC + FAILOVER, dir).realtimePriority).toBe(0);
    expect(parseConfig(rt(5) + SYNC + FAILOVER, dir).realtimePriority).toBe(5);
    const high = issues(rt(10) + SYNC + FAILOVER);
    expect(high.map((i) => i.path)).toEqual(['/node/realtimePriority']);
    expect(high[0].message).toMatch(/not below failover.realtimePriority \(10\)/);
    expect(issues(rt(120) + SYNC).map((i) => i.path)).toEqual(['/node/realtimePriority']);
    // Without failover any priority is allowed.
    expect(parseConfig(rt(50) + SYNC, dir).realtimePriority).toBe(50);
  });
});

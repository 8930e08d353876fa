import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/node/daemon/index.js';
import { configIssues } from './config-issues.js';

const dir = mkdtempSync(join(tmpdir(), 'tw-sync-cfg-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(join(dir, 'hex.key'), `${'ab'.repeat(32)}\n`);
writeFileSync(join(dir, 'raw.key'), Buffer.from('raw secret of twenty bytes!!'));
writeFileSync(join(dir, 'short.key'), 'abcdef0123\n');
writeFileSync(join(dir, 'odd.key'), `${'a'.repeat(33)}\n`);

const BASE = `
node: { name: fw-a }
dataplane: { interfaces: [inside0, outside0], queue: 2, excludedUdpPorts: [3799] }
ruleset: rules.yaml
`;

const SYNC = `
sync:
  nodeId: 1
  interface: sync0
  address: 192.168.50.1
  group: 225.0.0.50
  keys:
    - { id: 1, file: hex.key }
    - { id: 2, file: raw.key }
  sendKey: 1
`;

const issues = (text: string): ReturnType<typeof configIssues> => configIssues(text, dir);

describe('node config: sync section', () => {
  it('is optional: without it the node runs alone', () => {
    expect(parseConfig(BASE, dir).sync).toBeNull();
  });

  it('resolves defaults, reads hex and raw keys relative to the config, and keeps the sync port out of the queue', () => {
    const c = parseConfig(BASE + SYNC, dir);
    expect(c.sync).toMatchObject({
      nodeId: 1, interface: 'sync0', address: '192.168.50.1', group: '225.0.0.50', peer: null, port: 3780, mtu: 1500, sendKey: 1, tuning: {}, exempt: [],
    });
    expect(c.sync?.keys.map((k) => [k.id, k.secret.length])).toEqual([[1, 32], [2, 28]]);
    expect(c.sync?.keys[0].secret.toString('hex')).toBe('ab'.repeat(32));
    expect(c.dataplane.excludedUdpPorts).toEqual([3799, 3780]);
    // Already listed: not twice.
    const again = parseConfig(BASE.replace('[3799]', '[3780]') + SYNC, dir);
    expect(again.dataplane.excludedUdpPorts).toEqual([3780]);
  });

  it('takes unicast, a port, an MTU, tuning and exemptions', () => {
    const c = parseConfig(`${BASE}${SYNC.replace('group: 225.0.0.50', 'peer: 192.168.50.2')}  port: 3790
  mtu: 9000
  flushMs: 0
  maxInFlight: 64
  windowSize: 1024
  resyncRetryMs: 250
  exempt:
    - { proto: udp, dst: 10.0.0.53 }
    - { proto: tcp, state: ESTABLISHED, src: 10.9.0.0/16 }
`, dir);
    expect(c.sync).toMatchObject({ group: null, peer: '192.168.50.2', port: 3790, mtu: 9000, tuning: { flushMs: 0, maxInFlight: 64, windowSize: 1024, resyncRetryMs: 250 } });
    expect(c.sync?.exempt).toEqual([{ proto: 'udp', dst: '10.0.0.53' }, { proto: 'tcp', state: 'ESTABLISHED', src: '10.9.0.0/16' }]);
    expect(c.dataplane.excludedUdpPorts).toEqual([3799, 3790]);
  });

  it('refuses bad values whole, each with its path and line', () => {
    const errs = issues(`${BASE}
sync:
  nodeId: 0
  interface: "sync 0"
  address: 192.168.50.1
  group: 225.0.0.50
  mtu: 100
  keys: [{ id: 1, file: hex.key, colour: red }]
  sendKey: 1
  flushMs: -1
  bogus: 1
`);
    expect(errs.map((e) => e.path)).toEqual(expect.arrayContaining([
      '/sync/nodeId', '/sync/interface', '/sync/mtu', '/sync/keys/0/colour', '/sync/flushMs', '/sync/bogus',
    ]));
    expect(errs.find((e) => e.path === '/sync/mtu')?.line).toBe(11);
  });

  it('refuses a missing key file and a short key with the path of the key and the reason', () => {
    const errs = issues(BASE + SYNC.replace('hex.key', 'nope.key').replace('raw.key', 'short.key'));
    const byPath = Object.fromEntries(errs.map((e) => [e.path, e.message]));
    expect(byPath['/sync/keys/0/file']).toMatch(/cannot read key file .*nope\.key: ENOENT.*openssl rand -hex 32/);
    expect(byPath['/sync/keys/1/file']).toMatch(/short\.key holds 5 bytes; a sync key needs at least 16/);
    expect(errs.find((e) => e.path === '/sync/keys/0/file')?.line).toBe(12);
  });

  it('refuses an odd number of hex digits', () => {
    const errs = issues(BASE + SYNC.replace('hex.key', 'odd.key'));
    expect(errs).toEqual([expect.objectContaining({ path: '/sync/keys/0/file', message: expect.stringContaining('33 hex digits, an odd number') })]);
  });

  it('wants exactly one of group and peer, each of the right kind', () => {
    expect(issues(BASE + SYNC.replace('  group: 225.0.0.50\n', ''))).toEqual([expect.objectContaining({ path: '/sync', message: expect.stringContaining('give group') })]);
    expect(issues(BASE + SYNC.replace('group: 225.0.0.50', 'group: 225.0.0.50\n  peer: 192.168.50.2')))
      .toEqual([expect.objectContaining({ path: '/sync/peer', message: expect.stringContaining('not both') })]);
    expect(issues(BASE + SYNC.replace('group: 225.0.0.50', 'group: 10.0.0.50')))
      .toEqual([expect.objectContaining({ path: '/sync/group', message: expect.stringContaining('not a multicast address') })]);
    expect(issues(BASE + SYNC.replace('group: 225.0.0.50', 'peer: 192.168.50.1')))
      .toEqual([expect.objectContaining({ path: '/sync/peer', message: expect.stringContaining("this node's own address") })]);
    expect(issues(BASE + SYNC.replace('address: 192.168.50.1', 'address: 192.168.50.300')).map((e) => e.path)).toEqual(['/sync/address']);
    expect(issues(BASE + SYNC.replace('address: 192.168.50.1', 'address: 239.1.1.1')).map((e) => e.path)).toEqual(['/sync/address']);
  });

  it('refuses duplicate key ids, a sending key that is not configured, and a window too large', () => {
    const errs = issues(BASE + SYNC.replace('id: 2', 'id: 1').replace('sendKey: 1', 'sendKey: 9') + '  mtu: 65535\n  windowSize: 65536\n');
    expect(errs.map((e) => e.path)).toEqual(['/sync/keys/1/id', '/sync/sendKey', '/sync/windowSize']);
    expect(errs[1].message).toContain('key id 9 is not among keys (1)');
  });

  it('refuses bad exemption rules with the path of the field', () => {
    const errs = issues(`${BASE}${SYNC}  exempt:
    - { src: 10.0.0.0/33 }
    - { state: ESTABLISHED }
    - { proto: sctpx }
    - {}
`);
    expect(errs.map((e) => e.path)).toEqual(['/sync/exempt/0/src', '/sync/exempt/1/state', '/sync/exempt/2/proto', '/sync/exempt/3']);
    expect(errs[1].message).toContain('add proto: tcp');
    expect(errs[1].line).toBe(17);
  });
});

describe('the example config', () => {
  it('parses with its sync section uncommented', async () => {
    const { readFileSync } = await import('node:fs');
    const text = readFileSync(new URL('../../../deploy/examples/node.yaml', import.meta.url), 'utf8');
    const lines = text.split('\n');
    const from = lines.indexOf('# sync:');
    expect(from).toBeGreaterThan(0);
    let to = from;
    while (lines[to + 1]?.startsWith('#  ')) to++;
    const uncommented = [...lines.slice(0, from), ...lines.slice(from, to + 1).map((l) => l.slice(2)), ...lines.slice(to + 1)].join('\n');
    writeFileSync(join(dir, 'sync.key'), `${'5a'.repeat(32)}\n`);
    const c = parseConfig(uncommented, dir, 'node.yaml');
    expect(c.sync).toMatchObject({ nodeId: 1, group: '225.0.0.50', port: 3780, exempt: [{ proto: 'udp', dst: '10.0.0.53' }] });
    expect(c.dataplane.excludedUdpPorts).toEqual([3780]);
  });
});

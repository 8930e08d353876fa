import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, ConfigFileError, DEFAULT_CONTROL_SOCKET, loadConfigFile, parseConfig } from '../../../src/node/daemon/index.js';
import { configIssues } from './config-issues.js';

const GOOD = `
node: { name: fw-a }
dataplane: { interfaces: [inside0, outside0], queue: 2, failOpen: true }
ruleset: rules.yaml
conntrack:
  maxEntries: 4096
  timeouts: { tcpEstablished: 3600, udpUnreplied: 10 }
  tcpLiberal: true
metrics: { listen: "[::]:9720" }
`;

const issues = (text: string): ReturnType<typeof configIssues> => configIssues(text, '/etc/twinwall');

describe('node config', () => {
  it('resolves defaults, seconds to ms and relative paths', () => {
    const c = parseConfig(GOOD, '/etc/twinwall');
    expect(c.name).toBe('fw-a');
    expect(c.rulesetPath).toBe('/etc/twinwall/rules.yaml');
    expect(c.dataplane).toEqual({ interfaces: ['inside0', 'outside0'], queue: 2, failOpen: true, excludedUdpPorts: [] });
    expect(c.conntrack.maxEntries).toBe(4096);
    // Preallocated by default: a growth of the table later would rehash it all in one go.
    expect(c.conntrack.initialCapacity).toBe(4096);
    // ...and its memory touched at start (no page faults while a resync fills it).
    expect(c.conntrack.prefault).toBe(true);
    expect(c.conntrack.timeouts).toEqual({ udpUnreplied: 10_000 });
    expect(c.conntrack.tcp).toEqual({ timeouts: { established: 3_600_000 }, liberal: true });
    expect(c.controlSocket).toBe(DEFAULT_CONTROL_SOCKET);
    expect(c.metrics).toEqual({ host: '::', port: 9720 });
    expect(c.logLevel).toBe('info');
  });

  it('refuses a bad config whole, with every error path and line', () => {
    const errs = issues(`
node: { name: "fw a" }
dataplane: { interfaces: [], queue: 70000 }
ruleset: rules.yaml
conntrack: { maxEntries: 2, timeouts: { tcpEstablshed: 10 } }
metrics: { listen: "localhost" }
log: { level: loud }
colour: blue
`);
    const paths = errs.map((e) => e.path);
    expect(paths).toEqual(expect.arrayContaining([
      '/node/name', '/dataplane/interfaces', '/dataplane/queue', '/conntrack/maxEntries',
      '/conntrack/timeouts/tcpEstablshed', '/metrics/listen', '/log/level', '/colour',
    ]));
    expect(errs.find((e) => e.path === '/dataplane/queue')?.line).toBe(3);
    try {
      parseConfig('node: {}', '/x', 'node.yaml');
    } catch (e) {
      const err = e as ConfigError;
      expect(err.code).toBe('CONFIG_INVALID');
      expect(err.message).toMatch(/^node.yaml: config refused, \d+ errors/);
      expect(err.message).toContain('/node/name');
      expect(err.message).toContain('/dataplane');
      expect(err.message).toContain('/ruleset');
    }
  });

  it('refuses a port above 65535 and YAML syntax errors with a line', () => {
    expect(issues(GOOD.replace('9720', '99999'))).toEqual([expect.objectContaining({ path: '/metrics/listen' })]);
    const syntax = issues('node: { name: [\n');
    expect(syntax[0].message).toMatch(/YAML syntax/);
    expect(syntax[0].line).toBeGreaterThan(0);
  });

  it('reads a file and names it when missing', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tw-cfg-'));
    try {
      writeFileSync(join(dir, 'node.yaml'), GOOD);
      expect(loadConfigFile(join(dir, 'node.yaml')).rulesetPath).toBe(join(dir, 'rules.yaml'));
      expect(() => loadConfigFile(join(dir, 'missing.yaml'))).toThrow(ConfigFileError);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  it('accepts the example config', () => {
    const c = loadConfigFile(new URL('../../../deploy/examples/node.yaml', import.meta.url).pathname);
    expect(c.name).toBe('fw-a');
    expect(c.dataplane.excludedUdpPorts).toEqual([3780]);
  });
});

import { EventEmitter } from 'node:events';
import { writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { RulesetError } from '../../../src/node/filter/index.js';
import { FirewallNode, NodeStateError, parseConfig, runUntilSignal } from '../../../src/node/daemon/index.js';
import { ControlClient } from '../../../src/node/control/index.js';
import { BAD_RULES, FakeDataplane, RULES_NO_DNS, feedTraffic, startTestNode, type TestNode } from './fixture.js';

let t: TestNode | null = null;
const fwd = (n: TestNode) => n.node.engine.filter.counters().find((c) => c.name === 'forward')!;
afterEach(async () => {
  await t?.cleanup();
  t = null;
});

describe('FirewallNode', () => {
  it('starts the data plane, control socket and metrics; stops the data plane first', async () => {
    t = await startTestNode();
    expect(t.dataplane.started).toBe(1);
    expect(t.node.state).toBe('running');
    expect(t.node.metricsAddress()?.port).toBeGreaterThan(0);
    const stats = await new ControlClient(t.socket).call<{ node: string }>('GET', '/stats');
    expect(stats.node).toBe('fw-test');
    expect(t.logs.some((l) => l.msg === 'node started')).toBe(true);
    await t.node.stop();
    expect(t.dataplane.stopped).toBe(1);
    expect(t.node.state).toBe('stopped');
    await expect(new ControlClient(t.socket).call('GET', '/stats')).rejects.toMatchObject({ code: 'DAEMON_UNREACHABLE' });
    await expect(t.node.start()).rejects.toBeInstanceOf(NodeStateError);
  });

  it('refuses a bad ruleset before anything starts', () => {
    const dir = '/tmp';
    const config = parseConfig('node: {name: x}\ndataplane: {interfaces: [eth0], queue: 0}\nruleset: /nonexistent/rules.yaml\n', dir);
    const dp = new FakeDataplane();
    expect(() => new FirewallNode({ config, dataplane: () => dp })).toThrow(/cannot read ruleset file/);
    expect(dp.started).toBe(0);
  });

  it('SIGHUP reloads the ruleset atomically; a bad one is logged and the old one keeps running', async () => {
    t = await startTestNode();
    const signals = new EventEmitter();
    const done = runUntilSignal(t.node, signals);
    feedTraffic(t);
    expect(fwd(t).rules[3].packets).toBe(1); // dns accepted

    writeFileSync(t.rulesPath, BAD_RULES);
    signals.emit('SIGHUP');
    const refused = t.logs.find((l) => typeof l.msg === 'string' && l.msg.startsWith('ruleset reload refused'));
    expect(refused?.code).toBe('RULESET_INVALID');
    expect((refused?.errors as { path: string }[]).map((e) => e.path)).toEqual(
      expect.arrayContaining(['/chains/forward/policy', '/chains/forward/rules/0/match/dport']),
    );
    // The old ruleset still runs, counters and all.
    expect(fwd(t).rules[3].packets).toBe(1);
    expect(t.node.ruleset().text).not.toContain('maybe');

    writeFileSync(t.rulesPath, RULES_NO_DNS);
    signals.emit('SIGHUP');
    expect(t.node.ruleset().text).toBe(RULES_NO_DNS);
    expect(fwd(t).rules[3].packets).toBe(0);

    signals.emit('SIGTERM');
    await done;
    expect(t.dataplane.stopped).toBe(1);
    expect(signals.listenerCount('SIGHUP')).toBe(0);
  });

  it('reload() reports a missing file without stopping', async () => {
    t = await startTestNode();
    const { rmSync } = await import('node:fs');
    rmSync(t.rulesPath);
    const r = t.node.reload();
    expect(r.ok).toBe(false);
    expect(r.ok === false && r.error.code).toBe('RULESET_FILE_UNREADABLE');
    expect(() => t!.node.applyRuleset(BAD_RULES, 'x')).toThrow(RulesetError);
  });

  it('ticks the engine periodically (entries expire)', async () => {
    t = await startTestNode();
    feedTraffic(t);
    expect(t.node.engine.conntrack.table.count).toBe(2);
    t.clock.now += 10 * 86_400_000;
    t.node.engine.tick();
    expect(t.node.engine.conntrack.table.count).toBe(0);
  });
});

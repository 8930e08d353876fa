import { afterEach, describe, expect, it } from 'vitest';
import { feedTraffic, startTestNode, type TestNode } from '../daemon/fixture.js';
import { parseExposition, value } from './exposition.js';

let t: TestNode | null = null;
afterEach(async () => {
  await t?.cleanup();
  t = null;
});

describe('/metrics', () => {
  it('parses as Prometheus text and counts what the engine did', async () => {
    t = await startTestNode();
    const fed = feedTraffic(t);
    const addr = t.node.metricsAddress()!;
    const res = await fetch(`http://127.0.0.1:${addr.port}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const { samples, types } = parseExposition(await res.text());

    expect(types.get('twinwall_packets_total')).toBe('counter');
    expect(types.get('twinwall_conntrack_entries')).toBe('gauge');
    expect(samples.every((s) => s.labels.node === 'fw-test')).toBe(true);
    expect(value(samples, 'twinwall_packets_total', { verdict: 'accept' })).toBe(fed.accepted);
    expect(value(samples, 'twinwall_packets_total', { verdict: 'drop' })).toBe(fed.dropped);
    expect(fed).toMatchObject({ accepted: 4, dropped: 1 });
    const s = t.node.engine.stats;
    expect(value(samples, 'twinwall_bytes_total', { verdict: 'accept' })).toBe(s.acceptedBytes);
    expect(value(samples, 'twinwall_bytes_total', { verdict: 'drop' })).toBe(s.droppedBytes);
    expect(s.acceptedBytes + s.droppedBytes).toBe(fed.bytes);
    expect(value(samples, 'twinwall_drops_total', { reason: 'ruleset' })).toBe(1);
    expect(value(samples, 'twinwall_drops_total', { reason: 'table_full' })).toBe(0);
    expect(value(samples, 'twinwall_drops_total', { reason: 'queue_overflow' })).toBe(7);
    expect(value(samples, 'twinwall_drops_total', { reason: 'queue_socket_overflow' })).toBe(2);
    expect(value(samples, 'twinwall_conntrack_entries', { proto: 'tcp', state: 'ESTABLISHED' })).toBe(1);
    expect(value(samples, 'twinwall_conntrack_entries', { proto: 'udp', state: 'UNREPLIED' })).toBe(1);
    expect(value(samples, 'twinwall_conntrack_max')).toBe(1024);
    expect(value(samples, 'twinwall_conntrack_fill_ratio')).toBeCloseTo(2 / 1024);
    expect(value(samples, 'twinwall_rule_packets_total', { chain: 'forward', rule: '0', comment: 'replies' })).toBe(2);
    expect(value(samples, 'twinwall_rule_packets_total', { chain: 'forward', rule: '2', comment: 'web' })).toBe(1);
    expect(value(samples, 'twinwall_rule_packets_total', { chain: 'forward', rule: 'policy' })).toBe(1);
    expect(samples.some((x) => x.name === 'nodejs_eventloop_lag_seconds')).toBe(true);
  });

  it('reads figures at scrape time: a second scrape sees new packets and fewer entries', async () => {
    t = await startTestNode();
    feedTraffic(t);
    const addr = t.node.metricsAddress()!;
    t.node.engine.conntrack.table.flush();
    const { samples } = parseExposition(await (await fetch(`http://127.0.0.1:${addr.port}/metrics`)).text());
    expect(samples.filter((x) => x.name === 'twinwall_conntrack_entries')).toEqual([]);
    expect(value(samples, 'twinwall_packets_total', { verdict: 'accept' })).toBe(4);
    expect((await fetch(`http://127.0.0.1:${addr.port}/other`)).status).toBe(404);
  });

  it('keeps two nodes apart in one process (a registry each)', async () => {
    t = await startTestNode();
    const other = await startTestNode();
    try {
      feedTraffic(t);
      const text = await other.node.metrics.metrics();
      expect(value(parseExposition(text).samples, 'twinwall_packets_total', { verdict: 'accept' })).toBe(0);
    } finally {
      await other.cleanup();
    }
  });
});

describe('/metrics with NAT', () => {
  it('reports ports in use and allocations per SNAT pool', async () => {
    t = await startTestNode();
    const { RULES } = await import('../daemon/fixture.js');
    t.node.applyRuleset(`${RULES}\nnat:\n  snat:\n    - { out: outside0, src: 10.1.0.0/16, to: 10.2.0.1, ports: 1024-65535 }\n`, 'nat.yaml');
    feedTraffic(t);
    const { samples } = parseExposition(await t.node.metrics.metrics());
    expect(value(samples, 'twinwall_nat_ports_in_use', { address: '10.2.0.1', proto: 'tcp' })).toBe(1);
    expect(value(samples, 'twinwall_nat_ports_in_use', { address: '10.2.0.1', proto: 'udp' })).toBe(1);
    expect(value(samples, 'twinwall_nat_allocations_total', { address: '10.2.0.1', proto: 'tcp' })).toBeGreaterThanOrEqual(1);
  });
});

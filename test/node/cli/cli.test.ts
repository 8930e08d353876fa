import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cli } from './run-cli.js';
import { BAD_RULES, IN, OUT, RULES_NO_DNS, feedTraffic, startTestNode, type TestNode } from '../daemon/fixture.js';
import { buildTcp, TcpFlag } from '../../../src/node/packet/index.js';
import { EngineResult } from '../../../src/node/engine/index.js';
import { CtState } from '../../../src/node/conntrack/index.js';

let t: TestNode | null = null;
afterEach(async () => {
  await t?.cleanup();
  t = null;
});

describe('twinwall CLI against a node', () => {
  it('ct list matches the packets fed through the engine, as conntrack -L and as json', async () => {
    t = await startTestNode();
    feedTraffic(t);
    const s = ['--socket', t.socket];
    const list = await cli([...s, 'ct', 'list']);
    expect(list.code).toBe(0);
    const lines = list.out.trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines.find((l) => l.startsWith('tcp'))).toMatch(
      /^tcp +6 +\d+ ESTABLISHED src=10\.1\.0\.5 dst=10\.2\.0\.9 sport=40000 dport=80 packets=2 bytes=\d+ src=10\.2\.0\.9 dst=10\.1\.0\.5 sport=80 dport=40000 packets=1 .* id=\d+$/,
    );
    expect(lines.find((l) => l.startsWith('udp'))).toMatch(/src=10\.1\.0\.6 dst=10\.2\.0\.53 sport=5353 dport=53 .*\[UNREPLIED\]/);
    expect(list.err).toContain('2 flow entries');

    const json = JSON.parse((await cli([...s, 'ct', 'list', '-p', 'udp', '-o', 'json'])).out) as { id: number; original: { dport: number } }[];
    expect(json).toHaveLength(1);
    expect(json[0].original.dport).toBe(53);
    expect(JSON.parse((await cli([...s, 'ct', 'list', '--src', '10.1.0.0/24', '--port', '80', '-o', 'json'])).out)).toHaveLength(1);
    expect(JSON.parse((await cli([...s, 'ct', 'list', '--dst', '192.0.2.1', '-o', 'json'])).out)).toHaveLength(0);

    const got = await cli([...s, 'ct', 'get', String(json[0].id), '-o', 'json']);
    expect(JSON.parse(got.out).id).toBe(json[0].id);
    expect((await cli([...s, 'ct', 'count'])).out).toBe('2\n');

    expect((await cli([...s, 'ct', 'delete', String(json[0].id)])).code).toBe(0);
    expect((await cli([...s, 'ct', 'count'])).out).toBe('1\n');
    const missing = await cli([...s, 'ct', 'get', String(json[0].id)]);
    expect(missing.code).toBe(1);
    expect(missing.err).toContain('CT_ENTRY_NOT_FOUND');

    expect((await cli([...s, 'ct', 'flush'])).err).toContain('emptied (1 entries)');
    expect((await cli([...s, 'ct', 'count'])).out).toBe('0\n');
  });

  it('ct save then restore after a flush brings the same entries back, and the TCP flow goes on', async () => {
    t = await startTestNode();
    feedTraffic(t);
    const s = ['--socket', t.socket];
    const before = (await cli([...s, 'ct', 'list'])).out;
    const file = join(t.dir, 'ct.json');
    expect((await cli([...s, 'ct', 'save', '-f', file])).err).toContain('2 entries saved');
    const saved = JSON.parse(readFileSync(file, 'utf8')) as { format: string; entries: { record: string; line: string }[] };
    expect(saved.format).toBe('twinwall-ct-save/2');
    expect(saved.entries.map((e) => e.record.length)).toEqual([256, 256]);
    await cli([...s, 'ct', 'flush']);
    const restore = await cli([...s, 'ct', 'restore', file]);
    expect([restore.code, restore.err]).toEqual([0, 'twinwall: 2 entries restored (2 new, 0 replaced).\n']);
    // Same lines but for the ids (new entries) and timeouts (a second may have passed).
    const strip = (text: string) => text.trim().split('\n').map((l) => l.replace(/ id=\d+/, '').replace(/^(\w+ +\d+ +)\d+/, '$1')).sort();
    expect(strip((await cli([...s, 'ct', 'list'])).out)).toEqual(strip(before));
    // The restored TCP entry carries the flow on: the server's next segment is ESTABLISHED.
    const out = new EngineResult();
    const pkt = buildTcp({ src: '10.2.0.9', dst: '10.1.0.5', sport: 80, dport: 40000, flags: TcpFlag.ACK, seq: 5001, ack: 1001 });
    t.node.engine.process(pkt, 0, pkt.length, { inIf: OUT, outIf: IN, mark: 0, now: t.clock.now + 1 }, out);
    expect(out.ctState).toBe(CtState.ESTABLISHED);
    // Restoring again replaces the entries in place.
    expect((await cli([...s, 'ct', 'restore', file])).err).toContain('2 entries restored (0 new, 2 replaced)');
    expect((await cli([...s, 'ct', 'count'])).out).toBe('2\n');
  });

  it('ct restore refuses a damaged or old file whole, with the path of each bad entry', async () => {
    t = await startTestNode();
    feedTraffic(t);
    const s = ['--socket', t.socket];
    const file = join(t.dir, 'ct.json');
    await cli([...s, 'ct', 'save', '-f', file]);
    const saved = JSON.parse(readFileSync(file, 'utf8')) as { format: string; entries: { record: string }[] };
    await cli([...s, 'ct', 'flush']);
    const bytes = Buffer.from(saved.entries[1].record, 'base64');
    bytes[9 * 4 + 1] = 9; // address family 9
    saved.entries[1].record = bytes.toString('base64');
    writeFileSync(file, JSON.stringify(saved));
    const bad = await cli([...s, 'ct', 'restore', file]);
    expect(bad.code).toBe(1);
    expect(bad.err).toContain('CT_RESTORE_INVALID');
    expect(bad.err).toContain('/body/entries/1/record');
    expect(bad.err).toContain('family 9');
    expect((await cli([...s, 'ct', 'count'])).out).toBe('0\n');
    writeFileSync(file, JSON.stringify({ ...saved, format: 'twinwall-ct-save/1' }));
    const old = await cli([...s, 'ct', 'restore', file]);
    expect(old.err).toContain('CT_RESTORE_FORMAT');
    expect(old.err).toContain('no window data');
  });

  it('refuses a bad filter with the path of each bad value', async () => {
    t = await startTestNode();
    const r = await cli(['--socket', t.socket, 'ct', 'list', '--src', '10.1.0.300', '--port', 'http']);
    expect(r.code).toBe(1);
    expect(r.err).toContain('REQUEST_INVALID');
    expect(r.err).toContain('/query/port');
  });

  it('rules apply refuses a bad ruleset with paths and keeps the old one; a good one is swapped in', async () => {
    t = await startTestNode();
    const s = ['--socket', t.socket];
    const bad = join(t.dir, 'bad.yaml');
    writeFileSync(bad, BAD_RULES);
    const r = await cli([...s, 'rules', 'apply', bad]);
    expect(r.code).toBe(1);
    expect(r.err).toContain('RULESET_INVALID');
    expect(r.err).toContain('/chains/forward/policy');
    expect(r.err).toContain('/chains/forward/rules/0/match/dport');
    expect((await cli([...s, 'rules', 'show', '--text'])).out).not.toContain('maybe');

    const good = join(t.dir, 'good.yaml');
    writeFileSync(good, RULES_NO_DNS);
    expect((await cli([...s, 'rules', 'apply', good])).code).toBe(0);
    const shown = await cli([...s, 'rules', 'show']);
    expect(shown.out).toContain(`# ${good}`);
    expect(shown.out).toContain('Chain forward (policy DROP');
    expect(t.node.ruleset().text).toBe(RULES_NO_DNS);
  });

  it('stats shows the engine figures', async () => {
    t = await startTestNode();
    feedTraffic(t);
    const r = await cli(['--socket', t.socket, 'stats', '-o', 'json']);
    const s = JSON.parse(r.out) as { packets: { accepted: number; dropped: number }; drops: Record<string, number>; conntrack: { entries: number } };
    expect(s.packets).toEqual({ accepted: 4, dropped: 1 });
    expect(s.drops.ruleset).toBe(1);
    expect(s.conntrack.entries).toBe(2);
    expect((await cli(['--socket', t.socket, 'stats'])).out).toMatch(/packets:\n {2}accepted: 4\n/);
  });

  it('trace streams the walk of matching packets until stopped, then switches tracing off', async () => {
    t = await startTestNode();
    const ac = new AbortController();
    let seen = '';
    const node = t;
    const run = cli(['--socket', t.socket, 'trace', '--selector', '{"proto":"tcp","dport":22}'], ac.signal, (s) => {
      seen += s;
      if (seen.includes('forward verdict')) ac.abort();
    });
    // Wait until the daemon has the selector, then send a matching packet.
    for (let i = 0; i < 100 && node.node.engine.filter.traceSelector === null; i++) await new Promise((r) => setTimeout(r, 10));
    const pkt = buildTcp({ src: '10.1.0.7', dst: '10.2.0.9', sport: 40001, dport: 22, seq: 1, flags: TcpFlag.SYN, window: 64240 });
    node.clock.now += 1;
    node.node.engine.process(pkt, 0, pkt.length, { inIf: 2, outIf: 3, mark: 0, now: node.clock.now }, new EngineResult());
    const r = await run;
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/trace 1 raw packet: tcp 10\.1\.0\.7:40001 -> 10\.2\.0\.9:22/);
    expect(r.out).toContain('trace 1 raw verdict ACCEPT (policy)');
    expect(r.out).toContain('trace 2 forward rule 2 no match');
    expect(r.out).toContain('trace 2 forward verdict DROP (policy)');
    expect(node.node.engine.filter.traceSelector).toBeNull();
  });

  it('trace refuses a bad selector with its path', async () => {
    t = await startTestNode();
    const r = await cli(['--socket', t.socket, 'trace', '--selector', '{"dport":"x"}']);
    expect(r.code).toBe(1);
    expect(r.err).toContain('TRACE_SELECTOR_INVALID');
    expect(r.err).toContain('/body/selector/dport');
  });

  it('exits 2 with a clear message when the daemon is not running', async () => {
    const r = await cli(['--socket', '/tmp/twinwall-no-such.sock', 'ct', 'list']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/DAEMON_UNREACHABLE: cannot reach the twinwall daemon on \/tmp\/twinwall-no-such.sock .*twinwall node --config FILE/);
  });

  it('exits 64 on a usage error and 2 when the node config is bad', async () => {
    expect((await cli(['ct', 'frobnicate'])).code).toBe(64);
    t = await startTestNode();
    const cfg = join(t.dir, 'bad-node.yaml');
    writeFileSync(cfg, 'node: { name: "a b" }\n');
    const r = await cli(['node', '--config', cfg]);
    expect(r.code).toBe(2);
    expect(r.err).toContain('CONFIG_INVALID');
    expect(r.err).toContain('/node/name');
    expect(r.err).toContain('/dataplane');
  });
});

/**
 * `twinwall expect list` and the helpers' metrics against a node: an FTP control connection
 * through its engine announces a passive data connection (an expectation to list and count) and
 * sends a malformed PORT (a refusal by reason).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cli } from './run-cli.js';
import { IN, OUT, startTestNode, type TestNode } from '../daemon/fixture.js';
import { buildTcp, TcpFlag } from '../../../src/node/packet/index.js';
import { EngineResult } from '../../../src/node/engine/index.js';
import { parseExposition, value } from '../metrics/exposition.js';
import { HELPER_RULES } from '../conntrack/helpers/ftp-ends.js';

const { SYN, ACK, PSH } = TcpFlag;

let t: TestNode | null = null;
afterEach(async () => {
  await t?.cleanup();
  t = null;
});

describe('expect list and helper metrics', () => {
  it('lists the expectation an FTP 227 made, with its master; counts it and the refused PORT in the metrics', async () => {
    t = await startTestNode();
    const node = t;
    const rules = join(node.dir, 'ftp.yaml');
    writeFileSync(rules, HELPER_RULES);
    const s = ['--socket', node.socket];
    expect((await cli([...s, 'rules', 'apply', rules])).code).toBe(0);
    const out = new EngineResult();
    const send = (pkt: Buffer, inIf: number) => {
      node.clock.now += 1;
      return node.node.engine.process(pkt, 0, pkt.length, { inIf, outIf: inIf === IN ? OUT : IN, mark: 0, now: node.clock.now }, out);
    };
    const C = '10.1.0.5';
    const S = '10.2.0.9';
    send(buildTcp({ src: C, dst: S, sport: 40000, dport: 21, seq: 1000, flags: SYN }), IN);
    send(buildTcp({ src: S, dst: C, sport: 21, dport: 40000, seq: 5000, ack: 1001, flags: SYN | ACK }), OUT);
    send(buildTcp({ src: C, dst: S, sport: 40000, dport: 21, seq: 1001, ack: 5001, flags: ACK | PSH, payload: 'PORT 10,1,0,5,300,1\r\n' }), IN);
    send(buildTcp({ src: S, dst: C, sport: 21, dport: 40000, seq: 5001, ack: 1022, flags: ACK | PSH, payload: '227 Entering Passive Mode (10,2,0,9,117,49)\r\n' }), OUT);

    const list = await cli([...s, 'expect', 'list']);
    expect(list.code).toBe(0);
    expect(list.out).toMatch(/^300 proto=tcp src=10\.1\.0\.5 dst=10\.2\.0\.9 sport=\* dport=30001 master=\d+ helper=ftp\n$/);
    expect(list.err).toContain('1 expectations');
    const json = JSON.parse((await cli([...s, 'expect', 'list', '-o', 'json'])).out) as { master: number; dport: number; natPort: number | null }[];
    expect(json).toEqual([expect.objectContaining({ dport: 30001, natPort: null })]);
    const master = JSON.parse((await cli([...s, 'ct', 'get', String(json[0].master), '-o', 'json'])).out) as { original: { dport: number } };
    expect(master.original.dport).toBe(21);

    const addr = node.node.metricsAddress()!;
    const { samples } = parseExposition(await (await fetch(`http://127.0.0.1:${addr.port}/metrics`)).text());
    expect(value(samples, 'twinwall_expectations')).toBe(1);
    expect(value(samples, 'twinwall_helper_expected_total', { helper: 'ftp' })).toBe(1);
    expect(value(samples, 'twinwall_helper_errors_total', { helper: 'ftp', reason: 'bad_number' })).toBe(1);
    expect(value(samples, 'twinwall_helper_errors_total', { helper: 'ftp', reason: 'not_sender' })).toBe(0);
    expect(value(samples, 'twinwall_helper_rewritten_total', { helper: 'ftp' })).toBe(0);
  });
});

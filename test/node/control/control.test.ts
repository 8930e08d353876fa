import { writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { ControlClient, ControlServer } from '../../../src/node/control/index.js';
import { BAD_RULES, RULES_NO_DNS, feedTraffic, startTestNode, type TestNode } from '../daemon/fixture.js';

/** A raw request, to see status and body exactly as a client in another language would. */
function raw(socketPath: string, method: string, path: string, body?: string): Promise<{ status: number; json: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path, agent: false }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

let t: TestNode | null = null;
afterEach(async () => {
  await t?.cleanup();
  t = null;
});

describe('control API', () => {
  it('answers errors as { error: { code, message, errors } }', async () => {
    t = await startTestNode();
    expect(await raw(t.socket, 'GET', '/nope')).toMatchObject({ status: 404, json: { error: { code: 'NOT_FOUND', errors: [] } } });
    expect(await raw(t.socket, 'PUT', '/rules')).toMatchObject({ status: 405, json: { error: { code: 'METHOD_NOT_ALLOWED' } } });
    expect(await raw(t.socket, 'POST', '/rules', '{nope')).toMatchObject({ status: 400, json: { error: { code: 'BODY_NOT_JSON' } } });
    const r = await raw(t.socket, 'POST', '/rules', JSON.stringify({ text: 5, extra: true }));
    expect(r.status).toBe(400);
    const paths = (r.json as { error: { errors: { path: string }[] } }).error.errors.map((e) => e.path);
    expect(paths).toEqual(expect.arrayContaining(['/body/text', '/body/extra']));
    expect(await raw(t.socket, 'GET', '/ct?colour=red')).toMatchObject({ status: 400, json: { error: { code: 'REQUEST_INVALID', errors: [{ path: '/query/colour' }] } } });
    expect(await raw(t.socket, 'GET', '/ct/abc')).toMatchObject({ status: 400, json: { error: { errors: [{ path: '/params/id' }] } } });
  });

  it('POST /rules refuses a bad ruleset with every path and line, and swaps a good one atomically', async () => {
    t = await startTestNode();
    feedTraffic(t);
    const before = t.node.engine.filter.ruleset;
    const r = await raw(t.socket, 'POST', '/rules', JSON.stringify({ text: BAD_RULES, source: 'bad.yaml' }));
    expect(r.status).toBe(422);
    const err = (r.json as { error: { code: string; errors: { path: string; message: string }[] } }).error;
    expect(err.code).toBe('RULESET_INVALID');
    expect(err.errors.map((e) => e.path)).toEqual(['/chains/forward/policy', '/chains/forward/rules/0/match/dport']);
    expect(err.errors[0].message).toMatch(/line 4/);
    expect(t.node.engine.filter.ruleset).toBe(before);

    const ok = await new ControlClient(t.socket).call<{ applied: boolean }>('POST', '/rules', { text: RULES_NO_DNS, source: 'new.yaml' });
    expect(ok.applied).toBe(true);
    expect(t.node.engine.filter.ruleset).not.toBe(before);
    expect(await new ControlClient(t.socket).call('GET', '/rules')).toMatchObject({ source: 'new.yaml', text: RULES_NO_DNS });
  });

  it('a stale socket file left by a crash is replaced; a live one is not taken over', async () => {
    t = await startTestNode();
    const other = new ControlServer(t.node, t.socket);
    await expect(other.start()).rejects.toMatchObject({ code: 'CONTROL_SOCKET_FAILED' });
    expect((await new ControlClient(t.socket).call<{ node: string }>('GET', '/stats')).node).toBe('fw-test');

    const stalePath = `${t.dir}/stale.sock`;
    writeFileSync(stalePath, '');
    const fresh = new ControlServer(t.node, stalePath);
    await fresh.start();
    expect(await new ControlClient(stalePath).call('GET', '/ct/count')).toEqual({ count: 0, max: 1024 });
    await fresh.stop();
  });
});

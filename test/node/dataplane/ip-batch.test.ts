/**
 * The long-lived `ip -batch` against the real iproute2 (no root needed: the commands read, or fail
 * on an interface that does not exist): each run resolves with the commands that failed and why,
 * runs queued at once come back in order, and a child that died is replaced at the next run.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { DataplaneError } from '../../../src/node/dataplane/errors.js';
import { IpBatch } from '../../../src/node/dataplane/ip-batch.js';

describe('ip batch', () => {
  let ip: IpBatch | null = null;
  afterEach(() => ip?.close());

  it('runs lines in one process and names each failed command with its reason', async () => {
    ip = new IpBatch();
    expect((await ip.run(['link show dev lo'])).failed).toEqual([]);
    const r = await ip.run(['link show dev lo', 'addr add 192.0.2.1/32 dev nonexist0', 'link show dev lo', 'link show dev nonexist1']);
    expect(r.failed.map((f) => [f.index, f.line])).toEqual([[1, 'addr add 192.0.2.1/32 dev nonexist0'], [3, 'link show dev nonexist1']]);
    expect(r.failed[0].reason).toMatch(/nonexist0/);
    expect(r.failed[1].reason).toMatch(/nonexist1/);
    expect(ip.starts).toBe(1);
  });

  it('answers runs queued together in order, each with its own failures', async () => {
    ip = new IpBatch();
    const runs = await Promise.all(Array.from({ length: 20 }, (_, i) => ip!.run(i % 2 === 0 ? ['link show dev lo'] : [`link show dev nx${i}`, 'link show dev lo'])));
    runs.forEach((r, i) => expect(r.failed.map((f) => f.line)).toEqual(i % 2 === 0 ? [] : [`link show dev nx${i}`]));
    expect(ip.starts).toBe(1);
  });

  it('starts a new process when the old one died, and refuses a line with a newline', async () => {
    ip = new IpBatch();
    ip.start();
    await ip.run(['link show dev lo']);
    const { execSync } = await import('node:child_process');
    // The child is ours: kill it from outside, as an OOM kill or an operator would.
    execSync(`pkill -KILL -P ${process.pid} -x ip || true`);
    await new Promise((r) => setTimeout(r, 100));
    expect((await ip.run(['link show dev lo'])).failed).toEqual([]);
    expect(ip.starts).toBe(2);
    await expect(ip.run(['link show dev lo\naddr flush dev lo'])).rejects.toThrow(DataplaneError);
  });

  it('with json, returns what each successful command printed, in order', async () => {
    ip = new IpBatch({ json: true });
    const r = await ip.run(['link show dev lo', 'link show dev nonexist2', 'route show table main']);
    expect(r.failed.map((f) => f.index)).toEqual([1]);
    expect(r.output).toHaveLength(2);
    expect((JSON.parse(r.output[0]) as { ifname: string }[])[0].ifname).toBe('lo');
    expect(Array.isArray(JSON.parse(r.output[1]))).toBe(true);
  });

  it('rejects what is pending when closed', async () => {
    ip = new IpBatch();
    const p = ip.run(['link show dev lo']);
    ip.close();
    await expect(p).rejects.toThrow(/closed/);
  });
});

/**
 * The advert pacer (src/failover/advert-pacer.ts, native/pacer) with real processes and sockets
 * on loopback: a master's adverts keep leaving every interval while its JavaScript thread is
 * held (a GC pause, a busy core: the 31-40 ms holds that were false takeovers at a 10 ms
 * interval), each signed and numbered in order; a process frozen (SIGSTOP) stops advertising by
 * itself when it wakes, so it does not go on as a second master; a hung election (lease not
 * renewed) lets the adverts stop. Against it, the same master on a JavaScript timer goes silent
 * for as long as its thread is held.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { Keyring } from '../../src/sync/auth.js';
import { decodeAdvert, newAdvert } from '../../src/failover/advert.js';
import { AdvertPacer, type PacerState } from '../../src/failover/advert-pacer.js';

const agent = fileURLToPath(new URL('../../dist/test/failover/agents/paced-master.js', import.meta.url));
const keys = new Keyring([{ id: 3, secret: Buffer.alloc(32, 7) }], 3);

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanup.splice(0)) c();
});

interface Arrival { at: number; seq: number; ok: boolean }

async function receiver(): Promise<{ sock: Socket; port: number; got: Arrival[] }> {
  const sock = createSocket('udp4');
  const got: Arrival[] = [];
  const a = newAdvert();
  sock.on('message', (m) => got.push({ at: performance.now(), ok: decodeAdvert(m, keys, a) === null, seq: a.seq }));
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  cleanup.push(() => sock.close());
  return { sock, port: sock.address().port, got };
}

async function startAgent(port: number, mode: 'pacer' | 'timer'): Promise<{ child: ChildProcess; ask: (cmd: string) => Promise<Record<string, unknown>> }> {
  const child = spawn(process.execPath, [agent, String(port), mode], { stdio: ['pipe', 'pipe', 'pipe'] });
  cleanup.push(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let stderr = '';
  child.stderr?.on('data', (d) => (stderr += d));
  const lines: ((x: Record<string, unknown>) => void)[] = [];
  const ready = new Promise<void>((resolve, reject) => {
    lines.push(() => resolve());
    child.once('exit', (code) => reject(new Error(`the agent ended (${code}): ${stderr}`)));
  });
  createInterface({ input: child.stdout! }).on('line', (l) => lines.shift()?.(JSON.parse(l) as Record<string, unknown>));
  await ready;
  const ask = (cmd: string): Promise<Record<string, unknown>> => new Promise((resolve) => {
    lines.push(resolve);
    child.stdin!.write(`${cmd}\n`);
  });
  return { child, ask };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The longest stretch of [from, to] without an arrival (the window's edges count: silence across `from` is a gap too). */
function longestGap(got: Arrival[], from: number, to: number): number {
  const t = [from, ...got.filter((g) => g.at >= from && g.at <= to).map((g) => g.at), to];
  let gap = 0;
  for (let i = 1; i < t.length; i++) gap = Math.max(gap, t[i] - t[i - 1]);
  return gap;
}

describe('advert pacer', () => {
  it('keeps a master advertising every 10 ms while its JavaScript thread is held 150 ms, where a JavaScript timer goes silent', async () => {
    const paced = await receiver();
    const timed = await receiver();
    const p = await startAgent(paced.port, 'pacer');
    const t = await startAgent(timed.port, 'timer');
    await sleep(100);
    const from = performance.now();
    await Promise.all([p.ask('block 150'), t.ask('block 150')]);
    await sleep(50);
    const to = performance.now();
    const pacedGap = longestGap(paced.got, from, to);
    const timedGap = longestGap(timed.got, from, to);
    const state = (await p.ask('state')).state as PacerState;
    console.log(`pacer: longest gap ${pacedGap.toFixed(1)} ms while held 150 ms (JavaScript timer: ${timedGap.toFixed(1)} ms); thread ${state.scheduling}, woke at worst ${state.lateMaxMs.toFixed(2)} ms late`);
    // Under three intervals: the backup does not take over.
    expect(pacedGap).toBeLessThan(30);
    expect(timedGap).toBeGreaterThan(100);
    expect(state.stopped).toBeNull();
    expect(state.pacing).toBe(true);
    expect(state.scheduling).toBe('fifo'); // root in the tests (CAP_SYS_NICE)
    // Every advert signed with the key and numbered in order, from the first (send()) on.
    expect(paced.got.every((g) => g.ok)).toBe(true);
    expect(paced.got.map((g) => g.seq)).toEqual(paced.got.map((_, i) => i + 1));
    expect(paced.got.length).toBeGreaterThan(20);
  });

  it('stops by itself when the process was frozen (SIGSTOP) over three intervals, and says so', async () => {
    const r = await receiver();
    const p = await startAgent(r.port, 'pacer');
    await sleep(100);
    p.child.kill('SIGSTOP');
    await sleep(100);
    const before = r.got.length;
    const resumed = performance.now();
    p.child.kill('SIGCONT');
    await sleep(100);
    const after = r.got.filter((g) => g.at > resumed).length;
    const state = (await p.ask('state')).state as PacerState;
    expect(before).toBeGreaterThan(5);
    expect(after).toBe(0);
    expect(state.stopped).toBe('frozen');
    expect(state.pacing).toBe(false);
    expect(state.stopLateMs).toBeGreaterThan(30);
  });

  it('stops when the election does not renew its lease (its thread hung)', async () => {
    const r = await receiver();
    const p = await startAgent(r.port, 'pacer');
    await sleep(50);
    const from = performance.now();
    await p.ask('block 500'); // the agent's lease is 200 ms
    const state = (await p.ask('state')).state as PacerState;
    const last = r.got.filter((g) => g.at >= from).at(-1)?.at ?? from;
    expect(state.stopped).toBe('lease');
    // The adverts went on for the lease, then stopped.
    expect(last - from).toBeGreaterThan(150);
    expect(last - from).toBeLessThan(300);
  });

  it('refuses what it cannot use, with what to do', async () => {
    const s = createSocket('udp4');
    cleanup.push(() => s.close());
    expect(() => new AdvertPacer([{ socket: s, dest: '127.0.0.1' }], { port: 3781, keys, rtPriority: 0 })).toThrow(/bind it first/);
    await new Promise<void>((res) => s.bind(0, '127.0.0.1', res));
    expect(() => new AdvertPacer([{ socket: s, dest: '::1' }], { port: 3781, keys, rtPriority: 0 })).toThrow(/IPv4/);
    expect(() => new AdvertPacer([{ socket: s, dest: '127.0.0.1' }], { port: 3781, keys, rtPriority: 100 })).toThrow(/0-99/);
    const ok = new AdvertPacer([{ socket: s, dest: '127.0.0.1' }], { port: 3781, keys, rtPriority: 0, nice: 0 });
    expect(() => ok.start(10, 100)).toThrow(/after a send/);
    expect(() => ok.send(Buffer.alloc(10))).toThrow(/44 bytes/);
    ok.close();
    ok.close();
    expect(ok.state().pacing).toBe(false);
  });
});

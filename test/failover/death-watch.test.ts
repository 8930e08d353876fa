/**
 * The death watch (src/failover/death-watch.ts, native/deathwatch) with real processes on
 * loopback: a process holding 600 MB and two TCP links handed to its watcher is SIGKILLed. The
 * watcher is woken by the death of the mutex's owner (which the kernel handles at the start of
 * that thread's exit, before the process's memory is torn down), not by the end of the daemon's
 * socket pair (closed with its files, after the memory): it says which, shuts the link down and
 * ends. A link the process released goes down at once, though the process lives on. How much
 * sooner the link goes down is printed here and measured by bench/failover (the teardown's cost
 * varies with how much of the memory is resident when the kill comes).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

const agent = fileURLToPath(new URL('../../dist/test/failover/agents/dying-master.js', import.meta.url));
const MB = 600;

interface Run {
  /** ms from SIGKILL to the surviving link's end, and to the process's exit event. */
  finMs: number;
  exitMs: number;
  /** The released link ended before the kill. */
  releasedEndedEarly: boolean;
  stderr: string;
  watcherPid: number;
}

const children: ChildProcess[] = [];
const servers: Server[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
  for (const s of servers.splice(0)) s.close();
});

async function run(mode: 'watch' | 'plain'): Promise<Run> {
  const links = new Map<string, { sock: Socket; endedAt: number }>();
  const server = createServer((sock) => {
    sock.once('data', (d) => {
      const rec = { sock, endedAt: -1 };
      links.set(d.toString(), rec);
      sock.on('end', () => (rec.endedAt = performance.now()));
      sock.on('error', () => (rec.endedAt = rec.endedAt < 0 ? performance.now() : rec.endedAt));
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const child = spawn(process.execPath, [agent, String(port), String(MB), mode], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const ready = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (d) => String(d).startsWith('ready') && resolve(String(d)));
    child.once('exit', (code) => reject(new Error(`the agent ended (${code}): ${stderr}`)));
  });
  const watcherPid = Number(ready.split(' ')[1]);
  // The released link's end has had time to arrive (it went at release, before "ready").
  await new Promise((r) => setTimeout(r, 100));
  const releasedEndedEarly = (links.get('B')?.endedAt ?? -1) > 0;
  const exited = new Promise<number>((r) => child.once('exit', () => r(performance.now())));
  const t0 = performance.now();
  child.kill('SIGKILL');
  const exitAt = await exited;
  const a = links.get('A');
  while (a !== undefined && a.endedAt < 0 && performance.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 5));
  await new Promise((r) => setTimeout(r, 50));
  return { finMs: (a?.endedAt ?? NaN) - t0, exitMs: exitAt - t0, releasedEndedEarly, stderr, watcherPid };
}

/** The process runs (a zombie left to whoever adopted it does not). */
function running(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
  } catch {
    return false;
  }
}

describe('death watch', () => {
  it('a SIGKILLed process\'s links go down at the start of its death, not after its memory is freed', async () => {
    const plain = await run('plain');
    const watched = await run('watch');
    console.log(`death watch, ${MB} MB process SIGKILLed: link down after ${watched.finMs.toFixed(1)} ms with the watch, ${plain.finMs.toFixed(1)} ms without (process exit seen after ${watched.exitMs.toFixed(1)} / ${plain.exitMs.toFixed(1)} ms)`);
    expect(plain.finMs).toBeGreaterThan(0);
    expect(watched.finMs).toBeGreaterThan(0);
    // Woken by the owner's death (EOWNERDEAD), not by the end of the pair after the teardown.
    expect(watched.stderr).toMatch(/twinwall-deathwatch: the daemon died: 1 peer link shut down, [1-9]\d* of its threads lowered to idle priority/);
    expect(running(watched.watcherPid)).toBe(false);
  }, 60_000);

  it('a released link goes down at once while the process lives on', async () => {
    const watched = await run('watch');
    expect(watched.releasedEndedEarly).toBe(true);
  }, 60_000);
});

/**
 * A long-lived `ip -force -batch -`: commands written on its stdin run at once, with no process
 * started per change. Starting a process from the daemon blocks its event loop, and with it the
 * packet path, for the fork of a process whose conntrack table is preallocated: measured 4-5 ms
 * at 10 MB, 18-23 ms at 300 MB, 32 ms at 1.5 GB per spawn on this kind of machine, and a claim
 * of the virtual addresses (ip, then arping per address) or a route refresh (three ip commands)
 * paid it several times over, at the moment of a takeover. The children are started with the
 * node, while nothing is at stake. Used for the virtual addresses (src/failover/vip.ts) and the
 * route table (routes.ts).
 *
 * One stream: ip's stderr goes into its stdout (`sh -c 'exec ip ... 2>&1'`), so what a command
 * printed, its error and ip's report of it (`Command failed -:N`, N counting the lines read since
 * the child started) arrive in the order ip wrote them. Each run ends with a marker command that
 * always fails (a link name no interface can have); its report closes the run. The reports before
 * it with a line number inside the run name the commands that failed, the text before each its
 * reason. With `json`, each successful command that prints prints one JSON line: the run's output.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import type { Socket } from 'node:net';
import { DataplaneError } from './errors.js';

/** The result of one batch: the commands that failed (index into the lines given) and why; with json, what the others printed, in order. */
export interface BatchResult {
  failed: { index: number; line: string; reason: string }[];
  output: string[];
}

/** Runs iproute2 batch lines; replaceable in tests. */
export interface IpRunner {
  run(lines: readonly string[]): Promise<BatchResult>;
  close(): void;
}

export interface IpBatchOptions {
  /** ip options before `-force -batch -`, e.g. ['-n', 'ns1'] to act in a namespace, ['-6']. */
  args?: readonly string[];
  /** `ip -j`: each successful command's output is one JSON line, returned in BatchResult.output. */
  json?: boolean;
  /** ms a run may take before the child is replaced (default 5000). */
  timeoutMs?: number;
}

/** An interface name cannot be this (16 characters, one over IFNAMSIZ - 1): `link show` always fails. */
const MARKER = 'link show dev twinwall-marker!!';

interface Pending {
  lines: readonly string[];
  /** Line numbers (as ip counts them) of the first command and of the marker. */
  first: number;
  marker: number;
  result: BatchResult;
  resolve: (r: BatchResult) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export class IpBatch implements IpRunner {
  readonly #args: readonly string[];
  readonly #json: boolean;
  readonly #timeoutMs: number;
  #child: ChildProcessWithoutNullStreams | null = null;
  /** Lines written to the current child so far (ip numbers them from 1). */
  #written = 0;
  #pending: Pending[] = [];
  /** Output not yet ended by a newline, and the reason lines since the last report. */
  #partial = '';
  #reason: string[] = [];
  /** Children started (1 normally; more after one died or hung), for status and tests. */
  starts = 0;

  constructor(o: IpBatchOptions = {}) {
    this.#args = o.args ?? [];
    this.#json = o.json ?? false;
    this.#timeoutMs = o.timeoutMs ?? 5000;
  }

  /** Start the child now (the node's start), rather than at the first run (a takeover). */
  start(): void {
    if (this.#child === null) this.#spawn();
  }

  run(lines: readonly string[]): Promise<BatchResult> {
    if (lines.length === 0) return Promise.resolve({ failed: [], output: [] });
    for (const l of lines) {
      if (l.includes('\n')) return Promise.reject(new DataplaneError('DP_IP', `ip batch line "${l}" contains a newline`));
    }
    this.start();
    const child = this.#child as ChildProcessWithoutNullStreams;
    return new Promise((resolve, reject) => {
      const first = this.#written + 1;
      this.#written += lines.length + 1;
      const p: Pending = {
        lines, first, marker: this.#written, result: { failed: [], output: [] }, resolve, reject,
        timer: setTimeout(() => this.#replace(new DataplaneError('DP_IP', `ip batch: no answer within ${this.#timeoutMs} ms to "${lines.join('; ')}"; its process was replaced`)), this.#timeoutMs),
      };
      this.#pending.push(p);
      child.stdin.write(`${lines.join('\n')}\n${MARKER}\n`);
    });
  }

  close(): void {
    const c = this.#child;
    this.#child = null;
    c?.stdin.end();
    this.#failPending(new DataplaneError('DP_IP', 'ip batch closed'));
  }

  #spawn(): void {
    const args = [...this.#args, ...(this.#json ? ['-j'] : []), '-force', '-batch', '-'];
    const child = spawn('sh', ['-c', 'exec ip "$@" 2>&1', 'ip', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.#child = child;
    this.#written = 0;
    this.#partial = '';
    this.#reason = [];
    this.starts++;
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (s: string) => this.#onOutput(child, s));
    child.stderr.resume();
    // A write after the child died: its 'exit' rejects what is pending.
    child.stdin.on('error', () => undefined);
    child.once('error', (e) => this.#gone(child, new DataplaneError('DP_IP', `ip: ${e.message}; install iproute2`)));
    child.once('exit', (code, signal) => this.#gone(child, new DataplaneError('DP_IP', `ip batch exited (${signal ?? code}) before it answered; is iproute2 installed?`)));
    // An idle ip does not keep this process alive (a pending run's timer does).
    child.unref();
    for (const s of [child.stdin, child.stdout, child.stderr]) (s as unknown as Socket).unref();
  }

  #onOutput(child: ChildProcessWithoutNullStreams, s: string): void {
    if (child !== this.#child) return;
    const lines = (this.#partial + s).split('\n');
    this.#partial = lines.pop() as string;
    for (const line of lines) {
      const m = /^Command failed -:(\d+)$/.exec(line);
      const p = this.#pending[0];
      if (m === null) {
        if (this.#json && (line.startsWith('[') || line.startsWith('{'))) p?.result.output.push(line);
        else if (line.trim() !== '') this.#reason.push(line.trim());
        continue;
      }
      const n = Number(m[1]);
      const reason = this.#reason.join('; ');
      this.#reason = [];
      if (p === undefined || n < p.first) continue;
      if (n < p.marker) {
        p.result.failed.push({ index: n - p.first, line: p.lines[n - p.first], reason });
        continue;
      }
      this.#pending.shift();
      clearTimeout(p.timer);
      p.resolve(p.result);
    }
  }

  #gone(child: ChildProcessWithoutNullStreams, e: Error): void {
    if (child !== this.#child) return;
    this.#child = null;
    this.#failPending(e);
  }

  /** A run that got no answer: the child is killed, the next run starts a new one. */
  #replace(e: Error): void {
    const c = this.#child;
    this.#child = null;
    c?.kill('SIGKILL');
    this.#failPending(e);
  }

  #failPending(e: Error): void {
    const pending = this.#pending;
    this.#pending = [];
    for (const p of pending) {
      clearTimeout(p.timer);
      p.reject(e);
    }
  }
}

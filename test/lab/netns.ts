/**
 * Network-namespace helpers for lab tests: names carry a per-run suffix so test files can run in
 * parallel, and everything made is removed by cleanup(), also after a failure.
 *
 * Lab tests need root and iproute2. Where they cannot run they skip, except when
 * TWINWALL_REQUIRE_LAB=1 (set by .ci/run): then a missing capability is a failure, never a
 * quiet skip.
 */
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';

export function labAvailable(): { ok: boolean; why: string } {
  if (process.getuid?.() !== 0) return { ok: false, why: 'lab tests need root (network namespaces)' };
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' });
  } catch {
    return { ok: false, why: 'lab tests need iproute2 (ip)' };
  }
  return { ok: true, why: '' };
}

/** Whether a lab test that cannot run must fail instead of skipping (CI). */
export const labRequired = process.env.TWINWALL_REQUIRE_LAB === '1';

export function run(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
}

export class Lab {
  readonly suffix: string;
  readonly namespaces: string[] = [];
  readonly #children: ChildProcessWithoutNullStreams[] = [];

  /** suffix: a fixed one for a lab that outlives the process (scripts/lab.sh); random by default. */
  constructor(suffix?: string) {
    this.suffix = suffix ?? randomBytes(3).toString('hex');
  }

  /**
   * Adopt a namespace made by an earlier run with this suffix (scripts/lab.sh down), so that
   * cleanup() removes it; false when it does not exist.
   */
  adopt(name: string): boolean {
    const full = `tw${name}-${this.suffix}`;
    const exists = run('ip', ['netns', 'list']).split('\n').some((l) => l.split(' ')[0] === full);
    if (exists) this.namespaces.push(full);
    return exists;
  }

  /** Make a namespace `tw<name>-<suffix>` with loopback up; returns its full name. */
  netns(name: string): string {
    const full = `tw${name}-${this.suffix}`;
    run('ip', ['netns', 'add', full]);
    this.namespaces.push(full);
    this.exec(full, 'ip', ['link', 'set', 'lo', 'up']);
    return full;
  }

  exec(ns: string, cmd: string, args: string[], input?: string): string {
    return run('ip', ['netns', 'exec', ns, cmd, ...args], input);
  }

  /** A veth pair between two namespaces, with addresses (CIDR) on each end, both up. */
  link(a: string, aAddr: string, b: string, bAddr: string): { aIf: string; bIf: string } {
    const n = this.namespaces.length + this.#links++;
    const aIf = `v${n}a${this.suffix}`.slice(0, 15);
    const bIf = `v${n}b${this.suffix}`.slice(0, 15);
    run('ip', ['link', 'add', aIf, 'netns', a, 'type', 'veth', 'peer', 'name', bIf, 'netns', b]);
    this.exec(a, 'ip', ['addr', 'add', aAddr, 'dev', aIf]);
    this.exec(b, 'ip', ['addr', 'add', bAddr, 'dev', bIf]);
    this.exec(a, 'ip', ['link', 'set', aIf, 'up']);
    this.exec(b, 'ip', ['link', 'set', bIf, 'up']);
    return { aIf, bIf };
  }
  #links = 0;

  /** A long-running process inside a namespace, answering one line per request line. */
  agent(ns: string, cmd: string, args: string[]): LineAgent {
    const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.#children.push(child);
    return new LineAgent(child);
  }

  cleanup(): void {
    for (const c of this.#children) c.kill('SIGKILL');
    for (const ns of this.namespaces.splice(0).reverse()) {
      try {
        run('ip', ['netns', 'del', ns]);
      } catch (e) {
        // The namespace may already be gone; report anything else.
        if (!String(e).includes('No such file')) console.error(`lab cleanup: ${ns}: ${String(e)}`);
      }
    }
  }
}

/** Request/response over a child's stdin/stdout, one line each. */
export class LineAgent {
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #waiting: ((line: string) => void)[] = [];
  #stderr = '';

  constructor(child: ChildProcessWithoutNullStreams) {
    this.#child = child;
    createInterface({ input: child.stdout }).on('line', (line) => this.#waiting.shift()?.(line));
    child.stderr.on('data', (d: Buffer) => (this.#stderr += d.toString()));
  }

  /** Send a signal to the agent's process (`ip netns exec` execs it: the same pid). */
  signal(sig: NodeJS.Signals): void {
    this.#child.kill(sig);
  }

  ask(line: string, timeoutMs = 5000): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`lab agent did not answer "${line.slice(0, 40)}" in ${timeoutMs} ms; stderr: ${this.#stderr}`)), timeoutMs);
      this.#waiting.push((answer) => {
        clearTimeout(timer);
        resolve(answer);
      });
      this.#child.stdin.write(`${line}\n`);
    });
  }
}

/**
 * The virtual addresses a master owns (one on the inside network, one on the outside where SNAT
 * maps to), claimed and released with iproute2 in one `ip -batch` each way, and announced with
 * gratuitous ARP (iputils `arping -U`, a few times) so that neighbours switch to this node's MAC
 * at once instead of when their neighbour entry expires.
 * Not in the election's thread: these are the takeover's steps, on the main thread, which also
 * makes the replicated entries live first.
 *
 * Order matters and belongs to the caller (takeover.ts): claim only once the replicated entries
 * are live; release first when mastership is lost or the node stops.
 */
import { execFile, spawn } from 'node:child_process';
import { isIPv4 } from 'node:net';

export interface VirtualAddress {
  /** Interface the address lives on (inside0, outside0...). */
  interface: string;
  /** The address and its prefix length, e.g. 10.50.1.1/24. */
  cidr: string;
}

/** Runs a command (with input on stdin); rejects with its stderr. Replaceable in tests. */
export type Exec = (cmd: string, args: string[], input?: string) => Promise<string>;

/**
 * Starts a command without waiting for it: resolves once it runs (rejects if it cannot start)
 * with a handle that stops it; `done` gets whether it exited with 0. Replaceable in tests.
 */
export type Launch = (cmd: string, args: string[], done: (ok: boolean) => void) => Promise<{ stop(): void }>;

export const launchCommand: Launch = (cmd, args, done) =>
  new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: 'ignore' });
    let exited = false;
    child.once('spawn', () => resolve({ stop: () => void (exited || child.kill('SIGTERM')) }));
    child.once('error', (e) => reject(new VipError(`${cmd}: ${e.message}`)));
    child.once('exit', (code, signal) => {
      exited = true;
      if (signal === null) done(code === 0);
    });
  });

export const execCommand: Exec = (cmd, args, input) =>
  new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { timeout: 5000 }, (err, stdout, stderr) => {
      if (err) reject(new VipError(`${cmd} ${args.join(' ')}: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
    if (input !== undefined) child.stdin?.end(input);
  });

export class VipError extends Error {
  readonly code = 'FAILOVER_VIP';
  constructor(message: string) {
    super(message);
    this.name = 'VipError';
  }
}

/** Why a virtual address setting cannot be used, or null. */
export function checkVirtualAddress(v: VirtualAddress): string | null {
  if (!/^[A-Za-z0-9_.:-]{1,15}$/.test(v.interface)) return `interface "${v.interface}" is not an interface name`;
  const m = /^([^/]+)\/(\d{1,2})$/.exec(v.cidr);
  if (m === null || !isIPv4(m[1]) || Number(m[2]) > 32) return `"${v.cidr}" is not an IPv4 address with a prefix length (e.g. 10.0.0.1/24)`;
  return null;
}

export interface VipOptions {
  /** Gratuitous ARPs sent per address on a claim (default 3; the first at once, then one a second). */
  announceCount?: number;
  exec?: Exec;
  launch?: Launch;
}

export class VirtualAddresses {
  readonly #exec: Exec;
  readonly #launch: Launch;
  /** The arpings of the last claim, still repeating in the background. */
  #announcing: { stop(): void }[] = [];
  readonly #count: number;
  /** Claims, releases and announcements made, for status and metrics. */
  readonly stats = { claims: 0, releases: 0, announcements: 0, errors: 0 };

  constructor(readonly addresses: readonly VirtualAddress[], o: VipOptions = {}) {
    const bad = addresses.map((a, i) => [i, checkVirtualAddress(a)] as const).filter(([, why]) => why !== null);
    if (bad.length > 0) throw new VipError(bad.map(([i, why]) => `failover.virtualAddresses[${i}]: ${why}`).join('; '));
    this.#exec = o.exec ?? execCommand;
    this.#launch = o.launch ?? launchCommand;
    this.#count = o.announceCount ?? 3;
  }

  /** Add every address (idempotent: `addr replace`), then announce each with gratuitous ARP. */
  async claim(): Promise<void> {
    if (this.addresses.length === 0) return;
    await this.#batch(this.addresses.map((a) => `addr replace ${a.cidr} dev ${a.interface}`));
    this.stats.claims++;
    await this.announce();
  }

  /**
   * Gratuitous ARP for every address, all at once. iputils arping sends its first packet as it
   * starts and the others a second apart (and cannot be made to go faster): so this resolves once
   * every arping has started, and the repeats (covering a lost first one) go on in the background.
   */
  async announce(): Promise<void> {
    this.#stopAnnouncing();
    this.#announcing = await Promise.all(this.addresses.map((a) =>
      this.#launch('arping', ['-q', '-U', '-c', String(this.#count), '-I', a.interface, a.cidr.split('/')[0]], (ok) => {
        if (ok) this.stats.announcements++;
        else this.stats.errors++;
      })));
  }

  /**
   * The repeats of an announcement must stop with the ownership: a gratuitous ARP from the node
   * that just released the addresses would turn the neighbours back to it, away from the new
   * master (found by a drill: half the flows went the old way and the new master's TCP tracking
   * saw only one side of them).
   */
  #stopAnnouncing(): void {
    for (const a of this.#announcing) a.stop();
    this.#announcing = [];
  }

  /** Remove every address (one missing is not an error: `-force` goes on). */
  async release(): Promise<void> {
    this.#stopAnnouncing();
    if (this.addresses.length === 0) return;
    await this.#batch(this.addresses.map((a) => `addr del ${a.cidr} dev ${a.interface}`), true);
    this.stats.releases++;
  }

  async #batch(lines: string[], tolerant = false): Promise<void> {
    try {
      await this.#exec('ip', tolerant ? ['-force', '-batch', '-'] : ['-batch', '-'], `${lines.join('\n')}\n`);
    } catch (e) {
      // `ip -force` exits non-zero when a line failed (an address already gone): fine on release.
      if (tolerant && e instanceof VipError && /Cannot assign requested address|Command failed/.test(e.message)) return;
      this.stats.errors++;
      throw e;
    }
  }
}

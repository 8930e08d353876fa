/**
 * The virtual addresses a master owns (one on the inside network, one on the outside where SNAT
 * maps to), claimed and released in one batch each way through the node's long-lived `ip -batch`
 * (src/node/dataplane/ip-batch.ts: no process is started at takeover), and announced with gratuitous ARP so that
 * neighbours switch to this node's MAC at once instead of when their neighbour entry expires.
 *
 * The announcement is the kernel's own: with arp_notify set on the interface, setting its MAC
 * address (to the one it has) makes the kernel send a gratuitous ARP request for every address on
 * it, the virtual one included, in the same batch as the claim. Measured against iputils
 * `arping -U` started per address (bench/RESULTS.md, failover): the claim went from 78-128 ms to a
 * few ms in the drill lab. Side effect, as for any MAC change: the kernel flushes this node's
 * neighbour entries on that interface (permanent ones too), re-learnt on the next packet. Where the
 * driver refuses a live MAC write or arp_notify cannot be set (a read-only /proc/sys), that
 * interface is announced with `arping -U` as before.
 * Not in the election's thread: these are the takeover's steps, on the main thread, which also
 * makes the replicated entries live first.
 *
 * Order matters and belongs to the caller (takeover.ts): claim only once the replicated entries
 * are live; release first when mastership is lost or the node stops.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { isIPv4 } from 'node:net';
import { InterfaceSettings } from '../node/dataplane/sysctl.js';
import { IpBatch, type IpRunner } from '../node/dataplane/ip-batch.js';

export class VipError extends Error {
  readonly code = 'FAILOVER_VIP';
  constructor(message: string) {
    super(message);
    this.name = 'VipError';
  }
}

export interface VirtualAddress {
  /** Interface the address lives on (inside0, outside0...). */
  interface: string;
  /** The address and its prefix length, e.g. 10.50.1.1/24. */
  cidr: string;
}

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

/** Why a virtual address setting cannot be used, or null. */
export function checkVirtualAddress(v: VirtualAddress): string | null {
  if (!/^[A-Za-z0-9_.:-]{1,15}$/.test(v.interface)) return `interface "${v.interface}" is not an interface name`;
  const m = /^([^/]+)\/(\d{1,2})$/.exec(v.cidr);
  if (m === null || !isIPv4(m[1]) || Number(m[2]) > 32) return `"${v.cidr}" is not an IPv4 address with a prefix length (e.g. 10.0.0.1/24)`;
  return null;
}

export interface VipOptions {
  /** Gratuitous ARPs per address on a claim (default 3: the first at once, then one a second). */
  announceCount?: number;
  /** ms between the kernel's announcements (default 1000, as arping's). */
  repeatMs?: number;
  /** The address commands (default: a long-lived `ip -batch` of this process). */
  ip?: IpRunner;
  /** arping, where the kernel cannot announce. */
  launch?: Launch;
  /** An interface's MAC address, or null (default: /sys/class/net/NAME/address). */
  macOf?: (iface: string) => string | null;
  /** Sets arp_notify (default: /proc/sys, put back by close()); throws where it cannot. */
  settings?: Pick<InterfaceSettings, 'apply' | 'restore'>;
}

const readMac = (iface: string): string | null => {
  try {
    const mac = readFileSync(`/sys/class/net/${iface}/address`, 'latin1').trim();
    return /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(mac) ? mac : null;
  } catch {
    return null;
  }
};

/** How an interface's addresses are announced. */
export type AnnounceMethod = 'kernel' | 'arping';

export class VirtualAddresses {
  readonly #ip: IpRunner;
  readonly #launch: Launch;
  readonly #macOf: (iface: string) => string | null;
  readonly #settings: Pick<InterfaceSettings, 'apply' | 'restore'>;
  /** The arpings of the last claim, still repeating in the background. */
  #announcing: { stop(): void }[] = [];
  /** The kernel announcements still to repeat (one a second). */
  #repeat: NodeJS.Timeout | null = null;
  readonly #count: number;
  readonly #repeatMs: number;
  /** Per interface (in the order first seen), how its addresses are announced; set by start(). */
  readonly methods = new Map<string, AnnounceMethod>();
  #started = false;
  /** Claims, releases and announcements made, for status and metrics. */
  readonly stats = { claims: 0, releases: 0, announcements: 0, errors: 0 };
  /** Why an interface is announced with arping (the kernel way failed there), for the logs. */
  readonly fallbacks: string[] = [];

  constructor(readonly addresses: readonly VirtualAddress[], o: VipOptions = {}) {
    const bad = addresses.map((a, i) => [i, checkVirtualAddress(a)] as const).filter(([, why]) => why !== null);
    if (bad.length > 0) throw new VipError(bad.map(([i, why]) => `failover.virtualAddresses[${i}]: ${why}`).join('; '));
    this.#ip = o.ip ?? new IpBatch();
    this.#launch = o.launch ?? launchCommand;
    this.#macOf = o.macOf ?? readMac;
    this.#settings = o.settings ?? new InterfaceSettings();
    this.#count = o.announceCount ?? 3;
    this.#repeatMs = o.repeatMs ?? 1000;
  }

  /**
   * At the node's start: the ip process started, arp_notify set on the addresses' interfaces
   * (where it cannot be, or the MAC is unknown, that interface falls back to arping).
   */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    if (this.#ip instanceof IpBatch) this.#ip.start();
    for (const a of this.addresses) {
      if (this.methods.has(a.interface)) continue;
      let method: AnnounceMethod = 'kernel';
      try {
        if (this.#macOf(a.interface) === null) throw new Error('no MAC address readable');
        this.#settings.apply([a.interface], 'arp_notify', '1');
      } catch (e) {
        method = 'arping';
        this.fallbacks.push(`${a.interface}: arp_notify: ${(e as Error).message}`);
      }
      this.methods.set(a.interface, method);
    }
  }

  /** Add every address (idempotent: `addr replace`) and announce them, in one batch. */
  async claim(): Promise<void> {
    if (this.addresses.length === 0) return;
    this.start();
    this.#stopAnnouncing();
    const lines = this.addresses.map((a) => `addr replace ${a.cidr} dev ${a.interface}`);
    const kernel = this.#kernelLines();
    const r = await this.#ip.run([...lines, ...kernel.map((k) => k.line)]);
    const failedAddr = r.failed.filter((f) => f.index < lines.length);
    if (failedAddr.length > 0) {
      this.stats.errors++;
      throw new VipError(`cannot claim ${failedAddr.map((f) => `"${f.line}": ${f.reason}`).join('; ')}`);
    }
    this.stats.claims++;
    for (const f of r.failed) {
      const iface = kernel[f.index - lines.length].iface;
      this.methods.set(iface, 'arping');
      this.fallbacks.push(`${iface}: ${f.line}: ${f.reason}`);
    }
    this.stats.announcements += kernel.length - r.failed.length;
    await this.#arpings();
    this.#scheduleRepeats(this.#count - 1);
  }

  /** Announce again (a second master was heard: the neighbours may point at it). */
  async announce(): Promise<void> {
    this.start();
    this.#stopAnnouncing();
    const kernel = this.#kernelLines();
    const r = await this.#ip.run(kernel.map((k) => k.line));
    this.stats.announcements += kernel.length - r.failed.length;
    await this.#arpings();
    this.#scheduleRepeats(this.#count - 1);
  }

  /** `link set address` (to the MAC it has) per interface announced by the kernel. */
  #kernelLines(): { iface: string; line: string }[] {
    const out: { iface: string; line: string }[] = [];
    for (const [iface, m] of this.methods) {
      if (m !== 'kernel') continue;
      const mac = this.#macOf(iface);
      if (mac !== null) out.push({ iface, line: `link set dev ${iface} address ${mac}` });
    }
    return out;
  }

  #scheduleRepeats(left: number): void {
    if (left <= 0) return;
    const lines = this.#kernelLines().map((k) => k.line);
    if (lines.length === 0) return;
    this.#repeat = setTimeout(() => {
      this.#repeat = null;
      this.#ip.run(lines).then((r) => {
        this.stats.announcements += lines.length - r.failed.length;
      }, () => void this.stats.errors++);
      this.#scheduleRepeats(left - 1);
    }, this.#repeatMs);
    this.#repeat.unref();
  }

  /**
   * Gratuitous ARP with iputils arping for the interfaces the kernel cannot announce on. arping
   * sends its first packet as it starts and the others a second apart: this resolves once every
   * arping has started, and the repeats go on in the background.
   */
  async #arpings(): Promise<void> {
    const targets = this.addresses.filter((a) => this.methods.get(a.interface) === 'arping');
    this.#announcing = await Promise.all(targets.map((a) =>
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
    if (this.#repeat !== null) clearTimeout(this.#repeat);
    this.#repeat = null;
    for (const a of this.#announcing) a.stop();
    this.#announcing = [];
  }

  /** Remove every address (one not there is not an error). */
  async release(): Promise<void> {
    this.#stopAnnouncing();
    if (this.addresses.length === 0) return;
    const r = await this.#ip.run(this.addresses.map((a) => `addr del ${a.cidr} dev ${a.interface}`));
    // An address already gone: "Error: ipv4: Address not found." (older kernels: "RTNETLINK
    // answers: Cannot assign requested address").
    const bad = r.failed.filter((f) => !/Address not found|Cannot assign requested address/.test(f.reason));
    if (bad.length > 0) {
      this.stats.errors++;
      throw new VipError(`cannot release ${bad.map((f) => `"${f.line}": ${f.reason}`).join('; ')}`);
    }
    this.stats.releases++;
  }

  /** At the node's stop (after the release): the ip process ends, arp_notify is put back. Returns what could not be put back. */
  close(): string[] {
    this.#stopAnnouncing();
    this.#ip.close();
    return this.#settings.restore();
  }
}

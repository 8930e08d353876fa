/**
 * The node's own route lookup, for the output interface. Packets are queued from raw PREROUTING,
 * before the kernel routes them, so NFQUEUE reports outdev 0 and rules matching `out:` (and SNAT
 * rules chosen by output interface) would never match. The kernel's main routing table is read with
 * `ip -j route` (and `ip -j link` for the interface indexes) at start and refreshed off the packet
 * path, on each change `ip monitor` reports; per packet the engine asks for the longest matching prefix of the (DNAT-translated)
 * destination, as the kernel's routing decision after PREROUTING would.
 *
 * Routes are few on a firewall (a default route and the connected networks), so a list ordered by
 * prefix length, scanned with integer masks, is enough and allocates nothing.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { parseCidr } from '../packet/address.js';
import type { RouteLookup } from '../engine/engine.js';
import { DataplaneError } from './errors.js';
import { IpBatch } from './ip-batch.js';

export interface RouteEntry {
  family: 4 | 6;
  /** Network words (masked) and mask words, IPv4 in word 0. */
  net: Uint32Array;
  mask: Uint32Array;
  prefix: number;
  ifindex: number;
}

interface IpRoute {
  dst: string;
  dev?: string;
  type?: string;
}

interface IpLink {
  ifindex: number;
  ifname: string;
}

function maskWords(family: 4 | 6, prefix: number): Uint32Array {
  const m = new Uint32Array(4);
  for (let i = 0; i < (family === 4 ? 1 : 4); i++) {
    const b = prefix - i * 32;
    m[i] = b >= 32 ? 0xffffffff : b <= 0 ? 0 : (0xffffffff << (32 - b)) >>> 0;
  }
  return m;
}

/** Routes from `ip -j route` output and interface indexes from `ip -j link` output (exported for tests). */
export function routesFromIp(family: 4 | 6, routesJson: string, linksJson: string): RouteEntry[] {
  const links = JSON.parse(linksJson) as IpLink[];
  const index = new Map(links.map((l) => [l.ifname, l.ifindex]));
  const out: RouteEntry[] = [];
  for (const r of JSON.parse(routesJson) as IpRoute[]) {
    // Only unicast routes through an interface decide an output interface.
    if (r.dev === undefined || (r.type !== undefined && r.type !== 'unicast')) continue;
    const ifindex = index.get(r.dev);
    if (ifindex === undefined) continue;
    const cidr = parseCidr(r.dst === 'default' ? (family === 4 ? '0.0.0.0/0' : '::/0') : r.dst);
    const mask = maskWords(family, cidr.prefix);
    const net = new Uint32Array(4);
    for (let i = 0; i < 4; i++) net[i] = (cidr.words[i] & mask[i]) >>> 0;
    out.push({ family, net, mask, prefix: cidr.prefix, ifindex });
  }
  return out;
}

export class RouteTable implements RouteLookup {
  #routes: RouteEntry[] = [];
  #timer: NodeJS.Timeout | null = null;
  /** Why the last refresh failed, or null. */
  lastError: string | null = null;
  /** Refreshes done (at start, on changes, by the timer). */
  refreshes = 0;
  /** "index:name" of the interfaces the last refresh saw. */
  #links = new Set<string>();

  /** Replace the routes (longest prefix first). */
  set(routes: RouteEntry[]): void {
    this.#routes = [...routes].sort((a, b) => b.prefix - a.prefix);
  }

  get size(): number {
    return this.#routes.length;
  }

  /** The readers: one ip per family (the family is a global option of ip). */
  #ip4: IpBatch | null = null;
  #ip6: IpBatch | null = null;

  /** Read the kernel's main table of this network namespace. */
  async refresh(): Promise<void> {
    this.#ip4 ??= new IpBatch({ json: true, args: ['-4'] });
    this.#ip6 ??= new IpBatch({ json: true, args: ['-6'] });
    const [r4, r6] = await Promise.all([this.#ip4.run(['link show', 'route show table main']), this.#ip6.run(['route show table main'])]);
    if (r4.failed.length > 0 || r4.output.length !== 2) {
      throw new DataplaneError('DP_ROUTES', `cannot read the links and IPv4 routes: ${r4.failed.map((f) => `${f.line}: ${f.reason}`).join('; ') || 'no output'}`);
    }
    // IPv6 off in this namespace: no IPv6 routes.
    const v6 = r6.failed.length === 0 && r6.output.length === 1 ? r6.output[0] : '[]';
    this.set([...routesFromIp(4, r4.output[1], r4.output[0]), ...routesFromIp(6, v6, r4.output[0])]);
    this.#links = new Set((JSON.parse(r4.output[0]) as IpLink[]).map((l) => `${l.ifindex}:${l.ifname}`));
    this.refreshes++;
  }

  /**
   * Whether a chunk of `ip monitor link route` lines can change an output interface: a route of
   * the main table added or removed, an interface appearing, going or renamed. Not: routes of
   * the local table (an address added or removed: a virtual address claimed or released) and a
   * change of an interface we know by the same index and name (its flags, its MAC: a takeover
   * sets each data interface's MAC again to announce the addresses). Refreshing for those held
   * the new master's packet path ~10 ms right after its claim (JSON of every link parsed, cold).
   */
  monitorLinesMatter(chunk: string): boolean {
    for (const l of chunk.split('\n')) {
      // Blank, or a continuation line of a link's entry (its link/ether ... line).
      if (l === '' || l.startsWith(' ')) continue;
      if (l.includes(' table local ')) continue;
      const link = /^(Deleted )?(\d+): ([^:@\s]+)[@:]/.exec(l);
      if (link !== null && link[1] === undefined && this.#links.has(`${link[2]}:${link[3]}`)) continue;
      return true;
    }
    return false;
  }

  /**
   * Refresh now, on every change `ip monitor link route` reports (an interface replaced, as
   * `docker network connect` or a VIP move does, changes its index: packets must not go on with
   * the old one until a timer fires) and every `ms` as a fallback (timer unref'd). A failed
   * refresh keeps the old routes.
   */
  async start(ms = 5000, onError?: (e: unknown) => void): Promise<void> {
    await this.refresh();
    const again = (): void => {
      this.refresh().then(
        () => (this.lastError = null),
        (e: unknown) => {
          this.lastError = String(e);
          onError?.(e);
        },
      );
    };
    this.#timer = setInterval(again, ms);
    this.#timer.unref();
    // Tied to this process (as the election's link monitor): the shell kills the monitor when our
    // end of its stdin closes, so an `ip monitor` never outlives the daemon holding what it inherited.
    const mon = spawn('sh', ['-c', 'ip monitor link route & read _; kill $! 2>/dev/null'], { stdio: ['pipe', 'pipe', 'ignore'] });
    mon.on('error', (e) => onError?.(e));
    let pending: NodeJS.Timeout | null = null;
    // A burst of changes (a link and its routes) makes one refresh, 20 ms after the first; only
    // changes that can move an output interface (monitorLinesMatter).
    mon.stdout.setEncoding('utf8');
    mon.stdout.on('data', (chunk: string) => {
      if (!this.monitorLinesMatter(chunk)) return;
      pending ??= setTimeout(() => {
        pending = null;
        again();
      }, 20);
    });
    mon.unref();
    // (The pipes are sockets: unref'd too, so the monitor never keeps the process alive.)
    (mon.stdout as unknown as Socket).unref();
    (mon.stdin as unknown as Socket).unref();
    this.#monitor = mon;
  }

  #monitor: ChildProcess | null = null;

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    this.#monitor?.stdin?.end();
    this.#monitor = null;
    this.#ip4?.close();
    this.#ip6?.close();
    this.#ip4 = this.#ip6 = null;
  }

  /** Output interface for a destination: the longest matching prefix's ifindex, 0 when none. */
  outIf(family: number, dst: Uint32Array): number {
    const rs = this.#routes;
    for (let i = 0; i < rs.length; i++) {
      const r = rs[i];
      if (r.family !== family) continue;
      const m = r.mask;
      const n = r.net;
      if (((dst[0] & m[0]) >>> 0) !== n[0]) continue;
      if (family === 6 && (((dst[1] & m[1]) >>> 0) !== n[1] || ((dst[2] & m[2]) >>> 0) !== n[2] || ((dst[3] & m[3]) >>> 0) !== n[3])) continue;
      return r.ifindex;
    }
    return 0;
  }
}

/**
 * The lab: a client, two firewall nodes, a server, and the three networks between them, each a
 * bridge in a switch namespace of its own (so nothing is made outside the lab's namespaces):
 *
 *   client (inside0 10.50.1.10) --[inside bridge]--  fw1 inside0 10.50.1.2   fw2 inside0 10.50.1.3
 *   server (outside0 10.50.2.10) -[outside bridge]-  fw1 outside0 10.50.2.2  fw2 outside0 10.50.2.3
 *                                  [sync bridge]     fw1 sync0 10.50.3.2     fw2 sync0 10.50.3.3
 *
 * With { ipv6: true } the inside and outside networks also carry fd00:50:1::/64 and fd00:50:2::/64
 * (LAB_ADDR6, same host numbers).
 *
 * Interface names are the same in every namespace (names are per namespace), so a node's config
 * reads like a real one. Forwarding on and rp_filter off in the firewalls (the pair will move
 * addresses between them). For now the client and server route through fw1; the virtual addresses
 * come with failover. Used by the lab tests, scripts/lab.sh, bench/dataplane and the lab demo.
 */
import { Lab, run } from './netns.js';

export const LAB_ADDR = {
  client: '10.50.1.10',
  server: '10.50.2.10',
  fw1: { inside: '10.50.1.2', outside: '10.50.2.2', sync: '10.50.3.2' },
  fw2: { inside: '10.50.1.3', outside: '10.50.2.3', sync: '10.50.3.3' },
  insideNet: '10.50.1.0/24',
  outsideNet: '10.50.2.0/24',
} as const;

/** IPv6 addresses, when the lab is built with { ipv6: true } (otherwise IPv6 is off in the firewalls). */
export const LAB_ADDR6 = {
  client: 'fd00:50:1::10',
  server: 'fd00:50:2::10',
  fw1: { inside: 'fd00:50:1::2', outside: 'fd00:50:2::2' },
  fw2: { inside: 'fd00:50:1::3', outside: 'fd00:50:2::3' },
  insideNet: 'fd00:50:1::/64',
  outsideNet: 'fd00:50:2::/64',
} as const;

export interface LabOptions {
  /** Also give every inside/outside port an IPv6 address (no DAD) and route IPv6 through fw1. */
  ipv6?: boolean;
}

export const LAB_IF = { inside: 'inside0', outside: 'outside0', sync: 'sync0' } as const;

const NAMES = ['sw', 'client', 'server', 'fw1', 'fw2'] as const;
type NodeName = (typeof NAMES)[number];

export class LabTopology {
  readonly lab: Lab;
  /** Full namespace names. */
  readonly ns = { sw: '', client: '', server: '', fw1: '', fw2: '' } as Record<NodeName, string>;

  readonly ipv6: boolean;

  constructor(suffix?: string, options: LabOptions = {}) {
    this.lab = new Lab(suffix);
    this.ipv6 = options.ipv6 ?? false;
  }

  /** Build everything; on failure removes what was made and rethrows. */
  build(): this {
    try {
      this.#build();
    } catch (e) {
      this.cleanup();
      throw e;
    }
    return this;
  }

  /** Run a command in one of the lab's namespaces. */
  exec(node: NodeName, cmd: string, args: string[], input?: string): string {
    return this.lab.exec(this.ns[node], cmd, args, input);
  }

  /** Run a command in a namespace; a non-zero exit is a result (code, output), not an exception. */
  try(node: NodeName, cmd: string, args: string[]): { code: number; out: string; err: string } {
    try {
      return { code: 0, out: this.exec(node, cmd, args), err: '' };
    } catch (e) {
      const err = e as { status?: number; stdout?: string; stderr?: string };
      return { code: err.status ?? -1, out: err.stdout ?? '', err: err.stderr ?? '' };
    }
  }

  /** Wait until a TCP port listens in a namespace (servers start asynchronously). */
  async waitListening(node: NodeName, port: number, ms = 5000): Promise<void> {
    for (let waited = 0; waited < ms; waited += 100) {
      if (this.exec(node, 'ss', ['-Hltn', `sport = :${port}`]).trim()) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`nothing listens on port ${port} in ${node} after ${ms} ms (is python3 installed?)`);
  }

  /** Remove the namespaces (the veths and bridges go with them) and kill the agents. */
  cleanup(): void {
    this.lab.cleanup();
  }

  /** Remove a lab left by an earlier run with this suffix (scripts/lab.sh down). */
  static remove(suffix: string): number {
    const t = new LabTopology(suffix);
    let n = 0;
    for (const name of NAMES) if (t.lab.adopt(name)) n++;
    t.cleanup();
    return n;
  }

  #build(): void {
    for (const name of NAMES) this.ns[name] = this.lab.netns(name);
    const sw = this.ns.sw;
    const bridges = { inside: 'br-inside', outside: 'br-outside', sync: 'br-sync' } as const;
    for (const br of Object.values(bridges)) {
      this.lab.exec(sw, 'ip', ['link', 'add', br, 'type', 'bridge']);
      this.lab.exec(sw, 'ip', ['link', 'set', br, 'up']);
    }
    this.#port('client', 'inside', `${LAB_ADDR.client}/24`, bridges.inside);
    this.#port('server', 'outside', `${LAB_ADDR.server}/24`, bridges.outside);
    for (const fw of ['fw1', 'fw2'] as const) {
      this.#port(fw, 'inside', `${LAB_ADDR[fw].inside}/24`, bridges.inside);
      this.#port(fw, 'outside', `${LAB_ADDR[fw].outside}/24`, bridges.outside);
      this.#port(fw, 'sync', `${LAB_ADDR[fw].sync}/24`, bridges.sync);
      const sysctl = (k: string, v: string) => this.exec(fw, 'sysctl', ['-qw', `${k}=${v}`]);
      sysctl('net.ipv4.ip_forward', '1');
      sysctl('net.ipv4.conf.all.rp_filter', '0');
      sysctl('net.ipv4.conf.default.rp_filter', '0');
      for (const i of Object.values(LAB_IF)) sysctl(`net.ipv4.conf.${i}.rp_filter`, '0');
      if (this.ipv6) {
        sysctl('net.ipv6.conf.all.forwarding', '1');
        for (const net of ['inside', 'outside'] as const) this.#addr6(fw, net, LAB_ADDR6[fw][net]);
      } else {
        // The lab's traffic is IPv4; no router advertisements or DAD delays from IPv6 autoconf.
        sysctl('net.ipv6.conf.all.disable_ipv6', '1');
      }
    }
    this.exec('client', 'ip', ['route', 'add', 'default', 'via', LAB_ADDR.fw1.inside]);
    this.exec('server', 'ip', ['route', 'add', LAB_ADDR.insideNet, 'via', LAB_ADDR.fw1.outside]);
    if (this.ipv6) {
      this.#addr6('client', 'inside', LAB_ADDR6.client);
      this.#addr6('server', 'outside', LAB_ADDR6.server);
      this.exec('client', 'ip', ['-6', 'route', 'add', 'default', 'via', LAB_ADDR6.fw1.inside]);
      this.exec('server', 'ip', ['-6', 'route', 'add', LAB_ADDR6.insideNet, 'via', LAB_ADDR6.fw1.outside]);
    }
  }

  /** An IPv6 address without duplicate address detection (usable at once). */
  #addr6(node: NodeName, net: 'inside' | 'outside', addr: string): void {
    this.exec(node, 'ip', ['-6', 'addr', 'add', `${addr}/64`, 'dev', LAB_IF[net], 'nodad']);
  }

  #links = 0;

  /** A veth from `node` (named LAB_IF[net]) to a port of `bridge` in the switch namespace. */
  #port(node: NodeName, net: keyof typeof LAB_IF, cidr: string, bridge: string): void {
    const ns = this.ns[node];
    const n = this.#links++;
    // Made in the switch namespace with short unique names, then one end moved and renamed.
    const inner = `p${n}i`;
    const outer = `p${n}-${node}`.slice(0, 15);
    this.lab.exec(this.ns.sw, 'ip', ['link', 'add', outer, 'type', 'veth', 'peer', 'name', inner]);
    this.lab.exec(this.ns.sw, 'ip', ['link', 'set', inner, 'netns', ns]);
    this.lab.exec(this.ns.sw, 'ip', ['link', 'set', outer, 'master', bridge, 'up']);
    this.lab.exec(ns, 'ip', ['link', 'set', inner, 'name', LAB_IF[net]]);
    this.lab.exec(ns, 'ip', ['addr', 'add', cidr, 'dev', LAB_IF[net]]);
    this.lab.exec(ns, 'ip', ['link', 'set', LAB_IF[net], 'up']);
  }
}

export { run };

/**
 * Two real daemons (`twinwall node --config FILE`) in fw1 and fw2 of a lab of their own, for the
 * lab tests of the pair as operators run it: config files and the control sockets in a temporary
 * folder, the CLI run inside each namespace, the daemons' output collected for failure messages.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LAB_ADDR, LabTopology } from './topology.js';

export type Fw = 'fw1' | 'fw2';
/** The pair's virtual addresses in the lab (inside: the clients' gateway; outside: SNAT's). */
export const VIP_IN = '10.50.1.1';
export const VIP_OUT = '10.50.2.1';
/** The lab's ruleset with SNAT to the outside virtual address. */
export const NAT_RULES = fileURLToPath(new URL(import.meta.url.includes('/dist/') ? '../../../test/lab/lab-nat-rules.yaml' : './lab-nat-rules.yaml', import.meta.url));
const cli = fileURLToPath(new URL(import.meta.url.includes('/dist/') ? '../../src/cli/main.js' : '../../dist/src/cli/main.js', import.meta.url));

export class DaemonPair {
  readonly topo = new LabTopology();
  readonly dir: string;
  readonly daemons: Partial<Record<Fw, { child: ChildProcess; exited: Promise<number | null> }>> = {};
  /** Everything the daemons printed, prefixed by node. */
  log = '';

  constructor(prefix: string) {
    this.dir = mkdtempSync(join(tmpdir(), prefix));
  }

  sock(fw: Fw): string {
    return join(this.dir, `${fw}.sock`);
  }

  /** The CLI against fw's daemon, run in fw's namespace. */
  twinwall(fw: Fw, ...args: string[]): { code: number; out: string; err: string } {
    return this.topo.try(fw, 'node', [cli, ...args, '--socket', this.sock(fw)]);
  }

  /** fw's `sync status` says it holds the peer's whole table (its resync completed). */
  synced(fw: Fw): boolean {
    const r = this.twinwall(fw, 'sync', 'status', '-o', 'json');
    return r.code === 0 && (JSON.parse(r.out) as { peer: { synced: boolean } | null }).peer?.synced === true;
  }

  async until(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
    for (const end = Date.now() + ms; Date.now() < end;) {
      if (ok()) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`${what} not within ${ms} ms; daemon logs:\n${this.log}`);
  }

  /** Write fw's config (its lines, YAML) and start its daemon. */
  start(fw: Fw, configLines: string[]): void {
    const config = join(this.dir, `${fw}.yaml`);
    writeFileSync(config, `${configLines.join('\n')}\n`);
    const child = spawn('ip', ['netns', 'exec', this.topo.ns[fw], process.execPath, cli, 'node', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.on('data', (d: Buffer) => (this.log += `[${fw}] ${d.toString()}`));
    child.stderr?.on('data', (d: Buffer) => (this.log += `[${fw}] ${d.toString()}`));
    this.daemons[fw] = { child, exited: new Promise((resolve) => child.on('exit', (code) => resolve(code))) };
  }

  /**
   * The config lines of a pair with sync (multicast on sync0, key file sync.key in the folder)
   * and failover (both virtual addresses, adverts on the three links) for fw: priority 200 for
   * fw1, 100 for fw2. `unicast`: no multicast at all (a cloud network): sync to the peer's sync
   * address, adverts to its address on each link.
   */
  static pairSections(fw: Fw, o: { intervalMs: number; vipIn: string; vipOut: string; unicast?: boolean }): string[] {
    const peer = LAB_ADDR[fw === 'fw1' ? 'fw2' : 'fw1'];
    return [
      'sync:',
      `  nodeId: ${fw === 'fw1' ? 1 : 2}`,
      '  interface: sync0',
      `  address: ${LAB_ADDR[fw].sync}`,
      o.unicast ? `  peer: ${peer.sync}` : '  group: 225.0.0.50',
      '  keys: [{ id: 1, file: sync.key }]',
      '  sendKey: 1',
      'failover:',
      `  priority: ${fw === 'fw1' ? 200 : 100}`,
      `  advertIntervalMs: ${o.intervalMs}`,
      '  links: [inside0, outside0, sync0]',
      ...(o.unicast
        ? ['  unicastPeers:', `    - { interface: inside0, address: ${peer.inside} }`, `    - { interface: outside0, address: ${peer.outside} }`, `    - { interface: sync0, address: ${peer.sync} }`]
        : []),
      '  virtualAddresses:',
      `    - { interface: inside0, cidr: ${o.vipIn}/24 }`,
      `    - { interface: outside0, cidr: ${o.vipOut}/24 }`,
    ];
  }

  /** Kill what still runs, remove the lab and the folder. */
  cleanup(): void {
    try {
      for (const d of Object.values(this.daemons)) d?.child.kill('SIGKILL');
    } finally {
      this.topo.cleanup();
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}

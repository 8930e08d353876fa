/**
 * How fast a client's traffic follows a virtual address that moves, by the two ways issue 6 names:
 *   - garp: the new master adds the address to its own interface and the kernel announces it
 *     (arp_notify=1 and the interface's own MAC set again: what src/failover/vip.ts does); the
 *     client's neighbour entry moves to the new master's MAC;
 *   - vmac: VRRP's virtual MAC (00:00:5e:00:01:<vrid>) on a macvlan of each router, the address
 *     on it; the new master brings its macvlan up (the kernel announces from the virtual MAC); the
 *     client's neighbour entry never changes, the switch learns the MAC's new port.
 * Lab of its own: a client, routers A and B, and a switch namespace with a bridge. A 1 kHz ping
 * from the client to the address; the move is A's switch port going down, then B's claim (one
 * `ip -batch` in B either way); the outage is the longest run of lost echo replies. The election
 * is left out (it is the same for both): this is the announcement alone.
 * Run (root): node dist/bench/failover/announce.js [--runs N]
 */
import { execFileSync, spawn } from 'node:child_process';
import { Lab, run } from '../../test/lab/netns.js';

const runsArg = process.argv.indexOf('--runs');
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 10;
const VIP = '10.78.0.1';
const VMAC = '00:00:5e:00:01:4e';

type Method = 'garp' | 'vmac';

interface Lab4 {
  lab: Lab;
  ns: { c: string; a: string; b: string; s: string };
  /** Router-side interface names (in A and B) and their ports on the bridge (in S). */
  aIf: string;
  bIf: string;
  aPort: string;
}

function build(method: Method): Lab4 {
  const lab = new Lab();
  const ns = { c: lab.netns('anc'), a: lab.netns('ana'), b: lab.netns('anb'), s: lab.netns('ans') };
  const sx = (...args: string[]): string => lab.exec(ns.s, 'ip', args);
  sx('link', 'add', 'br0', 'type', 'bridge');
  sx('link', 'set', 'br0', 'up');
  const port = (who: 'c' | 'a' | 'b'): { inner: string; outer: string } => {
    const inner = `an${who}${lab.suffix}`.slice(0, 15);
    const outer = `sw${who}${lab.suffix}`.slice(0, 15);
    run('ip', ['link', 'add', inner, 'netns', ns[who], 'type', 'veth', 'peer', 'name', outer, 'netns', ns.s]);
    sx('link', 'set', outer, 'master', 'br0');
    sx('link', 'set', outer, 'up');
    lab.exec(ns[who], 'ip', ['link', 'set', inner, 'up']);
    return { inner, outer };
  };
  const c = port('c');
  const a = port('a');
  const b = port('b');
  lab.exec(ns.c, 'ip', ['addr', 'add', '10.78.0.100/24', 'dev', c.inner]);
  const sysctl = (n: string, k: string, v: string): void => void lab.exec(n, 'sysctl', ['-qw', `${k}=${v}`]);
  for (const [n, ifc, addr] of [[ns.a, a.inner, '10.78.0.2/24'], [ns.b, b.inner, '10.78.0.3/24']] as const) {
    lab.exec(n, 'ip', ['addr', 'add', addr, 'dev', ifc]);
    // Answer ARP only for addresses of the interface asked (the macvlan's address is not eth's).
    sysctl(n, 'net.ipv4.conf.all.arp_ignore', '1');
    sysctl(n, `net.ipv4.conf.${ifc}.arp_notify`, '1');
    if (method === 'vmac') {
      lab.exec(n, 'ip', ['link', 'add', 'vr0', 'link', ifc, 'address', VMAC, 'type', 'macvlan', 'mode', 'bridge']);
      sysctl(n, 'net.ipv4.conf.vr0.arp_notify', '1');
      lab.exec(n, 'ip', ['addr', 'add', `${VIP}/24`, 'dev', 'vr0']);
    }
  }
  // A is master: it holds the address (vmac: its macvlan up; B's is down).
  if (method === 'vmac') lab.exec(ns.a, 'ip', ['link', 'set', 'vr0', 'up']);
  else lab.exec(ns.a, 'ip', ['addr', 'add', `${VIP}/24`, 'dev', a.inner]);
  return { lab, ns, aIf: a.inner, bIf: b.inner, aPort: a.outer };
}

/** B's claim, one batch: the method's way. */
function claim(l: Lab4, method: Method): string {
  if (method === 'vmac') return 'link set dev vr0 up\n';
  const mac = l.lab.exec(l.ns.b, 'cat', [`/sys/class/net/${l.bIf}/address`]).trim();
  return `address add ${VIP}/24 dev ${l.bIf}\nlink set dev ${l.bIf} address ${mac}\n`;
}

/** One move: ms of the longest run of lost replies of a 1 kHz ping across it. */
async function once(l: Lab4, method: Method): Promise<number> {
  const batch = claim(l, method);
  // A fresh lab per run: A holds the address, the client's neighbour cache points to A.
  const ping = spawn('ip', ['netns', 'exec', l.ns.c, 'ping', '-n', '-i', '0.001', '-c', '1200', '-W', '1', VIP], { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  ping.stdout.setEncoding('utf8');
  ping.stdout.on('data', (d: string) => void (out += d));
  const done = new Promise<void>((r) => ping.once('exit', () => r()));
  await new Promise((r) => setTimeout(r, 400));
  execFileSync('ip', ['-n', l.ns.s, 'link', 'set', l.aPort, 'down']);
  execFileSync('ip', ['-n', l.ns.b, '-batch', '-'], { input: batch });
  await done;
  const seqs = [...out.matchAll(/icmp_seq=(\d+)/g)].map((m) => Number(m[1]));
  let gap = 0;
  for (let i = 1; i < seqs.length; i++) gap = Math.max(gap, seqs[i] - seqs[i - 1] - 1);
  if (seqs.length < 100) throw new Error(`${method}: only ${seqs.length} replies: the lab does not forward`);
  return gap;
}

async function main(): Promise<void> {
  const res: Record<Method, number[]> = { garp: [], vmac: [] };
  for (let r = 0; r < RUNS; r++) {
    for (const method of ['garp', 'vmac'] as const) {
      const l = build(method);
      try {
        res[method].push(await once(l, method));
      } finally {
        l.lab.cleanup();
      }
    }
  }
  const fmt = (xs: number[]): string => {
    const s = [...xs].sort((a, b) => a - b);
    return `min ${s[0]} / median ${s[Math.floor(s.length / 2)]} / max ${s[s.length - 1]} ms`;
  };
  console.log(`virtual address moved from A to B (A's port down, then B's claim), 1 kHz ping, ${RUNS} runs each; replies lost in a row:`);
  console.log(`  gratuitous ARP (the address on B's interface, arp_notify): ${fmt(res.garp)}`);
  console.log(`  virtual MAC on a macvlan (B's macvlan up):                  ${fmt(res.vmac)}`);
}

await main();

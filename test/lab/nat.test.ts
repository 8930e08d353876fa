/**
 * NAT against the real thing: the engine on NFQUEUE in fw1 of the lab (the dataplane-node agent,
 * as in dataplane.test.ts) with test/lab/lab-nat-rules.yaml: SNAT of the inside network to fw1's
 * outside address 10.50.2.2, and a port forward 10.50.2.2:8888 -> client 10.50.1.10:7000.
 *
 * What the far ends see is the proof: peer-echo agents answer with the source address they got,
 * the client's kernel only delivers an ICMP port unreachable to its connected UDP socket when the
 * error's outer destination and quoted packet were both translated back to the client's own
 * addresses; the conntrack table must hold the mapping in each entry's reply tuple.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { labAvailable, labRequired, type LineAgent } from './netns.js';
import { LAB_ADDR, LabTopology } from './topology.js';
import { compileProject } from './compile.js';
import { quitAgent, startDataplaneAgent } from './dataplane-agent.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const rules = fileURLToPath(new URL('./lab-nat-rules.yaml', import.meta.url));
const peerEcho = fileURLToPath(new URL('./agents/peer-echo.py', import.meta.url));
const QUEUE = 43;
const OUTSIDE = LAB_ADDR.fw1.outside; // the SNAT address and the port forward's address
const ECHO = 7000; // peer-echo, TCP and UDP, on the server and (the forward's target) the client
const FORWARD = 8888; // 10.50.2.2:8888 -> 10.50.1.10:7000
const avail = labAvailable();
if (!avail.ok && labRequired) throw new Error(`TWINWALL_REQUIRE_LAB=1 but ${avail.why}`);

interface NodeStats {
  ok: boolean;
  dataplane: { counters: Record<string, number> };
  engine: { accepted: number; dropped: number; drops: Record<string, number>; invalid: Record<string, number> };
  table: string[];
  engineErrors: string[];
}

/** The two tuples of a `conntrack -L` line: [original, reply], each its key=value fields. */
function tuples(line: string): [Record<string, string>, Record<string, string>] {
  const halves = line.split(/(?=\bsrc=)/).slice(1);
  const parse = (s: string) => Object.fromEntries([...s.matchAll(/\b(src|dst|sport|dport|type|code|id)=(\S+)/g)].map((m) => [m[1], m[2]])) as Record<string, string>;
  return [parse(halves[0] ?? ''), parse(halves[1] ?? '')];
}

describe.skipIf(!avail.ok)('NAT on NFQUEUE in the lab', () => {
  const topo = new LabTopology();
  let node: LineAgent;
  const servers: ChildProcess[] = [];

  function serve(ns: string, args: string[]): void {
    servers.push(spawn('ip', ['netns', 'exec', ns, ...args], { stdio: 'ignore' }));
  }


  /** python3 -c in a namespace; every script bounds itself with a socket timeout. */
  function py(ns: 'client' | 'server', lines: string[]): string {
    return topo.try(ns, 'python3', ['-c', lines.join('\n')]).out.trim();
  }

  async function stats(): Promise<NodeStats> {
    const a = JSON.parse(await node.ask('stats')) as NodeStats;
    expect(a.ok).toBe(true);
    return a;
  }


  beforeAll(async () => {
    compileProject(root);
    topo.build();
    serve(topo.ns.server, ['python3', peerEcho, LAB_ADDR.server, String(ECHO)]);
    serve(topo.ns.client, ['python3', peerEcho, LAB_ADDR.client, String(ECHO)]);
    node = await startDataplaneAgent(topo, rules, { queueNum: QUEUE, dataInterfaces: ['inside0', 'outside0'], ipv6: false });
    await topo.waitListening('server', ECHO);
    await topo.waitListening('client', ECHO);
  }, 60_000);

  afterAll(async () => {
    try {
      await quitAgent(node);
    } finally {
      for (const s of servers) s.kill('SIGKILL');
      topo.cleanup();
    }
  });

  it('SNAT: over TCP the server sees the outside address, and the entry holds the mapping', async () => {
    const out = py('client', [
      'import socket', `s=socket.create_connection(("${LAB_ADDR.server}",${ECHO}),timeout=3)`,
      'print(s.getsockname()[1], s.makefile().readline().strip())',
    ]);
    const m = /^(\d+) peer ([\d.]+):(\d+)$/.exec(out);
    expect(m, `client said "${out}"`).not.toBeNull();
    const [, clientPort, seenAddr, seenPort] = m as RegExpExecArray;
    expect(seenAddr).toBe(OUTSIDE);
    const line = (await stats()).table.find((l) => l.startsWith('tcp') && l.includes(`sport=${clientPort} dport=${ECHO}`));
    expect(line, 'no entry for the connection').toBeDefined();
    const [orig, reply] = tuples(line ?? '');
    expect(orig).toMatchObject({ src: LAB_ADDR.client, dst: LAB_ADDR.server, sport: clientPort, dport: String(ECHO) });
    // The reply tuple is what the server answers: to the outside address and the port it saw.
    expect(reply).toMatchObject({ src: LAB_ADDR.server, dst: OUTSIDE, sport: String(ECHO), dport: seenPort });
  });

  it('SNAT: UDP gets an answer, sent by the server to the outside address', async () => {
    const out = py('client', [
      'import socket', 's=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)', 's.settimeout(2)',
      `s.sendto(b"hi",("${LAB_ADDR.server}",${ECHO}))`, 'print(s.getsockname()[1], s.recvfrom(2048)[0].decode().strip())',
    ]);
    const m = /^(\d+) peer ([\d.]+):(\d+)$/.exec(out);
    expect(m, `client said "${out}"`).not.toBeNull();
    const [, clientPort, seenAddr, seenPort] = m as RegExpExecArray;
    expect(seenAddr).toBe(OUTSIDE);
    const line = (await stats()).table.find((l) => l.startsWith('udp') && l.includes(`sport=${clientPort} dport=${ECHO}`));
    expect(line).toBeDefined();
    expect(line).not.toContain('UNREPLIED');
    expect(tuples(line ?? '')[1]).toMatchObject({ src: LAB_ADDR.server, dst: OUTSIDE, dport: seenPort });
  });

  it('SNAT: ping is answered, its entry mapped to the outside address', async () => {
    const ping = topo.try('client', 'ping', ['-c', '3', '-i', '0.2', '-W', '1', LAB_ADDR.server]);
    expect(ping.code, ping.out).toBe(0);
    expect(ping.out).toContain('3 received');
    const line = (await stats()).table.find((l) => l.startsWith('icmp') && l.includes(`dst=${LAB_ADDR.server}`));
    expect(line).toBeDefined();
    const [orig, reply] = tuples(line ?? '');
    expect(orig).toMatchObject({ src: LAB_ADDR.client, dst: LAB_ADDR.server, type: '8' });
    expect(reply).toMatchObject({ src: LAB_ADDR.server, dst: OUTSIDE, type: '0' });
  });

  it('DNAT: a connection from outside to the outside address:8888 reaches the inside listener', async () => {
    const out = py('server', [
      'import socket', `s=socket.create_connection(("${OUTSIDE}",${FORWARD}),timeout=3)`,
      'print(s.getsockname()[1], s.makefile().readline().strip())',
    ]);
    const m = /^(\d+) peer ([\d.]+):(\d+)$/.exec(out);
    expect(m, `server said "${out}"`).not.toBeNull();
    const [, serverPort, seenAddr, seenPort] = m as RegExpExecArray;
    // The inside listener answered (only the client runs one on 7000 behind the forward), and it
    // saw the real outside peer: a port forward changes the destination only.
    expect(seenAddr).toBe(LAB_ADDR.server);
    expect(seenPort).toBe(serverPort);
    const line = (await stats()).table.find((l) => l.startsWith('tcp') && l.includes(`sport=${serverPort} dport=${FORWARD}`));
    expect(line).toBeDefined();
    const [orig, reply] = tuples(line ?? '');
    expect(orig).toMatchObject({ src: LAB_ADDR.server, dst: OUTSIDE, dport: String(FORWARD) });
    expect(reply).toMatchObject({ src: LAB_ADDR.client, dst: LAB_ADDR.server, sport: String(ECHO), dport: serverPort });
  });

  it('an ICMP port unreachable for a SNATed UDP flow passes as RELATED with its inner packet NATed', async () => {
    const before = await stats();
    // Port 9 is closed on the server: its kernel answers to the outside address, quoting the
    // translated datagram. The client's connected socket reports the error only if fw1 turned both
    // the outer destination and the quoted source back into the client's own address and port.
    const out = py('client', [
      'import socket', 's=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)', 's.settimeout(2)',
      `s.connect(("${LAB_ADDR.server}",9))`, 's.send(b"x")',
      'try:', ' s.recv(2048); print("answered")',
      'except ConnectionRefusedError: print("refused")',
      'except socket.timeout: print("timeout")',
    ]);
    expect(out).toBe('refused');
    const after = await stats();
    // Accepted (the ESTABLISHED,RELATED rule; the policy is drop), nothing dropped on the way.
    expect(after.engine.accepted - before.engine.accepted).toBeGreaterThanOrEqual(2);
    expect(after.engine.dropped).toBe(before.engine.dropped);
    expect(after.dataplane.counters.modified).toBeGreaterThan(before.dataplane.counters.modified ?? 0);
    const line = after.table.find((l) => l.startsWith('udp') && l.includes('dport=9 '));
    expect(line).toBeDefined();
    expect(tuples(line ?? '')[1]).toMatchObject({ src: LAB_ADDR.server, dst: OUTSIDE, sport: '9' });
    expect(after.engineErrors).toEqual([]);
  });
});

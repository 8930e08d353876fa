/**
 * IPv6 through the data plane, against the real thing: the lab with IPv6 addresses, the engine on
 * NFQUEUE in fw1 with ip6tables rules as well, and real IPv6 traffic (ping, an HTTP transfer, a
 * REJECT answered with a reset, unsolicited inbound dropped). Neighbour discovery must keep
 * working while the forward chain drops by default: the node never queues it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { labAvailable, labRequired, type LineAgent } from './netns.js';
import { LAB_ADDR6, LabTopology } from './topology.js';
import { compileProject } from './compile.js';
import { quitAgent, startDataplaneAgent } from './dataplane-agent.js';
import { FtpServer } from './ftp-server.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const httpServe = fileURLToPath(new URL('./agents/http-serve.py', import.meta.url));
const QUEUE = 46;
const avail = labAvailable();
if (!avail.ok && labRequired) throw new Error(`TWINWALL_REQUIRE_LAB=1 but ${avail.why}`);
if (avail.ok && !FtpServer.available() && labRequired) throw new Error('TWINWALL_REQUIRE_LAB=1 but vsftpd is not installed: run bash scripts/setup.sh');

const RULES = `
chains:
  raw:
    rules:
      - match: { in: inside0, proto: tcp, dport: 21 }
        target: { helper: ftp }
  forward:
    policy: drop
    rules:
      - match: { ctstate: [ESTABLISHED, RELATED] }
        target: ACCEPT
      - match: { ctstate: INVALID }
        target: DROP
      - match: { in: inside0, ctstate: NEW, proto: tcp, syn: true, dst: "${LAB_ADDR6.outsideNet}", dport: 8080 }
        target: ACCEPT
      - match: { in: inside0, proto: icmpv6, icmpType: echo-request, dst: "${LAB_ADDR6.outsideNet}" }
        target: ACCEPT
      - match: { in: inside0, ctstate: NEW, proto: tcp, syn: true, dst: "${LAB_ADDR6.server}", dport: 21 }
        target: ACCEPT
      - match: { in: inside0, proto: tcp, dport: 8081 }
        target: { reject: tcp-reset }
`;

interface NodeStats {
  engine: { accepted: number; dropped: number; drops: Record<string, number> };
  helpers: { ftp: { expected: number } };
  table: string[];
  engineErrors: string[];
}

describe.skipIf(!avail.ok || !FtpServer.available())('IPv6 through the data plane in the lab', () => {
  const topo = new LabTopology(undefined, { ipv6: true });
  let node: LineAgent;
  let dir = '';
  const servers: ChildProcess[] = [];
  let ftp: FtpServer | undefined;

  const stats = async (): Promise<NodeStats> => JSON.parse(await node.ask('stats')) as NodeStats;

  beforeAll(async () => {
    compileProject(root);
    topo.build();
    dir = mkdtempSync(join(tmpdir(), 'twlab6-'));
    writeFileSync(join(dir, 'blob'), Buffer.alloc(1 << 20, 0x62));
    writeFileSync(join(dir, 'rules.yaml'), RULES);
    for (const [ns, addr, port] of [
      [topo.ns.server, LAB_ADDR6.server, '8080'],
      [topo.ns.server, LAB_ADDR6.server, '8081'],
      [topo.ns.client, LAB_ADDR6.client, '8080'],
    ] as const) {
      servers.push(spawn('ip', ['netns', 'exec', ns, 'python3', httpServe, addr, port, dir], { stdio: 'ignore' }));
    }
    ftp = new FtpServer(topo.ns.server, { address: LAB_ADDR6.server, port: 21, fileBytes: 4 * 1024 * 1024 });
    ftp.start();
    node = await startDataplaneAgent(topo, join(dir, 'rules.yaml'), { queueNum: QUEUE, dataInterfaces: ['inside0', 'outside0'], ipv6: true });
    await topo.waitListening('server', 21);
    await topo.waitListening('server', 8080);
    await topo.waitListening('server', 8081);
    await topo.waitListening('client', 8080);
  }, 60_000);

  afterAll(async () => {
    try {
      await quitAgent(node);
    } finally {
      for (const s of servers) s.kill('SIGKILL');
      ftp?.stop();
      topo.cleanup();
      if (dir) rmSync(dir, { recursive: true, force: true });
    }
  });

  it('queues IPv6 from the data interfaces in ip6tables raw, but not neighbour discovery', () => {
    const raw = topo.exec('fw1', 'ip6tables', ['-t', 'raw', '-S']);
    expect(raw).toContain('-A PREROUTING -i inside0 -j TWINWALL');
    expect(raw).toContain('-A TWINWALL -p ipv6-icmp -m icmp6 --icmpv6-type 135 -j RETURN');
    expect(raw).toContain(`-A TWINWALL -j NFQUEUE --queue-num ${QUEUE}`);
  });

  it('passes ping6 and a 1 MiB HTTP transfer over IPv6 from client to server, tracked as IPv6 entries', async () => {
    const ping = topo.try('client', 'ping', ['-6', '-c', '3', '-i', '0.2', '-W', '2', LAB_ADDR6.server]);
    expect(ping.code, ping.out + ping.err).toBe(0);
    const size = topo.exec('client', 'curl', ['-sS', '-6', '--max-time', '10', '-o', '/dev/null', '-w', '%{size_download}', `http://[${LAB_ADDR6.server}]:8080/blob`]);
    expect(size).toBe(String(1 << 20));
    const s = await stats();
    const tcp = s.table.filter((l) => l.startsWith('ipv6') && l.includes(`src=${LAB_ADDR6.client}`) && l.includes('dport=8080'));
    expect(tcp.length).toBeGreaterThan(0);
    expect(s.table.some((l) => l.startsWith('ipv6') && l.includes('icmpv6'))).toBe(true);
    expect(s.engineErrors).toEqual([]);
  });

  it('answers a REJECT with a reset over IPv6 and drops unsolicited inbound', async () => {
    const refused = topo.try('client', 'curl', ['-sS', '-6', '--max-time', '5', `http://[${LAB_ADDR6.server}]:8081/`]);
    expect(refused.code).toBe(7); // curl: connection refused (the reset), not a timeout (28)
    const inbound = topo.try('server', 'curl', ['-sS', '-6', '--max-time', '2', `http://[${LAB_ADDR6.client}]:8080/blob`]);
    expect(inbound.code).toBe(28);
    const ping = topo.try('server', 'ping', ['-6', '-c', '1', '-W', '1', LAB_ADDR6.client]);
    expect(ping.code).not.toBe(0);
    const s = await stats();
    expect(s.engine.drops.ruleset).toBeGreaterThan(0);
  });

  it('FTP over IPv6 (EPSV and EPRT) with the helper: a 4 MiB file arrives whole, its data connections RELATED', async () => {
    const before = (await stats()).helpers.ftp.expected;
    const file = join(dir, 'got.bin');
    for (const mode of [[], ['-P', LAB_ADDR6.client]]) {
      rmSync(file, { force: true });
      const r = topo.try('client', 'curl', ['-sS', '-g', '--connect-timeout', '3', '--max-time', '30', ...mode, '-o', file, `ftp://[${LAB_ADDR6.server}]/big.bin`]);
      expect(r.code, `${mode.join(' ')}: ${r.err}`).toBe(0);
      expect(createHash('sha256').update(readFileSync(file)).digest('hex')).toBe(ftp?.sha256);
    }
    expect((await stats()).helpers.ftp.expected - before).toBe(2);
  });
});

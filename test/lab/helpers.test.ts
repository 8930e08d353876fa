/**
 * Connection helpers through the engine on NFQUEUE in fw1 (the dataplane-node agent) against the
 * real thing: Debian's vsftpd and tftpd-hpa in the server namespace, curl in the client's, and a
 * ruleset that lets through only the control connections, TFTP requests and ESTABLISHED,RELATED
 * (test/lab/lab-helper-rules.yaml). The FTP helper is attached to port 21; a second vsftpd on
 * 2121 has none, so its data connections are dropped: the proof that the helper is what lets
 * them through.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { labAvailable, labRequired, type LineAgent } from './netns.js';
import { LAB_ADDR, LabTopology } from './topology.js';
import { compileProject } from './compile.js';
import { quitAgent, startDataplaneAgent } from './dataplane-agent.js';
import { FtpServer } from './ftp-server.js';
import { TftpServer } from './tftp-server.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const rules = fileURLToPath(new URL('./lab-helper-rules.yaml', import.meta.url));
const QUEUE = 47;
/** The server's second address, which the inside network reaches through SNAT to fw1's outside address. */
const SNAT_SERVER = '10.50.2.11';
const FW_OUTSIDE = LAB_ADDR.fw1.outside;
const avail = labAvailable();
if (!avail.ok && labRequired) throw new Error(`TWINWALL_REQUIRE_LAB=1 but ${avail.why}`);
const servers = FtpServer.available() && TftpServer.available();
if (avail.ok && !servers && labRequired) throw new Error('TWINWALL_REQUIRE_LAB=1 but vsftpd or tftpd-hpa is not installed: run bash scripts/setup.sh');

interface HelperStats {
  helpers: { ftp: { expected: number; lines: number; rewritten: number; refused: Record<string, number> }; tftp: { expected: number }; expectations: number };
  dataplane: { counters: Record<string, number> };
  table: string[];
}

describe.skipIf(!avail.ok || !servers)('connection helpers on NFQUEUE in the lab (vsftpd, tftpd-hpa, curl)', () => {
  const topo = new LabTopology();
  let node: LineAgent;
  let ftp: FtpServer;
  let plain: FtpServer;
  let tftp: TftpServer;
  let natted: FtpServer;
  let inside: FtpServer;
  const out = mkdtempSync(join(tmpdir(), 'twftp-client-'));

  async function stats(): Promise<HelperStats> {
    return JSON.parse(await node.ask('stats')) as HelperStats;
  }

  /** curl in the client namespace (or another); bounded in time. */
  function curl(args: string[], ns: 'client' | 'server' = 'client'): { code: number; out: string; err: string } {
    return topo.try(ns, 'curl', ['-sS', '--connect-timeout', '3', '--max-time', '30', ...args]);
  }

  function fetchBig(mode: string[], port = 21, host: string = LAB_ADDR.server, ns: 'client' | 'server' = 'client'): { code: number; sha: string; err: string } {
    const file = join(out, 'big.bin');
    rmSync(file, { force: true });
    const r = curl([...mode, '-o', file, `ftp://${host}:${port}/big.bin`], ns);
    const sha = existsSync(file) ? createHash('sha256').update(readFileSync(file)).digest('hex') : 'no file';
    return { code: r.code, sha, err: r.err };
  }

  /** The four ways curl opens a data connection, with the client's own address for the active ones. */
  const modes = (self: string): [string, string[]][] => [
    ['PASV', ['--disable-epsv']], ['EPSV', []], ['PORT', ['--disable-eprt', '-P', self]], ['EPRT', ['-P', self]],
  ];

  beforeAll(async () => {
    compileProject(root);
    topo.build();
    ftp = new FtpServer(topo.ns.server, { address: LAB_ADDR.server, port: 21 });
    plain = new FtpServer(topo.ns.server, { address: LAB_ADDR.server, port: 2121, fileBytes: 4096 });
    tftp = new TftpServer(topo.ns.server, LAB_ADDR.server);
    // A second server address, reached from inside through SNAT; an FTP server on the client,
    // reached from outside through a port forward on fw1's outside address (lab-helper-rules.yaml).
    topo.exec('server', 'ip', ['addr', 'add', `${SNAT_SERVER}/24`, 'dev', 'outside0']);
    natted = new FtpServer(topo.ns.server, { address: SNAT_SERVER, port: 21 });
    inside = new FtpServer(topo.ns.client, { address: LAB_ADDR.client, port: 21 });
    for (const s of [ftp, plain, tftp, natted, inside]) s.start();
    node = await startDataplaneAgent(topo, rules, { queueNum: QUEUE, dataInterfaces: ['inside0', 'outside0'], ipv6: false });
    await topo.waitListening('server', 21);
    await topo.waitListening('server', 2121);
    await topo.waitListening('client', 21);
  }, 60_000);

  afterAll(async () => {
    try {
      await quitAgent(node);
    } finally {
      ftp?.stop();
      plain?.stop();
      tftp?.stop();
      natted?.stop();
      inside?.stop();
      rmSync(out, { recursive: true, force: true });
      topo.cleanup();
    }
  });

  it('passive (PASV, 227) and extended passive (EPSV, 229): an 8 MiB file arrives whole', async () => {
    const before = (await stats()).helpers.ftp.expected;
    const pasv = fetchBig(['--disable-epsv']);
    expect(pasv.code, pasv.err).toBe(0);
    expect(pasv.sha).toBe(ftp.sha256);
    const epsv = fetchBig([]);
    expect(epsv.code, epsv.err).toBe(0);
    expect(epsv.sha).toBe(ftp.sha256);
    const s = await stats();
    expect(s.helpers.ftp.expected - before).toBe(2);
    expect(s.helpers.expectations).toBe(0);
  });

  it('active (PORT and EPRT): the server connects back from port 20 and the file arrives whole', async () => {
    const port = fetchBig(['--disable-eprt', '-P', LAB_ADDR.client]);
    expect(port.code, port.err).toBe(0);
    expect(port.sha).toBe(ftp.sha256);
    const eprt = fetchBig(['-P', LAB_ADDR.client]);
    expect(eprt.code, eprt.err).toBe(0);
    expect(eprt.sha).toBe(ftp.sha256);
    // The data connections: opened by the server from port 20 towards the client (a NEW
    // connection from outside, which the ruleset passes only as RELATED), each carrying the file.
    const data = (await stats()).table.filter((l) => l.includes(`src=${LAB_ADDR.server} dst=${LAB_ADDR.client} sport=20 `));
    expect(data.length, (await stats()).table.join('\n')).toBeGreaterThanOrEqual(2);
    for (const l of data) expect(Number(/bytes=(\d+)/.exec(l)?.[1])).toBeGreaterThan(ftp.fileBytes);
  });

  it('listings in both modes', () => {
    for (const mode of [['--disable-epsv'], [], ['-P', LAB_ADDR.client], ['--disable-eprt', '-P', LAB_ADDR.client]]) {
      const r = curl([...mode, `ftp://${LAB_ADDR.server}/`]);
      expect(r.code, `${mode.join(' ')}: ${r.err}`).toBe(0);
      expect(r.out).toContain('hello.txt');
      expect(r.out).toContain('big.bin');
    }
  });

  it('without the helper (the server on 2121) the control connection works but no data connection passes', async () => {
    const before = (await stats()).helpers.ftp.expected;
    const r = curl(['--disable-epsv', '--max-time', '5', `ftp://${LAB_ADDR.server}:2121/hello.txt`]);
    expect(r.code).not.toBe(0);
    const a = curl(['-P', LAB_ADDR.client, '--max-time', '5', `ftp://${LAB_ADDR.server}:2121/hello.txt`]);
    expect(a.code).not.toBe(0);
    expect((await stats()).helpers.ftp.expected).toBe(before);
  }, 30_000);

  it('TFTP: a get through the pair (the server answers from a new port: RELATED)', async () => {
    const before = (await stats()).helpers.tftp.expected;
    const file = join(out, 'file.bin');
    const r = curl(['-o', file, `tftp://${LAB_ADDR.server}/file.bin`]);
    expect(r.code, r.err).toBe(0);
    expect(createHash('sha256').update(readFileSync(file)).digest('hex')).toBe(tftp.sha256);
    expect((await stats()).helpers.tftp.expected - before).toBe(1);
  });

  it('SNAT: from inside to a server reached through fw1\'s outside address, all four modes, transfers and listings; PORT and EPRT rewritten', async () => {
    const before = (await stats()).helpers.ftp;
    for (const [name, mode] of modes(LAB_ADDR.client)) {
      const r = fetchBig(mode, 21, SNAT_SERVER);
      expect(r.code, `${name}: ${r.err}`).toBe(0);
      expect(r.sha, name).toBe(natted.sha256);
      const list = curl([...mode, `ftp://${SNAT_SERVER}/`]);
      expect(list.code, `${name} listing: ${list.err}`).toBe(0);
      expect(list.out).toContain('big.bin');
    }
    const s = await stats();
    expect(s.helpers.ftp.expected - before.expected).toBe(8);
    expect(s.helpers.ftp.rewritten - before.rewritten).toBe(4);
    expect(s.dataplane.counters.replaced).toBeGreaterThanOrEqual(2);
    // The server saw the control and data connections from fw1's outside address.
    const seen = s.table.filter((l) => l.includes(`dst=${SNAT_SERVER}`) && l.includes(`dst=${FW_OUTSIDE}`));
    expect(seen.length).toBeGreaterThanOrEqual(8);
  }, 60_000);

  it('DNAT: from outside to a server behind a port forward on fw1\'s outside address, all four modes, transfers and listings; 227 rewritten', async () => {
    const before = (await stats()).helpers.ftp;
    for (const [name, mode] of modes(LAB_ADDR.server)) {
      const r = fetchBig(mode, 21, FW_OUTSIDE, 'server');
      expect(r.code, `${name}: ${r.err}`).toBe(0);
      expect(r.sha, name).toBe(inside.sha256);
      const list = curl([...mode, `ftp://${FW_OUTSIDE}/`], 'server');
      expect(list.code, `${name} listing: ${list.err}`).toBe(0);
      expect(list.out).toContain('big.bin');
    }
    const s = await stats();
    expect(s.helpers.ftp.expected - before.expected).toBe(8);
    expect(s.helpers.ftp.rewritten - before.rewritten).toBe(2);
  }, 60_000);

  it('malformed and hostile commands on a real control connection create no expectation, are counted, and the node goes on', async () => {
    const before = await stats();
    const script = [
      'import socket, time',
      `s = socket.create_connection(("${LAB_ADDR.server}", 21), timeout=5)`,
      'f = s.makefile("rb")',
      'f.readline()',
      'def cmd(c):',
      '    s.sendall(c)',
      '    return f.readline().decode().strip()',
      'cmd(b"USER anonymous\\r\\n"); cmd(b"PASS x\\r\\n")',
      'print(cmd(b"PORT 10,50,1,10,300,1\\r\\n"))',
      'print(cmd(b"PORT 10,50,1,10,0,21\\r\\n"))',
      'print(cmd(b"PORT 10,50,2,99,156,65\\r\\n"))',
      'print(cmd(b"EPRT |1|10.50.1.10|99999|\\r\\n"))',
      'print(cmd(b"EPRT |3|10.50.1.10|40000|\\r\\n"))',
      'print(cmd(b"STOR " + b"x" * 700 + b"\\r\\n"))',
      'print(cmd(b"QUIT\\r\\n"))',
    ];
    const r = topo.try('client', 'python3', ['-c', script.join('\n')]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain('221'); // the server said goodbye: the control connection worked throughout
    const after = await stats();
    const refused = (k: string) => (after.helpers.ftp.refused[k] ?? 0) - (before.helpers.ftp.refused[k] ?? 0);
    expect(refused('bad_number')).toBe(1);
    expect(refused('bad_port')).toBe(2);
    expect(refused('not_sender')).toBe(1);
    expect(refused('bad_address')).toBe(1);
    expect(refused('overlong_line')).toBe(1);
    expect(after.helpers.ftp.expected).toBe(before.helpers.ftp.expected);
    expect(after.helpers.expectations).toBe(0);
    expect((after as unknown as { engineErrors: string[] }).engineErrors).toEqual([]);
  });
});

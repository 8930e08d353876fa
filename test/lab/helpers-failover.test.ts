/**
 * FTP through the twinwall pair (two `twinwall node` daemons with sync and failover, the client
 * SNATed to the outside virtual address) across a SIGKILL of the master, against Debian's
 * vsftpd, with a ruleset that passes data connections only as RELATED
 * (test/lab/lab-helper-pair-rules.yaml):
 *  - between an announcement (PASV reply; PORT, rewritten to the virtual address) and its data
 *    connection: the new master holds the expectation and lets the connection in;
 *  - in the middle of a transfer, passive and active (the control connection rewritten, its
 *    sequence numbers adjusted by the new master from then on): the file arrives whole and the
 *    session goes on.
 * A Python ftplib agent (agents/ftp-client.py) runs the session step by step.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { labAvailable, labRequired, type LineAgent } from './netns.js';
import { LAB_ADDR } from './topology.js';
import { compileProject } from './compile.js';
import { DaemonPair, VIP_IN, VIP_OUT, type Fw } from './daemon-pair.js';
import { FtpServer } from './ftp-server.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const rules = fileURLToPath(new URL('./lab-helper-pair-rules.yaml', import.meta.url));
const agentPy = fileURLToPath(new URL('./agents/ftp-client.py', import.meta.url));
const avail = labAvailable();
if (!avail.ok && labRequired) throw new Error(`TWINWALL_REQUIRE_LAB=1 but ${avail.why}`);
if (avail.ok && !FtpServer.available() && labRequired) throw new Error('TWINWALL_REQUIRE_LAB=1 but vsftpd is not installed: run bash scripts/setup.sh');

interface Answer {
  ok: boolean;
  error?: string;
  port?: number;
  sha256?: string;
  bytes?: number;
  reply?: string;
  end?: string;
}

describe.skipIf(!avail.ok || !FtpServer.available())('FTP through the pair across a failover (vsftpd, SIGKILL of the master)', () => {
  const pair = new DaemonPair('twftpfo-');
  const topo = pair.topo;
  let ftp: FtpServer;
  const agents: LineAgent[] = [];

  const role = (fw: Fw): string | null => {
    const r = pair.twinwall(fw, 'failover', 'status', '-o', 'json');
    return r.code === 0 ? (JSON.parse(r.out) as { role: string }).role : null;
  };

  function start(fw: Fw): void {
    pair.start(fw, [
      `node: { name: ftp-${fw} }`,
      `dataplane: { interfaces: [inside0, outside0], queue: ${fw === 'fw1' ? 63 : 64} }`,
      `ruleset: ${rules}`,
      `control: { socket: ${pair.sock(fw)} }`,
      'log: { level: info }',
      ...DaemonPair.pairSections(fw, { intervalMs: 50, vipIn: VIP_IN, vipOut: VIP_OUT }),
    ]);
  }

  /** Both daemons up, fw1 master, fw2 backup holding fw1's table. */
  async function paired(): Promise<void> {
    for (const fw of ['fw1', 'fw2'] as const) {
      const d = pair.daemons[fw];
      if (!d || d.child.exitCode !== null || d.child.signalCode !== null) start(fw);
    }
    await pair.until('fw1 master, fw2 backup and synced', () => role('fw1') === 'master' && role('fw2') === 'backup' && pair.synced('fw2'), 30_000);
  }

  /** SIGKILL fw1 (the master); resolves once fw2 is master. */
  async function killMaster(): Promise<void> {
    pair.daemons.fw1?.child.kill('SIGKILL');
    await pair.until('fw2 master after the SIGKILL of fw1', () => role('fw2') === 'master', 10_000);
  }

  function client(): { ask: (req: object, ms?: number) => Promise<Answer> } {
    const a = topo.lab.agent(topo.ns.client, 'python3', [agentPy]);
    agents.push(a);
    return {
      ask: async (req, ms = 30_000) => {
        const r = JSON.parse(await a.ask(JSON.stringify(req), ms)) as Answer;
        if (!r.ok) throw new Error(`ftp client: ${r.error}\n${pair.log.slice(-3000)}`);
        return r;
      },
    };
  }

  beforeAll(async () => {
    compileProject(root);
    topo.build();
    writeFileSync(join(pair.dir, 'sync.key'), `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
    topo.exec('client', 'ip', ['route', 'replace', 'default', 'via', VIP_IN]);
    ftp = new FtpServer(topo.ns.server, { address: LAB_ADDR.server, port: 21, fileBytes: 16 * 1024 * 1024 });
    ftp.start();
    await topo.waitListening('server', 21);
    await paired();
  }, 90_000);

  afterAll(() => {
    for (const a of agents) a.signal('SIGKILL');
    ftp?.stop();
    pair.cleanup();
  });

  for (const mode of ['pasv', 'port'] as const) {
    it(`a failover between the ${mode === 'pasv' ? 'PASV reply' : 'PORT command (rewritten)'} and the data connection: the new master lets it in, the file arrives whole`, async () => {
      await paired();
      const c = client();
      await c.ask({ op: 'open', host: LAB_ADDR.server });
      const a = await c.ask({ op: 'announce', mode, self: LAB_ADDR.client });
      // The backup holds the expectation (sync), then the master dies.
      await pair.until('the expectation on fw2', () => pair.twinwall('fw2', 'expect', 'list').out.includes('helper=ftp'), 5_000);
      await killMaster();
      const r = await c.ask({ op: 'retr', file: 'big.bin' });
      expect(r.sha256).toBe(ftp.sha256);
      expect(r.end).toMatch(/^226/);
      expect((await c.ask({ op: 'cmd', line: 'NOOP' })).reply).toMatch(/^200/);
      expect((await c.ask({ op: 'quit' })).reply).toMatch(/^221/);
      expect(a.port).toBeGreaterThan(1023);
    }, 90_000);

    it(`a failover in the middle of ${mode === 'pasv' ? 'a passive' : 'an active (control connection rewritten)'} transfer: it completes, the checksum matches, the session goes on`, async () => {
      await paired();
      const c = client();
      await c.ask({ op: 'open', host: LAB_ADDR.server });
      await c.ask({ op: 'announce', mode, self: LAB_ADDR.client });
      // 16 MiB read at 4 MB/s: about 4 s; the master dies 1.5 s in.
      const transfer = c.ask({ op: 'retr', file: 'big.bin', rate: 4_000_000 }, 60_000);
      await new Promise((r) => setTimeout(r, 1500));
      await killMaster();
      const r = await transfer;
      expect(r.bytes).toBe(ftp.fileBytes);
      expect(r.sha256).toBe(ftp.sha256);
      expect(r.end).toMatch(/^226/);
      // The control connection goes on through the new master (its sequence numbers adjusted after a PORT rewrite).
      expect((await c.ask({ op: 'cmd', line: 'NOOP' })).reply).toMatch(/^200/);
      expect((await c.ask({ op: 'quit' })).reply).toMatch(/^221/);
    }, 90_000);
  }
});

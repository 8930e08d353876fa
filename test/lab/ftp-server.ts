/**
 * Debian's vsftpd in a lab namespace, for the FTP helper's lab tests: anonymous read-only, a file
 * of random bytes to fetch (its sha256 known), passive ports 40000-40100, active connections
 * from port 20 (as a real server makes them). Standalone, in the foreground; its files in a
 * temporary directory.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { killByArg } from './kill-by-arg.js';

export interface FtpServerOptions {
  /** An IPv4 or IPv6 address (IPv6: the server listens on it alone, listen_ipv6). */
  address: string;
  port: number;
  /** Bytes of the file `big.bin` (default 8 MiB). */
  fileBytes?: number;
}

export class FtpServer {
  readonly dir: string;
  readonly sha256: string;
  readonly fileBytes: number;

  constructor(readonly ns: string, readonly o: FtpServerOptions) {
    this.dir = mkdtempSync(join(tmpdir(), 'twftp-'));
    const root = join(this.dir, 'root');
    mkdirSync(root);
    chmodSync(this.dir, 0o755);
    chmodSync(root, 0o755);
    this.fileBytes = o.fileBytes ?? 8 * 1024 * 1024;
    const data = randomBytes(this.fileBytes);
    writeFileSync(join(root, 'big.bin'), data);
    writeFileSync(join(root, 'hello.txt'), 'hello through the helper\n');
    this.sha256 = createHash('sha256').update(data).digest('hex');
    const empty = join(this.dir, 'empty');
    mkdirSync(empty);
    const conf = [
      ...(o.address.includes(':') ? ['listen=NO', 'listen_ipv6=YES', `listen_address6=${o.address}`] : ['listen=YES', 'listen_ipv6=NO', `listen_address=${o.address}`]),
      `listen_port=${o.port}`, 'background=NO',
      'anonymous_enable=YES', 'no_anon_password=YES', `anon_root=${root}`, 'local_enable=NO', 'write_enable=NO',
      'pasv_enable=YES', 'pasv_min_port=40000', 'pasv_max_port=40100', 'port_enable=YES', 'connect_from_port_20=YES',
      `secure_chroot_dir=${empty}`, 'seccomp_sandbox=NO', 'isolate_network=NO', 'xferlog_enable=NO', 'hide_ids=YES',
      'use_localtime=NO', 'dirmessage_enable=NO', 'ftpd_banner=twinwall lab ftp', `vsftpd_log_file=${join(this.dir, 'vsftpd.log')}`,
    ];
    writeFileSync(join(this.dir, 'vsftpd.conf'), conf.join('\n') + '\n', { mode: 0o600 });
  }

  /** Whether Debian's vsftpd is installed (scripts/setup.sh installs it). */
  static available(): boolean {
    return existsSync('/usr/sbin/vsftpd');
  }

  start(): void {
    spawn('ip', ['netns', 'exec', this.ns, '/usr/sbin/vsftpd', join(this.dir, 'vsftpd.conf')], { stdio: 'ignore' });
  }

  /**
   * Kill it with its sessions (each of which vsftpd makes a session leader of its own, so no
   * process group holds them all: they are found by the config path on their command line) and
   * remove its files.
   */
  stop(): void {
    killByArg(join(this.dir, 'vsftpd.conf'));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

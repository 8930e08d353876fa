/**
 * Debian's tftpd-hpa (in.tftpd) in a lab namespace, for the TFTP helper's lab test: read-only,
 * one file of random bytes (its sha256 known), in the foreground; stop() kills it (found by its
 * directory on the command line) and removes its files.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { killByArg } from './kill-by-arg.js';

export class TftpServer {
  readonly dir: string;
  readonly sha256: string;

  constructor(readonly ns: string, readonly address: string, readonly fileBytes = 256 * 1024) {
    this.dir = mkdtempSync(join(tmpdir(), 'twtftp-'));
    chmodSync(this.dir, 0o755);
    const data = randomBytes(fileBytes);
    writeFileSync(join(this.dir, 'file.bin'), data, { mode: 0o644 });
    this.sha256 = createHash('sha256').update(data).digest('hex');
  }

  static available(): boolean {
    return existsSync('/usr/sbin/in.tftpd');
  }

  start(): void {
    // -L: foreground; -s: serve the directory as /; -a: the address and port to listen on.
    spawn('ip', ['netns', 'exec', this.ns, '/usr/sbin/in.tftpd', '-L', '-a', `${this.address}:69`, '-s', this.dir], { stdio: 'ignore' });
  }

  stop(): void {
    killByArg(this.dir);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

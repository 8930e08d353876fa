/**
 * SIGKILL every process whose command line has `arg` as one of its arguments (a lab server's
 * config file or directory): servers that fork sessions of their own (vsftpd makes each a
 * session leader) leave no single process group to kill.
 */
import { readFileSync, readdirSync } from 'node:fs';

export function killByArg(arg: string): number {
  let killed = 0;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    let cmd: string;
    try {
      cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    if (!cmd.split('\0').includes(arg)) continue;
    try {
      process.kill(Number(pid), 'SIGKILL');
      killed++;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
    }
  }
  return killed;
}

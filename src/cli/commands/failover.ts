/**
 * `twinwall failover status [-o json]`: the node's role, priority, health faults, the master it
 * follows, advert counters and the last takeover steps. `twinwall failover switchover`: the
 * master steps down (demoted until it is master again) and the peer takes over.
 */
import { Command, Option } from 'commander';
import type { FailoverStatus } from '../../node/control/index.js';
import { clientFor, type CliIO } from './io.js';
import { json } from './format.js';

export function formatFailoverStatus(s: FailoverStatus): string {
  const lines = [`role: ${s.role}, priority ${s.priority}${s.faults.length > 0 ? `, faults: ${s.faults.join(', ')}` : ''}`];
  lines.push(s.master === null ? 'master: none heard' : `master: node ${s.master.id} (priority ${s.master.priority})`);
  lines.push(`virtual addresses: ${s.virtualAddresses.map((v) => `${v.cidr} on ${v.interface}`).join(', ') || 'none'}`);
  const drops = Object.entries(s.stats.drops).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`).join(', ') || 'none';
  lines.push(`adverts: sent ${s.stats.advertsSent}, received ${s.stats.advertsReceived}; dropped: ${drops}; transitions ${s.stats.transitions}; two masters seen ${s.stats.splitBrainSeen}`);
  lines.push(`advert timer as master: at worst ${s.stats.advertLateMaxMs.toFixed(1)} ms late, ${s.stats.advertsLate} time(s) over one interval late (over three, the master yields)`);
  const pc = s.pacer;
  if (pc !== null) {
    lines.push(`advert thread: ${pc.scheduling === 'fifo' ? 'real time (SCHED_FIFO)' : `normal scheduling${pc.schedError !== null ? ` (real time refused: ${pc.schedError})` : ''}`}, ${pc.pacing ? 'repeating the master\'s advert' : 'idle'}; sent ${pc.sent} + ${pc.sentNow} by the election, ${pc.errors} send error(s)`);
  }
  const pl = s.peerLink;
  if (pl === null) lines.push('peer link: off (the master-down timer alone sees a dead master)');
  else {
    const refused = Object.entries(pl.refused).map(([k, n]) => `${k} ${n}`).join(', ') || 'none';
    lines.push(`peer link: ${pl.up ? 'up to the master' : 'not up'}; proved ${pl.proved}, refused: ${refused}, connect failures ${pl.connectFailures}; takeovers on a dead master's link ${s.stats.peerGone}`);
  }
  const dw = s.deathWatch;
  if (dw !== null) {
    lines.push(`death watch: ${dw.running ? 'running' : 'NOT running (a killed master\'s links close only once its memory is freed)'}; links held ${dw.added - dw.released} (added ${dw.added}, released ${dw.released})${dw.failed > 0 ? `; ${dw.failed} not handed over: ${dw.lastError}` : ''}`);
  }
  for (const st of s.steps.slice(-5)) {
    lines.push(`step to ${st.to}: ${st.entries} entries in ${st.entriesMs.toFixed(1)} ms, addresses in ${st.addressesMs.toFixed(1)} ms${st.error ? `; error: ${st.error}` : ''}`);
  }
  return `${lines.join('\n')}\n`;
}

export function failoverCommand(io: CliIO): Command {
  const f = new Command('failover').description('election and virtual addresses');

  f.command('status')
    .description('role, priority, faults, the master, advert counters and the last takeover steps')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text'))
    .action(async (opts: { output: string }, cmd: Command) => {
      const s = await clientFor(cmd.optsWithGlobals()).call<FailoverStatus>('GET', '/failover/status');
      io.out(opts.output === 'json' ? json(s) : formatFailoverStatus(s));
    });

  f.command('switchover')
    .description('planned switchover: this node (the master) steps down and the peer takes over')
    .action(async (_opts: unknown, cmd: Command) => {
      await clientFor(cmd.optsWithGlobals()).call<{ switchedOver: boolean }>('POST', '/failover/switchover');
      io.err('twinwall: stepped down; the peer takes over within its skew time. `twinwall failover status` shows the new role.\n');
    });
  return f;
}

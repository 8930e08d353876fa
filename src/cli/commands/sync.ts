/**
 * `twinwall sync status [-o json]`: the node's state sync: the link, the peer, lag, and the
 * counters an operator looks at first (messages, bytes, NACKs, resends, resyncs, drops by reason).
 */
import { Command, Option } from 'commander';
import type { SyncStatus } from '../../node/control/index.js';
import { clientFor, type CliIO } from './io.js';
import { json } from './format.js';

const ms = (v: number | null): string => (v === null ? '-' : v < 10 ? `${v.toFixed(2)} ms` : `${Math.round(v)} ms`);

/** "120 (update 100, alive 20)": a total and its parts, largest first, zeros left out. */
function byKind(counts: Record<string, number>): string {
  const parts = Object.entries(counts).filter(([, n]) => n > 0).sort((x, y) => y[1] - x[1]);
  const total = parts.reduce((s, [, n]) => s + n, 0);
  return parts.length === 0 ? '0' : `${total} (${parts.map(([k, n]) => `${k} ${n}`).join(', ')})`;
}

const ops = (o: { create: number; update: number; destroy: number }): string => `${o.create} new / ${o.update} updated / ${o.destroy} destroyed`;

export function formatSyncStatus(s: SyncStatus): string {
  const l = s.link;
  const st = s.stats;
  const where = l.mode === 'multicast' ? `multicast ${l.group}:${l.port}` : `unicast to ${l.peer}:${l.port}`;
  const lines = [`node ${s.nodeId} on ${l.interface} ${l.address}, ${where} (mtu ${l.mtu}), up since ${new Date(s.epoch).toISOString()}`];
  const p = s.peer;
  if (p === null) lines.push('peer: none heard yet');
  else {
    lines.push(`peer: node ${p.id}, up since ${new Date(p.epoch).toISOString()}, last contact ${(p.lastContactAgoMs / 1000).toFixed(1)} s ago` +
      `${p.resyncPending ? ', resync pending' : ''}${p.held > 0 ? `, ${p.held} messages held out of order` : ''}`);
  }
  lines.push(`synced: ${p?.synced ? "yes (this node holds the peer's whole table)" : 'no'}`);
  const lag = s.lag.p50Ms === null ? 'no samples yet' : `p50 ${ms(s.lag.p50Ms)}, p99 ${ms(s.lag.p99Ms)}`;
  lines.push(`lag: ${lag}; ${s.sender.unapplied} of our messages not applied by the peer yet (next seq ${s.sender.nextSeq}, peer applied ${s.sender.peerApplied})`);
  lines.push(`messages: sent ${byKind(st.sent)}, received ${byKind(st.received)}`);
  lines.push(`bytes: sent ${st.sentBytes}, received ${st.receivedBytes}`);
  lines.push(`entries: sent ${ops(st.entriesSent)}; applied ${ops(st.entriesApplied)}; ${st.entriesRefused} refused, ${st.entriesTableFull} table full, ${st.entriesKeptLocal} kept (our own live entry)`);
  lines.push(`NACKs: sent ${st.nacksSent}, received ${st.nacksReceived}; retransmitted ${st.retransmitted} (${st.nackedGone} no longer held); gaps ${st.gaps}`);
  lines.push(`resyncs: requested ${st.resyncsRequested}, served ${st.resyncsServed}, completed ${st.resyncsCompleted} (${st.resyncSwept} entries swept)${st.resyncsShort > 0 ? `; ${st.resyncsShort} short: entries did not fit or were refused (see table full / refused above), so not synced` : ''}`);
  lines.push(`drops: ${byKind(st.drops)}; auth failures ${st.authFailures}, replays dropped ${st.replaysDropped}`);
  return `${lines.join('\n')}\n`;
}

export function syncCommand(io: CliIO): Command {
  const sync = new Command('sync').description('state sync with the peer node');

  sync.command('status')
    .description('the sync link, the peer, lag, messages, NACKs, resyncs and drops')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text'))
    .action(async (opts: { output: string }, cmd: Command) => {
      const s = await clientFor(cmd.optsWithGlobals()).call<SyncStatus>('GET', '/sync/status');
      io.out(opts.output === 'json' ? json(s) : formatSyncStatus(s));
    });

  sync.command('resync')
    .description('ask the peer for its whole table now (bulk resync); entries it no longer has are removed at the end')
    .action(async (_opts: unknown, cmd: Command) => {
      await clientFor(cmd.optsWithGlobals()).call<{ requested: boolean }>('POST', '/sync/resync');
      io.err('twinwall: bulk resync asked of the peer; watch `twinwall sync status` for its completion.\n');
    });

  return sync;
}

/**
 * `twinwall ct list|get|count|delete|flush|save|restore`: the conntrack table, as conntrack(8);
 * `ct diff`: this node's table against the peer's (ct-diff.ts).
 */
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { Command, Option } from 'commander';
import { ControlClient, type CtEntry, type RestoreReport } from '../../node/control/index.js';
import { CliExit, EXIT_REFUSED, clientFor, type CliIO } from './io.js';
import { formatEntries, json } from './format.js';
import { EXIT_TABLES_DIFFER, diffTables, formatDiff, summary } from './ct-diff.js';

const outputOption = (): Option => new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text');

export function ctCommand(io: CliIO): Command {
  const ct = new Command('ct').description('connection tracking table (as conntrack -L / -G / -D / -F)');

  ct.command('list')
    .description('list entries, optionally filtered (conntrack -L)')
    .option('-p, --proto <proto>', 'protocol: tcp, udp, icmp, icmpv6 or a number')
    .option('-s, --src <addr>', 'original source address or CIDR')
    .option('-d, --dst <addr>', 'original destination address or CIDR')
    .option('--sport <port>', 'original source port')
    .option('--dport <port>', 'original destination port')
    .option('--port <port>', 'either port of the original tuple')
    .addOption(outputOption())
    .action(async (opts: Record<string, string>, cmd: Command) => {
      const q = new URLSearchParams();
      for (const k of ['proto', 'src', 'dst', 'sport', 'dport', 'port']) if (opts[k] !== undefined) q.set(k, opts[k]);
      const qs = q.toString();
      const entries = await clientFor(cmd.optsWithGlobals()).call<CtEntry[]>('GET', `/ct${qs ? `?${qs}` : ''}`);
      if (opts.output === 'json') io.out(json(entries));
      else {
        io.out(formatEntries(entries));
        io.err(`twinwall: ${entries.length} flow entries have been shown.\n`);
      }
    });

  ct.command('get <id>')
    .description('show one entry (conntrack -G)')
    .addOption(outputOption())
    .action(async (id: string, opts: { output: string }, cmd: Command) => {
      const e = await clientFor(cmd.optsWithGlobals()).call<CtEntry>('GET', `/ct/${encodeURIComponent(id)}`);
      io.out(opts.output === 'json' ? json(e) : formatEntries([e]));
    });

  ct.command('count')
    .description('number of entries (conntrack -C)')
    .addOption(outputOption())
    .action(async (opts: { output: string }, cmd: Command) => {
      const c = await clientFor(cmd.optsWithGlobals()).call<{ count: number; max: number }>('GET', '/ct/count');
      io.out(opts.output === 'json' ? json(c) : `${c.count}\n`);
    });

  ct.command('delete <id>')
    .description('delete one entry (conntrack -D)')
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      await clientFor(cmd.optsWithGlobals()).call('DELETE', `/ct/${encodeURIComponent(id)}`);
      io.err(`twinwall: 1 flow entry has been deleted.\n`);
    });

  ct.command('flush')
    .description('delete every entry (conntrack -F)')
    .action(async (_opts: unknown, cmd: Command) => {
      const r = await clientFor(cmd.optsWithGlobals()).call<{ deleted: number }>('DELETE', '/ct');
      io.err(`twinwall: connection tracking table has been emptied (${r.deleted} entries).\n`);
    });

  ct.command('save')
    .description('dump the table as JSON (to FILE, or standard output)')
    .option('-f, --file <file>', 'write to this file')
    .action(async (opts: { file?: string }, cmd: Command) => {
      const dump = await clientFor(cmd.optsWithGlobals()).call<{ entries: unknown[] }>('GET', '/ct/save');
      if (opts.file) {
        await writeFile(opts.file, json(dump));
        io.err(`twinwall: ${dump.entries.length} entries saved to ${opts.file}.\n`);
      } else io.out(json(dump));
    });

  ct.command('restore <file>')
    .description('load a table saved with `ct save`')
    .action(async (file: string, _opts: unknown, cmd: Command) => {
      let dump: unknown;
      try {
        dump = JSON.parse(readFileSync(file, 'utf8'));
      } catch (e) {
        throw new CliExit(EXIT_REFUSED, `cannot read the saved table ${file}: ${(e as Error).message}`);
      }
      const r = await clientFor(cmd.optsWithGlobals()).call<RestoreReport>('POST', '/ct/restore', recordsOnly(dump));
      io.err(`twinwall: ${r.restored} entries restored (${r.created} new, ${r.replaced} replaced)` +
        `${r.tableFull > 0 ? `; ${r.tableFull} did not fit: the table is full` : ''}.\n`);
      if (r.tableFull > 0) throw new CliExit(EXIT_REFUSED, 'restore incomplete: raise conntrack.maxEntries or flush first');
    });

  ct.command('diff')
    .description("compare this node's table with the peer's, as sync keeps them (exit 0 equal, 1 different)")
    .requiredOption('--peer-socket <path>', "the peer node's control socket (e.g. forwarded here with ssh -L)")
    .addOption(outputOption())
    .action(async (opts: { peerSocket: string; output: string }, cmd: Command) => {
      const d = await diffTables(clientFor(cmd.optsWithGlobals()), new ControlClient(opts.peerSocket));
      io.out(opts.output === 'json' ? json(d) : formatDiff(d));
      if (!d.equal) throw new CliExit(EXIT_TABLES_DIFFER, summary(d));
    });

  return ct;
}

/** Only what restore reads (format and each record): a third of the saved file's size. */
function recordsOnly(dump: unknown): unknown {
  if (typeof dump !== 'object' || dump === null) return dump;
  const d = dump as { format?: unknown; entries?: unknown };
  if (!Array.isArray(d.entries)) return dump;
  return {
    format: d.format,
    entries: d.entries.map((e: unknown) => (typeof e === 'object' && e !== null && 'record' in e ? { record: (e as { record: unknown }).record } : e)),
  };
}

/** `twinwall stats`: the node's figures (packets, drops by reason, conntrack fill, data plane). */
import { Command, Option } from 'commander';
import { clientFor, type CliIO } from './io.js';
import { formatTree, json } from './format.js';

export function statsCommand(io: CliIO): Command {
  return new Command('stats')
    .description('packets, bytes, drops by reason, conntrack fill, data plane figures')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text'))
    .action(async (opts: { output: string }, cmd: Command) => {
      const s = await clientFor(cmd.optsWithGlobals()).call('GET', '/stats');
      io.out(opts.output === 'json' ? json(s) : formatTree(s).slice(1));
    });
}

/**
 * `twinwall expect list`: the expectations of connection helpers (conntrack -L expect): each
 * connection a helper announced and lets in as RELATED, its master entry and time left.
 */
import { Command, Option } from 'commander';
import { formatExpectations, type ExpectEntry } from '../../node/control/index.js';
import { clientFor, type CliIO } from './io.js';
import { json } from './format.js';

export function expectCommand(io: CliIO): Command {
  const expect = new Command('expect').description('expected connections of connection helpers (conntrack -L expect)');
  expect
    .command('list')
    .description('list the expectations: what each lets in as RELATED, for which master entry, for how long')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text'))
    .action(async (opts: { output: string }, cmd: Command) => {
      const list = await clientFor(cmd.optsWithGlobals()).call<ExpectEntry[]>('GET', '/expect');
      if (opts.output === 'json') io.out(json(list));
      else {
        io.out(formatExpectations(list));
        io.err(`twinwall: ${list.length} expectations have been shown.\n`);
      }
    });
  return expect;
}

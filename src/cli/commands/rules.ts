/**
 * `twinwall rules show|apply FILE`: the running ruleset and its counters; apply a new one (validated
 * and compiled by the daemon, swapped atomically, or refused whole with every error's path).
 */
import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import type { ChainCounters } from '../../node/filter/index.js';
import type { RulesetInfo } from '../../node/control/index.js';
import { CliExit, EXIT_REFUSED, clientFor, type CliIO } from './io.js';
import { formatCounters, json } from './format.js';

export function rulesCommand(io: CliIO): Command {
  const rules = new Command('rules').description('the running ruleset');

  rules.command('show')
    .description('rule counters (as iptables -L -v), the ruleset text with --text')
    .option('--text', 'print the ruleset YAML instead of the counters')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text'))
    .action(async (opts: { text?: boolean; output: string }, cmd: Command) => {
      const r = await clientFor(cmd.optsWithGlobals()).call<RulesetInfo & { counters: ChainCounters[] }>('GET', '/rules');
      if (opts.output === 'json') io.out(json(r));
      else if (opts.text) io.out(r.text.endsWith('\n') ? r.text : `${r.text}\n`);
      else io.out(`# ${r.source}, loaded ${new Date(r.loadedAt).toISOString()}\n${formatCounters(r.counters)}`);
    });

  rules.command('apply <file>')
    .description('validate, compile and swap in a ruleset file (the old one stays if it is refused)')
    .action(async (file: string, _opts: unknown, cmd: Command) => {
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (e) {
        throw new CliExit(EXIT_REFUSED, `cannot read ruleset file ${file}: ${(e as Error).message}`);
      }
      await clientFor(cmd.optsWithGlobals()).call('POST', '/rules', { text, source: file });
      io.err(`twinwall: ruleset ${file} applied.\n`);
    });

  return rules;
}

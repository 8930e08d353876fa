/**
 * `twinwall trace --selector '{"proto":"tcp","dport":80}'`: switch TRACE on for the selector,
 * print each traced packet's walk until Ctrl-C, then switch it off again.
 */
import { Command, Option } from 'commander';
import type { TraceEvent } from '../../node/filter/index.js';
import { CliExit, EXIT_USAGE, clientFor, type CliIO } from './io.js';

export function formatTraceEvent(e: TraceEvent): string {
  const where = `trace ${e.id} ${e.hook}${e.chain === e.hook ? '' : ` ${e.chain}`}`;
  switch (e.kind) {
    case 'packet':
      return `${where} packet: ${e.packet ?? ''}`;
    case 'rule':
      return `${where} rule ${e.rule}${e.matched ? ` matched -> ${e.target}` : ' no match'}`;
    case 'return':
      return `${where} return`;
    case 'verdict':
      return `${where} verdict ${e.verdict ?? e.target}${e.rule < 0 ? ' (policy)' : ''}`;
    default:
      return `${where} ${JSON.stringify(e)}`;
  }
}

export function traceCommand(io: CliIO): Command {
  return new Command('trace')
    .description('trace packets matching a selector through the ruleset until Ctrl-C')
    .requiredOption('--selector <json>', 'a rule match as JSON, e.g. \'{"proto":"tcp","dport":80}\'')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text'))
    .action(async (opts: { selector: string; output: string }, cmd: Command) => {
      let selector: unknown;
      try {
        selector = JSON.parse(opts.selector);
      } catch (e) {
        throw new CliExit(EXIT_USAGE, `--selector is not JSON: ${(e as Error).message}`);
      }
      const client = clientFor(cmd.optsWithGlobals());
      const ac = new AbortController();
      const stop = (): void => ac.abort();
      io.signal?.addEventListener('abort', stop, { once: true });
      if (!io.signal) process.once('SIGINT', stop);
      // Subscribe first, then switch tracing on, so the first packets are not missed.
      const streaming = client.stream('/trace/stream', (ev) => {
        io.out(opts.output === 'json' ? `${JSON.stringify(ev)}\n` : `${formatTraceEvent(ev as TraceEvent)}\n`);
      }, ac.signal);
      try {
        await client.call('POST', '/trace', { selector });
        io.err(`twinwall: tracing ${JSON.stringify(selector)}; Ctrl-C to stop.\n`);
        await streaming;
      } finally {
        ac.abort();
        process.off('SIGINT', stop);
        await streaming.catch(() => undefined);
        // Tracing costs on every matching packet: switch it off when we stop watching.
        await client.call('DELETE', '/trace').catch((e: unknown) => io.err(`twinwall: could not switch tracing off: ${(e as Error).message}\n`));
      }
    });
}

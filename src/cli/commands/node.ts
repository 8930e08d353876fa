/**
 * `twinwall node --config FILE`: run the daemon until SIGTERM/SIGINT; SIGHUP reloads the ruleset.
 * A bad config or ruleset is refused with every error before anything starts (exit 2).
 */
import { Command } from 'commander';
import { ConfigError, ConfigFileError, FirewallNode, loadConfigFile, runUntilSignal } from '../../node/daemon/index.js';
import { RulesetError, RulesetFileError } from '../../node/filter/index.js';
import { DataplaneError } from '../../node/dataplane/index.js';
import { CliExit, EXIT_UNREACHABLE, type CliIO } from './io.js';

const refusals = [ConfigError, ConfigFileError, RulesetError, RulesetFileError, DataplaneError];

export function nodeCommand(io: CliIO): Command {
  return new Command('node')
    .description('run a firewall node (the daemon)')
    .requiredOption('-c, --config <file>', 'node config (see deploy/examples/node.yaml)')
    .action(async (opts: { config: string }) => {
      let node: FirewallNode;
      try {
        node = new FirewallNode({ config: loadConfigFile(opts.config) });
        await node.start();
      } catch (e) {
        if (refusals.some((k) => e instanceof k)) throw new CliExit(EXIT_UNREACHABLE, `${(e as { code: string }).code}: ${(e as Error).message}`);
        if (e instanceof Error && 'code' in e && typeof e.code === 'string' && /^(METRICS_|CONTROL_|SYNC_)/.test(e.code)) {
          throw new CliExit(EXIT_UNREACHABLE, `${e.code}: ${e.message}`);
        }
        throw e;
      }
      await runUntilSignal(node);
      // Rules are removed and servers closed; pino writes stdout synchronously, so nothing is lost.
      io.exit?.(0);
    });
}

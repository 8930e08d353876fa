#!/usr/bin/env node
/**
 * The twinwall command line: `twinwall node` runs a node; the other commands talk to a running
 * node's control socket (--socket PATH, TWINWALL_SOCKET, or /run/twinwall/control.sock).
 * Exit codes: 0 done, 1 refused by the daemon, 2 daemon unreachable or node not started, 64 usage.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { ctCommand } from './commands/ct.js';
import { expectCommand } from './commands/expect.js';
import { CliExit, EXIT_USAGE, asExit, stdio, type CliIO } from './commands/io.js';
import { nodeCommand } from './commands/node.js';
import { rulesCommand } from './commands/rules.js';
import { statsCommand } from './commands/stats.js';
import { syncCommand } from './commands/sync.js';
import { failoverCommand } from './commands/failover.js';
import { traceCommand } from './commands/trace.js';

export function buildProgram(io: CliIO): Command {
  const program = new Command('twinwall')
    .description('high-availability stateful firewall pair')
    .option('--socket <path>', 'control socket of the node to talk to')
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err });
  for (const c of [nodeCommand(io), ctCommand(io), expectCommand(io), rulesCommand(io), statsCommand(io), syncCommand(io), failoverCommand(io), traceCommand(io)]) program.addCommand(c);
  // Subcommands inherit the output and the exit override (commander copies settings on .command(),
  // not on addCommand()).
  const inherit = (c: Command): void => {
    c.exitOverride().configureOutput({ writeOut: io.out, writeErr: io.err });
    c.commands.forEach(inherit);
  };
  program.commands.forEach(inherit);
  return program;
}

/** Runs the CLI on `argv` (without node and script); resolves to the exit code. */
export async function runCli(argv: string[], io: CliIO = stdio): Promise<number> {
  try {
    await buildProgram(io).parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version end through here too, with exit code 0.
      return e.exitCode === 0 ? 0 : EXIT_USAGE;
    }
    let exit: CliExit;
    try {
      exit = asExit(e);
    } catch (bug) {
      io.err(`twinwall: unexpected error: ${bug instanceof Error ? (bug.stack ?? bug.message) : String(bug)}\n`);
      return 70;
    }
    io.err(`twinwall: ${exit.message}\n`);
    return exit.exitCode;
  }
}

function isMain(): boolean {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    // argv[1] is not a file (node -e, a REPL): not run as the program.
    return false;
  }
}

if (isMain()) process.exitCode = await runCli(process.argv.slice(2));

/**
 * What a command writes to and how it fails: output goes through CliIO (tests capture it), and a
 * failure is a CliExit with the exit code:
 *   0 done, 1 refused by the daemon (bad ruleset, no such entry...), 2 daemon not reachable or
 *   the node could not start, 64 usage error.
 */
import { ApiResponseError, ControlClient, DaemonUnreachableError } from '../../node/control/index.js';
import { DEFAULT_CONTROL_SOCKET } from '../../node/daemon/index.js';

export interface CliIO {
  out(text: string): void;
  err(text: string): void;
  /** Ends streaming commands (trace); without it they stop on SIGINT. */
  signal?: AbortSignal;
  /**
   * Ends the process once the daemon has stopped, rather than waiting for every handle of the
   * event loop (helper processes, timers of libraries) to close by itself.
   */
  exit?: (code: number) => void;
}

export const stdio: CliIO = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
  exit: (code) => process.exit(code),
};

export const EXIT_REFUSED = 1;
export const EXIT_UNREACHABLE = 2;
export const EXIT_USAGE = 64;

export class CliExit extends Error {
  readonly code = 'CLI_EXIT';
  constructor(readonly exitCode: number, message: string) {
    super(message);
    this.name = 'CliExit';
  }
}

/** The socket from --socket, TWINWALL_SOCKET, or the default. */
export function clientFor(opts: { socket?: string }): ControlClient {
  return new ControlClient(opts.socket ?? process.env.TWINWALL_SOCKET ?? DEFAULT_CONTROL_SOCKET);
}

/** Maps client errors to exit codes; anything else is a bug and is rethrown. */
export function asExit(e: unknown): CliExit {
  if (e instanceof CliExit) return e;
  if (e instanceof DaemonUnreachableError) return new CliExit(EXIT_UNREACHABLE, `${e.code}: ${e.message}`);
  if (e instanceof ApiResponseError) return new CliExit(EXIT_REFUSED, `${e.code}: ${e.message}`);
  throw e;
}

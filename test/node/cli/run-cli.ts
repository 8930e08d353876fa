/** Run the `twinwall` command in-process, collecting what it writes: the CLI tests' harness. */
import { runCli } from '../../../src/cli/main.js';
import type { CliIO } from '../../../src/cli/commands/io.js';

export interface Run {
  code: number;
  out: string;
  err: string;
}

export async function cli(argv: string[], signal?: AbortSignal, onOut?: (s: string) => void): Promise<Run> {
  let out = '';
  let err = '';
  const io: CliIO = {
    out: (s) => {
      out += s;
      onOut?.(s);
    },
    err: (s) => void (err += s),
    signal,
  };
  const code = await runCli(argv, io);
  return { code, out, err };
}

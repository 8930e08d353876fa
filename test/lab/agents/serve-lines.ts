/**
 * The request loop of a lab agent: one request per stdin line (`cmd ARG`), answered in order by
 * one JSON line, {"ok":true,...} or {"ok":false,"code":...,"message":...}. When stdin ends (the
 * test process went away), `onEnd` runs and the process exits.
 */
import { createInterface } from 'node:readline';

export type Handler = (cmd: string, arg: string) => Promise<object>;

export function serveLines(handle: Handler, onEnd: () => Promise<void>): void {
  // Requests are handled one at a time, in order, so answers match requests.
  let chain = Promise.resolve();
  createInterface({ input: process.stdin }).on('line', (raw) => {
    chain = chain.then(async () => {
      const line = raw.trim();
      const sp = line.indexOf(' ');
      let answer: object;
      try {
        answer = { ok: true, ...(await handle(sp < 0 ? line : line.slice(0, sp), sp < 0 ? '' : line.slice(sp + 1))) };
      } catch (e) {
        const err = e as { code?: string; message?: string };
        answer = { ok: false, code: err.code ?? 'ERROR', message: err.message ?? String(e) };
      }
      process.stdout.write(`${JSON.stringify(answer)}\n`);
    });
  });
  process.stdin.on('end', () => {
    void (async () => {
      try {
        await onEnd();
      } finally {
        process.exit(0);
      }
    })();
  });
}

export function badRequest(cmd: string, known: string): Error {
  return Object.assign(new Error(`unknown request "${cmd}": use ${known}`), { code: 'BAD_REQUEST' });
}

/**
 * The sync warm-up (src/sync/warmup.ts): whole resyncs between two scratch nodes in this process,
 * so that the receive and dump paths are optimised before a real dump. What it must do: finish
 * its rounds, apply every entry of each, and leave nothing behind (no timers, no sockets).
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { warmUpResync } from '../../src/sync/index.js';
import { compileProject } from '../lab/compile.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** The receive path of a bulk resync, as V8 names its functions in traces. */
const RECEIVE_PATH = ['importHashed', '#lookupHashed', '#confirmHashed', '#insertFrom', '#take', 'hashBatch', 'decodeEntry', '#applyRun', '#applyUpdate', '#apply', 'onData', 'receive', 'readHeader', 'verify'];

/** V8's optimised, deopt and aborted-compile lines of the fixture, by phase (its `##PHASE name` lines). */
function v8Trace(): Map<string, string[]> {
  compileProject(root);
  const out = execFileSync(process.execPath, ['--trace-opt', '--trace-deopt', 'dist/test/sync/fixtures/warmup-jit.js'], { cwd: root, encoding: 'utf8', maxBuffer: 64 << 20 });
  const phases = new Map<string, string[]>();
  let cur: string[] = [];
  for (const line of out.split('\n')) {
    const m = /^##PHASE (\S+)/.exec(line);
    if (m) phases.set(m[1], (cur = []));
    else if (line.startsWith('[bailout') || line.startsWith('[aborted') || line.startsWith('[completed optimizing')) cur.push(line);
  }
  return phases;
}

/** The lines that name one of `fns` as the function optimised, deoptimised or whose compilation was dropped. */
function about(lines: string[], fns: string[]): string[] {
  return lines.filter((l) => fns.some((f) => l.includes(`<JSFunction ${f} `)));
}

/** Of those, the deopts and dropped compilations. */
function thrownAway(lines: string[]): string[] {
  return lines.filter((l) => !l.startsWith('[completed optimizing'));
}

describe('sync warm-up', () => {
  it('runs its resyncs to the end between scratch nodes, every entry applied each round', async () => {
    const r = await warmUpResync({ entries: 2048, rounds: 2 });
    expect(r.tourRounds).toBe(3);
    expect(r.rounds).toBe(2);
    expect(r.applied).toBe(2 * 2048);
  });

  it('leaves the receive path optimised for good: no deopt in the warm-up for lack of feedback or a changed hidden class, none in the resyncs after it', () => {
    const phases = v8Trace();
    expect([...phases.keys()]).toEqual(['warmup', 'fill', 'resync', 'resync-over-full', 'end']);
    // The warm-up's tour gives every path type feedback before the optimiser runs, and the time
    // fields of the sender and the wheel are doubles from the start: the import is compiled once.
    const warm = about(phases.get('warmup') ?? [], ['importHashed', '#lookupHashed', '#confirmHashed', '#insertFrom', '#applyRun']);
    // (The traces are there: the warm-up did get the import optimised.)
    expect(warm.some((l) => l.startsWith('[completed optimizing') && l.includes('<JSFunction importHashed '))).toBe(true);
    expect(thrownAway(warm).filter((l) => /Insufficient type feedback|wrong map|became deprecated|dependency change/.test(l))).toEqual([]);
    // Then a real resync into an empty table and one over the full table run optimised code only.
    expect(thrownAway(about(phases.get('resync') ?? [], RECEIVE_PATH))).toEqual([]);
    expect(thrownAway(about(phases.get('resync-over-full') ?? [], RECEIVE_PATH))).toEqual([]);
  }, 120_000);

  it('gives up at its time limit instead of holding a start up', async () => {
    const t0 = performance.now();
    const r = await warmUpResync({ entries: 200_000, rounds: 50, limitMs: 150 });
    expect(r.rounds).toBeLessThan(50);
    // The round under way when the limit passed is cut short; closing takes a moment.
    expect(performance.now() - t0).toBeLessThan(1500);
  });
});

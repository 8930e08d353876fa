/**
 * Lab agent: one node's election (ElectionRunner, its worker thread and real multicast sockets on
 * every link of the namespace) for test/lab/election.test.ts.
 *
 *   ip netns exec FW node dist/test/lab/agents/election-node.js
 *
 * Requests:
 *   start {nodeId, priority, intervalMs, preempt?, preemptDelayMs?, keyHex, links, tieAddress,
 *          group, port, stallMs?, track?, nice?}
 *   thread            the election thread: {thread (as the runner has it), statNice (from
 *                     /proc/self/task/TID/stat), mainNice (the main thread's)}
 *   log               the transitions so far: [{from, to, reason, at}] (at: Date.now())
 *   status            the election's status
 *   switchover        a planned switchover; {done}
 *   block {ms}        keep the main thread busy for ms (a stalled packet path)
 *   stop              step down and stop the election
 *   quit
 */
import { readFileSync } from 'node:fs';
import { getPriority } from 'node:os';
import { ElectionRunner, addressBytes, type WorkerEvent } from '../../../src/failover/index.js';
import { badRequest, serveLines } from './serve-lines.js';

interface StartArgs {
  nodeId: number;
  priority: number;
  intervalMs: number;
  preempt?: boolean;
  preemptDelayMs?: number;
  keyHex: string;
  links: { name: string; address: string }[];
  tieAddress: string;
  group: string;
  port: number;
  stallMs?: number;
  track?: { name: string; weight: number | null }[];
  nice?: number;
}

let runner: ElectionRunner | null = null;
const log: Extract<WorkerEvent, { type: 'transition' }>[] = [];

async function start(a: StartArgs): Promise<object> {
  runner = await ElectionRunner.start(
    {
      nodeId: a.nodeId, groupId: 1, priority: a.priority, advertIntervalMs: a.intervalMs, preempt: a.preempt ?? true,
      preemptDelayMs: a.preemptDelayMs ?? 0, addressHex: addressBytes(a.tieAddress).toString('hex'), epoch: Date.now(),
      keys: [{ id: 1, secretHex: a.keyHex }], sendKeyId: 1, group: a.group, port: a.port, links: a.links, stallMs: a.stallMs ?? 0, track: a.track,
      nice: a.nice,
    },
    (e) => log.push(e),
  );
  return {};
}

function block(ms: number): object {
  const end = performance.now() + ms;
  let x = 0;
  while (performance.now() < end) x++;
  return { spins: x };
}

serveLines(async (cmd, arg) => {
  switch (cmd) {
    case 'start':
      return start(JSON.parse(arg) as StartArgs);
    case 'log':
      return { log };
    case 'status':
      return { status: await (runner as ElectionRunner).status() };
    case 'thread': {
      const t = (runner as ElectionRunner).thread;
      // Field 19 of stat is the nice value (after the command name in parentheses).
      const stat = t.tid === null ? null : readFileSync(`/proc/self/task/${t.tid}/stat`, 'latin1');
      const statNice = stat === null ? null : Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
      return { thread: t, statNice, mainNice: getPriority() };
    }
    case 'switchover':
      return { done: await (runner as ElectionRunner).switchover() };
    case 'block':
      return block((JSON.parse(arg) as { ms: number }).ms);
    case 'stop':
      await runner?.stop();
      runner = null;
      return {};
    case 'quit':
      await runner?.stop();
      setImmediate(() => process.exit(0));
      return {};
    default:
      throw badRequest(cmd, 'start, log, status, switchover, block, stop or quit');
  }
}, async () => {
  await runner?.stop();
});

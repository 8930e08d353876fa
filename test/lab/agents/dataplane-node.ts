/**
 * A twinwall node's data plane in a lab namespace, driven one JSON line per request on stdin
 * (a LineAgent): the test process cannot enter a namespace itself, and an NFQUEUE socket belongs
 * to the namespace of the process that opens it. Run compiled, inside the firewall namespace:
 *
 *   ip netns exec FW node dist/test/lab/agents/dataplane-node.js RULES.yaml
 *
 * Requests: `start {DataplaneOptions}`, `stats`, `stop`, `quit`. Answers: {"ok":true,...} or
 * {"ok":false,"code":...,"message":...}.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { badRequest, serveLines } from './serve-lines.js';
import { Engine } from '../../../src/node/engine/index.js';
import { dropReasonNames } from '../../../src/node/engine/index.js';
import { compileRuleset, parseRuleset } from '../../../src/node/filter/index.js';
import { formatEntry, ftpRefusalNames } from '../../../src/node/conntrack/index.js';
import { invalidReasonName } from '../../../src/node/packet/index.js';
import { Dataplane, type DataplaneOptions } from '../../../src/node/dataplane/index.js';

const rulesPath = process.argv[2];
if (!rulesPath) {
  console.error('usage: dataplane-node.js RULES.yaml');
  process.exit(2);
}

/** ifindex -> name in this namespace (ip netns exec mounts the namespace's own /sys). */
function interfaceNames(): Map<number, string> {
  const m = new Map<number, string>();
  for (const name of readdirSync('/sys/class/net')) {
    m.set(Number(readFileSync(`/sys/class/net/${name}/ifindex`, 'utf8')), name);
  }
  return m;
}

const names = interfaceNames();
const ruleset = compileRuleset(parseRuleset(readFileSync(rulesPath, 'utf8')), { interfaceName: (i: number) => names.get(i) });
const engine = new Engine({ conntrack: { maxEntries: 65536 }, ruleset });
let dp: Dataplane | null = null;
const engineErrors: string[] = [];
// Expiry runs from the engine's own calls too; a coarse tick keeps the table honest when idle.
const ticker = setInterval(() => engine.tick(), 1000);

function ftpStats(): object {
  const f = engine.helpers.ftp;
  const refused: Record<string, number> = {};
  f.refused.forEach((n, i) => { if (n > 0) refused[ftpRefusalNames[i]] = n; });
  return { expected: f.expected, lines: f.lines, rewritten: f.rewritten, refused };
}

function stats(): object {
  const s = engine.stats;
  const now = engine.now();
  const table: string[] = [];
  engine.conntrack.table.forEach((slot) => table.push(formatEntry(engine.conntrack.table, slot, now)));
  const drops: Record<string, number> = {};
  s.drops.forEach((n, i) => { if (n > 0) drops[dropReasonNames[i] ?? String(i)] = n; });
  const invalid: Record<string, number> = {};
  s.invalid.forEach((n, i) => { if (n > 0) invalid[invalidReasonName(i)] = n; });
  return {
    dataplane: dp?.stats() ?? null,
    engine: { accepted: s.acceptedPackets, dropped: s.droppedPackets, rejects: s.rejects, drops, invalid },
    helpers: { ftp: ftpStats(), tftp: { expected: engine.helpers.tftp.expected, truncated: engine.helpers.tftp.truncated }, expectations: engine.conntrack.expectations.count },
    table,
    engineErrors,
  };
}

async function handle(cmd: string, arg: string): Promise<object> {
  switch (cmd) {
    case 'start':
      dp = new Dataplane(engine, JSON.parse(arg) as DataplaneOptions, { onEngineError: (e) => engineErrors.push(String(e)) });
      await dp.start();
      return {};
    case 'stats':
      return stats();
    case 'stop':
      await dp?.stop();
      return {};
    case 'quit':
      await dp?.stop();
      clearInterval(ticker);
      // The binding keeps its queue socket polled until exit: leave explicitly.
      setImmediate(() => process.exit(0));
      return {};
    default:
      throw badRequest(cmd, 'start, stats, stop or quit');
  }
}

serveLines(handle, async () => {
  await dp?.stop();
});

/**
 * Filter benchmark: ns per packet for Filter.evalRaw + evalForward on the 100-rule ruleset
 * (test/fixtures/rules/bench-100.yaml), for the two packets the engine benchmark sends most:
 *   - an established TCP ACK (raw: 5 rules, none match; forward: rule 0, ctstate ESTABLISHED,RELATED)
 *   - a new TCP SYN accepted at forward rule 8 (after set lookups and the sanity rules)
 * The packets are real bytes parsed once by PacketView, as the engine hands them to the filter.
 * Prints figures; not a test.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/filter.js
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CtState } from '../src/node/conntrack/state.js';
import { Filter, FilterResult, Verdict, compileRuleset, parseRuleset, type CtInfo, type PacketMeta } from '../src/node/filter/index.js';
import { buildTcp } from '../src/node/packet/build.js';
import { TcpFlag } from '../src/node/packet/fields.js';
import { PacketView } from '../src/node/packet/view.js';

const DURATION_MS = 1000;
const ROUNDS = 5;
const rulesPath = fileURLToPath(new URL('../../test/fixtures/rules/bench-100.yaml', import.meta.url));
const ruleset = compileRuleset(parseRuleset(readFileSync(rulesPath, 'utf8')), { interfaceName: () => undefined });
// ssh_in uses connlimit; neither bench packet reaches it, but the Filter requires a count source.
const filter = new Filter(ruleset, { connCount: { countBySource: () => 0 } });
const out = new FilterResult();
const meta: PacketMeta = { inIf: 2, outIf: 3, mark: 0, now: Date.UTC(2024, 0, 1, 12) };

function parsed(flags: number): PacketView {
  const v = new PacketView();
  const b = buildTcp({ src: '10.1.0.5', dst: '10.2.0.1', sport: 40000, dport: 80, flags, window: 65535, payloadLength: flags === TcpFlag.SYN ? 0 : 1 });
  if (v.parse(b) !== 0) throw new Error('bench packet did not parse');
  return v;
}

/** Both chains for one packet; returns the forward verdict. */
function once(p: PacketView, ct: CtInfo): number {
  if (filter.evalRaw(p, meta, out) !== Verdict.ACCEPT) return -1;
  return filter.evalForward(p, meta, ct, out);
}

/** Best of ROUNDS runs of DURATION_MS (the lowest figure is the least disturbed by the host). */
function measure(name: string, p: PacketView, ct: CtInfo, expectRule: number): number {
  once(p, ct);
  if (out.verdict !== Verdict.ACCEPT || out.chain !== 1 || out.rule !== expectRule) {
    throw new Error(`${name}: expected ACCEPT by forward rule ${expectRule}, got verdict ${out.verdict} chain ${out.chain} rule ${out.rule}`);
  }
  for (let i = 0; i < 200_000; i++) once(p, ct); // warm up the JIT
  let best = Infinity;
  let sink = 0;
  for (let r = 0; r < ROUNDS; r++) {
    let n = 0;
    const start = performance.now();
    let now = start;
    while (now - start < DURATION_MS) {
      for (let i = 0; i < 10_000; i++) sink += once(p, ct);
      n += 10_000;
      now = performance.now();
    }
    best = Math.min(best, ((now - start) * 1e6) / n);
  }
  if (sink === -1) console.log(sink);
  console.log(`${name.padEnd(52)} ${best.toFixed(1).padStart(7)} ns/packet  ${(1e3 / best).toFixed(2).padStart(6)} M/s`);
  return best;
}

console.log(`filter bench (node ${process.version}, bench-100.yaml, evalRaw + evalForward, best of ${ROUNDS} x ${DURATION_MS} ms)`);
measure('established TCP ACK (forward rule 0)', parsed(TcpFlag.ACK), { state: CtState.ESTABLISHED, connmark: 0 }, 0);
measure('new TCP SYN (forward rule 8)', parsed(TcpFlag.SYN), { state: CtState.NEW, connmark: 0 }, 8);

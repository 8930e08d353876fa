/**
 * The sync benchmark of issue 5: twinwall's sync (bench/sync/twinwall.ts) and Debian's
 * conntrackd in FTFW mode over multicast (bench/sync/conntrackd.ts), one after the other in the
 * same lab on the same machine, and twinwall's figures over conntrackd's.
 * Run (root): node dist/bench/sync/compare.js [--quick] [--json FILE]
 */
import { writeFileSync } from 'node:fs';
import { formatConntrackdFigures, runConntrackdBench } from './conntrackd.js';
import { printTwinwallSync, runTwinwallSyncBench } from './twinwall.js';

const quick = process.argv.includes('--quick');
const j = process.argv.indexOf('--json');
const ours = await runTwinwallSyncBench({ quick });
printTwinwallSync(ours);
const theirs = await runConntrackdBench({ quick, entries: ours.resync.entries });
console.log(formatConntrackdFigures(theirs));

const ratio = (a: number, b: number | null | undefined): string => (b ? `${(a / b).toFixed(2)}x` : 'n/a');
console.log('\ntwinwall over conntrackd (FTFW, multicast), same lab:');
for (const r of ours.replication) {
  const c = theirs.replication.find((x) => x.lossPercent === r.loss * 100);
  console.log(`  replicated changes/s at ${r.loss * 100} % loss: ${Math.round(r.rate).toLocaleString('en')} / ${Math.round(c?.rate ?? 0).toLocaleString('en')} = ${ratio(r.rate, c?.rate)}` +
    `   bytes/change ${r.bytesPerChange.toFixed(1)} / ${c?.bytesPerEntry.toFixed(1) ?? 'n/a'}`);
}
console.log(`  lag p50 ${ours.lag.p50.toFixed(3)} / ${theirs.lag.p50Ms.toFixed(3)} ms, p99 ${ours.lag.p99.toFixed(3)} / ${theirs.lag.p99Ms.toFixed(3)} ms (at ${ours.lag.rate} / ${Math.round(theirs.lag.achievedRate)} new conn/s)`);
console.log(`  bulk resync of ${ours.resync.entries} entries: ${Math.round(ours.resync.rate).toLocaleString('en')} / ${Math.round(theirs.resync.rate ?? 0).toLocaleString('en')} entries/s = ${ratio(ours.resync.rate, theirs.resync.rate)}` +
  ` (${ours.resync.seconds.toFixed(2)} s vs ${theirs.resync.resyncSeconds?.toFixed(2) ?? 'never'} s; ours asked for by the restarted standby itself, conntrackd's by \`conntrackd -n\`)`);
if (j > 0) writeFileSync(process.argv[j + 1], JSON.stringify({ twinwall: ours, conntrackd: theirs }, null, 2));
process.exit(0);

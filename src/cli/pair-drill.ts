/**
 * The main job's second part: the pair as operators run it (two `twinwall node` daemons in fw1
 * and fw2 of a namespace lab, with state sync and failover, virtual addresses on the inside and
 * outside networks, SNAT to the outside one), 50 long-lived TCP flows and a 1 kHz UDP probe from
 * the client through the virtual addresses, and two drills: a planned switchover (fw1 -> fw2),
 * then SIGKILL of the master (fw2 -> fw1). Prints each drill's report and the nodes' failover
 * status. Needs root. Run compiled: node dist/src/cli/pair-drill.js
 */
import { DrillLab, formatDrill } from '../../test/lab/drill.js';
import { labAvailable } from '../../test/lab/netns.js';

const avail = labAvailable();
if (!avail.ok) {
  console.error(`pair drill: ${avail.why}`);
  process.exit(2);
}
const lab = new DrillLab(50);
let failed = false;
try {
  console.log('\ntwinwall pair drill: two daemons with sync and failover (adverts every 50 ms), traffic through the virtual addresses');
  await lab.setup({ compile: false });
  console.log(`fw1 ${lab.role('fw1')}, fw2 ${lab.role('fw2')} (synced); 50 TCP flows (a message every 20 ms each way) and a 1 kHz UDP probe, 6 s per drill, the fault at 2 s`);
  const a = await lab.run('planned switchover fw1 -> fw2', () => {
    const r = lab.pair.twinwall('fw1', 'failover', 'switchover');
    if (r.code !== 0) throw new Error(r.err);
  });
  console.log(formatDrill(a));
  const b = await lab.run('SIGKILL of the master (fw2) -> fw1', () => {
    lab.pair.daemons.fw2?.child.kill('SIGKILL');
  });
  console.log(formatDrill(b));
  console.log(`\nfw1 after the drills (twinwall failover status):\n${lab.pair.twinwall('fw1', 'failover', 'status').out}`);
  for (const r of [a, b]) if (r.survived !== r.flows || r.samePort !== r.flows) failed = true;
  if (failed) console.error(`pair drill: flows were lost\n${lab.diagnostics()}`);
} catch (e) {
  failed = true;
  console.error(e instanceof Error ? e.message : String(e));
} finally {
  lab.cleanup();
}
process.exit(failed ? 1 : 0);

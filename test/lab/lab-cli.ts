/**
 * scripts/lab.sh's implementation: `up` builds the lab with the fixed suffix "lab" (namespaces
 * twclient-lab, twfw1-lab, twfw2-lab, twserver-lab, twsw-lab) and leaves it standing; `down` removes
 * it (also what a failed or killed run left behind with that suffix). Run compiled.
 */
import { LAB_ADDR, LabTopology } from './topology.js';

const SUFFIX = 'lab';
const cmd = process.argv[2];
if (cmd === 'up') {
  LabTopology.remove(SUFFIX);
  const t = new LabTopology(SUFFIX).build();
  console.log(`lab up: ${Object.values(t.ns).join(' ')}`);
  console.log(`client ${LAB_ADDR.client} -> fw1 ${LAB_ADDR.fw1.inside} | ${LAB_ADDR.fw1.outside} -> server ${LAB_ADDR.server}; e.g. ip netns exec ${t.ns.client} ping ${LAB_ADDR.server}`);
} else if (cmd === 'down') {
  console.log(`lab down: removed ${LabTopology.remove(SUFFIX)} namespaces`);
} else {
  console.error('usage: scripts/lab.sh up|down');
  process.exit(2);
}

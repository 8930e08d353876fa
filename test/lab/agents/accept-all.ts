/**
 * Benchmark baseline (b): the same kernel rules as the data plane and an NFQUEUE listener that
 * accepts every packet without looking at it: the cost of the binding alone. Run compiled inside
 * a firewall namespace: node accept-all.js QUEUE IF[,IF]; prints "ready", exits (removing its
 * rules) on stdin end.
 */
import { BoundQueue, NF_ACCEPT, V_VERDICT, VERD_INTS } from '../../../src/node/dataplane/binding.js';
import { resolveDataplaneOptions } from '../../../src/node/dataplane/options.js';
import { installRules, removeRules } from '../../../src/node/dataplane/rules.js';

const o = resolveDataplaneOptions({ queueNum: Number(process.argv[2]), dataInterfaces: (process.argv[3] ?? '').split(','), ipv6: false, chain: 'TWBENCH' });
const q: BoundQueue = new BoundQueue({ queueNum: o.queueNum, socketBuffer: o.socketBuffer, failOpen: false }, (n) => {
  for (let i = 0; i < n; i++) q.verdicts[i * VERD_INTS + V_VERDICT] = NF_ACCEPT;
});
installRules(4, o);
process.stdout.write('ready\n');
process.stdin.resume();
process.stdin.on('end', () => {
  removeRules(4, o.chain);
  q.close();
  process.exit(0);
});

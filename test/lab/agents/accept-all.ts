/**
 * Benchmark baseline (b): the same kernel rules as the data plane and an NFQUEUE listener that
 * accepts every packet without looking at it: the cost of the binding alone. Run compiled inside
 * a firewall namespace: node accept-all.js QUEUE IF[,IF]; prints "ready", exits (removing its
 * rules) on stdin end.
 */
import { bindQueue, NF_ACCEPT, type BoundQueue } from '../../../src/node/dataplane/binding.js';
import { resolveDataplaneOptions } from '../../../src/node/dataplane/options.js';
import { installRules, removeRules } from '../../../src/node/dataplane/rules.js';

const o = resolveDataplaneOptions({ queueNum: Number(process.argv[2]), dataInterfaces: (process.argv[3] ?? '').split(','), ipv6: false, chain: 'TWBENCH' });
let q: BoundQueue | null = null;
q = bindQueue(o.queueNum, o.socketBuffer, (info) => q?.verdict(info.id, NF_ACCEPT, null));
installRules(4, o);
process.stdout.write('ready\n');
process.stdin.resume();
process.stdin.on('end', () => {
  removeRules(4, o.chain);
  process.exit(0);
});

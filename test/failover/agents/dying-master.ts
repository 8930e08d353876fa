/**
 * A process that stands for a master about to be killed (test/failover/death-watch.test.ts):
 * with `watch` it starts the death watch; it connects two TCP links to 127.0.0.1:PORT, hands
 * both to the watcher, fills MB megabytes (so that its exit has memory to tear down), then
 * releases the second link (closing its own socket) and says "ready" on stdout.
 *   node dist/test/failover/agents/dying-master.js PORT MB watch|plain
 */
import { connect, type Socket } from 'node:net';
import { DeathWatch, DeathWatchLinks } from '../../../src/failover/death-watch.js';

const [port, mb, mode] = [Number(process.argv[2]), Number(process.argv[3]), process.argv[4]];
const watch = mode === 'watch' ? DeathWatch.start((code, signal) => process.stderr.write(`watcher ended: ${code} ${signal}\n`)) : null;
const links = watch !== null ? new DeathWatchLinks(watch.sock) : null;

const open = (): Promise<Socket> => new Promise((resolve, reject) => {
  const s = connect({ host: '127.0.0.1', port }, () => resolve(s));
  s.once('error', reject);
});
const a = await open();
const b = await open();
a.write('A');
b.write('B');
links?.add(a);
links?.add(b);
const hold: Buffer[] = [];
for (let i = 0; i < mb; i++) hold.push(Buffer.alloc(1 << 20, i & 0xff));
b.destroy();
links?.release(b);
process.stdout.write(`ready ${watch?.child.pid ?? 0} ${hold.length}\n`);
setInterval(() => undefined, 1000);

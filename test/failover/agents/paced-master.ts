/**
 * A process standing for a master's election thread (test/failover/advert-pacer.test.ts): it
 * sends a signed advert to 127.0.0.1:PORT and keeps the master's adverts going every 10 ms,
 * with the pacer (`pacer`: native/pacer's thread, the lease renewed every 10 ms from here) or
 * with a timer on this JavaScript thread (`timer`, as the election did before). Commands on
 * stdin, one per line, each answered with a JSON line on stdout:
 *   block MS   hold this JavaScript thread for MS ms (as a GC pause or a busy core would)
 *   state      the pacer's state (null with `timer`)
 *   node dist/test/failover/agents/paced-master.js PORT pacer|timer
 */
import { createSocket } from 'node:dgram';
import { createInterface } from 'node:readline';
import { Keyring } from '../../../src/sync/auth.js';
import { addressBytes, encodeAdvert, newAdvert, Role } from '../../../src/failover/advert.js';
import { AdvertPacer } from '../../../src/failover/advert-pacer.js';

const AGENT_SECRET = Buffer.alloc(32, 7);
const [port, mode] = [Number(process.argv[2]), process.argv[3]];
const keys = new Keyring([{ id: 3, secret: AGENT_SECRET }], 3);
const sock = createSocket('udp4');
await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
const advert = { ...newAdvert(), priority: 200, role: Role.MASTER, groupId: 1, intervalMs: 10, sender: 1, epoch: Date.now(), address: addressBytes('127.0.0.1') };
const buf = Buffer.alloc(64);
let pacer: AdvertPacer | null = null;
if (mode === 'pacer') {
  pacer = new AdvertPacer([{ socket: sock, dest: '127.0.0.1' }], { port, keys, rtPriority: 10 });
  pacer.send(encodeAdvert(advert, keys, buf));
  pacer.start(10, 200);
  setInterval(() => pacer?.renew(200), 10);
} else {
  setInterval(() => {
    advert.seq++;
    sock.send(Buffer.from(encodeAdvert(advert, keys, buf)), port, '127.0.0.1');
  }, 10);
}
const say = (x: unknown): void => void process.stdout.write(`${JSON.stringify(x)}\n`);
say({ ready: true });
createInterface({ input: process.stdin }).on('line', (line) => {
  const [cmd, arg] = line.trim().split(' ');
  if (cmd === 'block') {
    const end = performance.now() + Number(arg);
    while (performance.now() < end);
    say({ blocked: Number(arg) });
  } else if (cmd === 'state') {
    say({ state: pacer?.state() ?? null });
  }
});
process.stdin.on('end', () => process.exit(0));

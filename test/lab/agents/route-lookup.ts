/**
 * Lab agent: a RouteTable started in this namespace (refreshed on `ip monitor` changes, the 5 s
 * timer made long so it cannot be what refreshes). One line in, an IPv4 address: one line out,
 * the ifindex its route goes through (0: none); "refreshes": how many refreshes it did.
 */
import { createInterface } from 'node:readline';
import { RouteTable } from '../../../src/node/dataplane/routes.js';
import { parseAddress } from '../../../src/node/packet/address.js';

const t = new RouteTable();
await t.start(3_600_000, (e) => console.error(String(e)));
createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim() === 'refreshes') return console.log(String(t.refreshes));
  const a = parseAddress(line.trim());
  console.log(String(t.outIf(4, a.words)));
});

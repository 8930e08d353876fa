import { describe, expect, it } from 'vitest';
import { RouteTable, routesFromIp } from '../../../src/node/dataplane/routes.js';
import { parseAddress } from '../../../src/node/packet/address.js';

const links = JSON.stringify([
  { ifindex: 1, ifname: 'lo' },
  { ifindex: 5, ifname: 'inside0' },
  { ifindex: 6, ifname: 'outside0' },
]);
const v4 = JSON.stringify([
  { dst: 'default', gateway: '10.50.2.1', dev: 'outside0' },
  { dst: '10.50.1.0/24', dev: 'inside0', protocol: 'kernel', scope: 'link' },
  { dst: '10.50.1.128/25', dev: 'outside0' },
  { dst: '192.0.2.0/24', type: 'blackhole' },
  { dst: '198.51.100.0/24', dev: 'gone0' },
]);
const v6 = JSON.stringify([{ dst: 'fd00:1::/64', dev: 'inside0' }, { dst: 'default', dev: 'outside0' }]);

function table(): RouteTable {
  const t = new RouteTable();
  t.set([...routesFromIp(4, v4, links), ...routesFromIp(6, v6, links)]);
  return t;
}
const w = (a: string) => parseAddress(a).words;

describe('route table (output interface for packets queued before routing)', () => {
  it('picks the longest matching prefix, and the default route otherwise', () => {
    const t = table();
    expect(t.outIf(4, w('10.50.1.7'))).toBe(5);
    expect(t.outIf(4, w('10.50.1.200'))).toBe(6);
    expect(t.outIf(4, w('8.8.8.8'))).toBe(6);
    expect(t.outIf(6, w('fd00:1::9'))).toBe(5);
    expect(t.outIf(6, w('2001:db8::1'))).toBe(6);
  });

  it('skips routes without an interface or through a vanished one', () => {
    const t = table();
    expect(t.size).toBe(5);
    const only = new RouteTable();
    only.set(routesFromIp(4, JSON.stringify([{ dst: '10.0.0.0/8', dev: 'inside0' }]), links));
    expect(only.outIf(4, w('11.0.0.1'))).toBe(0);
  });

  it('reads the kernel routing table of this namespace with ip -j route', async () => {
    const t = new RouteTable();
    await t.refresh();
    expect(t.size).toBeGreaterThan(0);
    t.stop();
  });
});

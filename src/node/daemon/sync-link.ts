/**
 * The sync link's transport: UDP multicast (or unicast) on the dedicated sync interface. The
 * interface and address are checked first, so a node on the wrong link is refused with a message
 * that names them (SYNC_TRANSPORT) rather than a bare bind error. Injected like the data plane:
 * tests join two nodes with LoopTransport.
 */
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os';
import { SyncTransportError, UdpTransport, type SyncTransport } from '../../sync/index.js';
import type { SyncConfig } from './sync-config.js';

export type SyncTransportFactory = (config: SyncConfig) => Promise<SyncTransport>;

/** Throws SyncTransportError unless `address` is an IPv4 address of `iface`. */
export function checkSyncAddress(c: SyncConfig, interfaces: NodeJS.Dict<NetworkInterfaceInfo[]> = networkInterfaces()): void {
  const addrs = interfaces[c.interface];
  if (addrs === undefined) {
    const known = Object.keys(interfaces).join(', ') || 'none';
    throw new SyncTransportError(
      `sync interface ${c.interface} has no address or does not exist (interfaces with addresses: ${known}); fix sync.interface or bring the link up`,
    );
  }
  if (!addrs.some((a) => a.family === 'IPv4' && a.address === c.address)) {
    const has = addrs.filter((a) => a.family === 'IPv4').map((a) => a.address).join(', ') || 'no IPv4 address';
    throw new SyncTransportError(`${c.address} is not an address of ${c.interface} (it has ${has}); fix sync.address or add the address to the interface`);
  }
}

export const udpSyncTransport: SyncTransportFactory = async (c) => {
  checkSyncAddress(c);
  return UdpTransport.open({ localAddress: c.address, port: c.port, group: c.group ?? undefined, peerAddress: c.peer ?? undefined });
};

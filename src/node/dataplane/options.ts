/**
 * Data plane options, their defaults, and the check that refuses bad ones before anything changes
 * in the kernel (every error at once, each with what to do).
 */
import { DataplaneError } from './errors.js';

export interface DataplaneOptions {
  /** NFQUEUE number (0..65535) the node reads. */
  queueNum: number;
  /** Interfaces whose incoming packets go through the engine (kernel names, e.g. eth1). */
  dataInterfaces: string[];
  /**
   * --queue-bypass: when no process listens on the queue the kernel accepts the packets instead of
   * dropping them. Default false (fail-closed): a dead firewall forwards nothing.
   */
  failOpen?: boolean;
  /** Name of the node's own chain in the raw table (default TWINWALL); at most 28 characters. */
  chain?: string;
  /** UDP destination ports never queued nor tracked by the engine (sync and election traffic). */
  excludedUdpPorts?: number[];
  /** Also install the rules for IPv6 with ip6tables (default true). */
  ipv6?: boolean;
  /** Netlink receive buffer of the queue socket in bytes (default 8 MiB; more absorbs bursts). */
  socketBuffer?: number;
}

export interface ResolvedDataplaneOptions {
  queueNum: number;
  dataInterfaces: string[];
  failOpen: boolean;
  chain: string;
  excludedUdpPorts: number[];
  ipv6: boolean;
  socketBuffer: number;
}

export const DEFAULT_CHAIN = 'TWINWALL';
export const DEFAULT_SOCKET_BUFFER = 8 * 1024 * 1024;

// iptables chain names: up to 28 characters; interface names: IFNAMSIZ-1 = 15, no '/' or space.
const CHAIN_RE = /^[A-Za-z][A-Za-z0-9_-]{0,27}$/;
const IFACE_RE = /^[A-Za-z0-9_.:@-]{1,15}$/;

export function resolveDataplaneOptions(o: DataplaneOptions): ResolvedDataplaneOptions {
  const errors: string[] = [];
  if (!Number.isInteger(o.queueNum) || o.queueNum < 0 || o.queueNum > 65535) {
    errors.push(`queueNum: ${String(o.queueNum)} is not a queue number; use an integer 0..65535`);
  }
  if (!Array.isArray(o.dataInterfaces) || o.dataInterfaces.length === 0) {
    errors.push('dataInterfaces: empty; name at least one interface whose traffic the node filters');
  } else {
    o.dataInterfaces.forEach((n, i) => {
      if (!IFACE_RE.test(n)) errors.push(`dataInterfaces/${i}: "${n}" is not an interface name (1-15 of A-Z a-z 0-9 _ . : @ -)`);
    });
  }
  const chain = o.chain ?? DEFAULT_CHAIN;
  if (!CHAIN_RE.test(chain)) errors.push(`chain: "${chain}" is not an iptables chain name (a letter, then up to 27 of A-Z a-z 0-9 _ -)`);
  const ports = o.excludedUdpPorts ?? [];
  ports.forEach((p, i) => {
    if (!Number.isInteger(p) || p < 1 || p > 65535) errors.push(`excludedUdpPorts/${i}: ${String(p)} is not a UDP port; use 1..65535`);
  });
  const socketBuffer = o.socketBuffer ?? DEFAULT_SOCKET_BUFFER;
  if (!Number.isInteger(socketBuffer) || socketBuffer < 65536) errors.push(`socketBuffer: ${String(socketBuffer)}; use at least 65536 bytes`);
  if (errors.length) throw new DataplaneError('DP_BAD_OPTIONS', `data plane options refused:\n  ${errors.join('\n  ')}`);
  return {
    queueNum: o.queueNum,
    dataInterfaces: [...new Set(o.dataInterfaces)],
    failOpen: o.failOpen ?? false,
    chain,
    excludedUdpPorts: [...new Set(ports)].sort((a, b) => a - b),
    ipv6: o.ipv6 ?? true,
    socketBuffer,
  };
}

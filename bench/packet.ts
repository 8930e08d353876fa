/**
 * Packet module benchmark: parses per second for typical packets, and NAT rewrites with
 * incremental (RFC 1624) versus full checksum recompute. Prints figures; not a test.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/packet.js
 */

import {
  PacketView,
  TcpFlag,
  buildIcmpError,
  buildTcp,
  refreshIpv4HeaderChecksum,
  refreshL4Checksum,
  setSourceAddress,
  setSourcePort,
} from '../src/node/packet/index.js';

const DURATION_MS = 500;

function measure(name: string, fn: (i: number) => void): number {
  for (let i = 0; i < 20_000; i++) fn(i); // warm up the JIT
  let n = 0;
  const start = performance.now();
  let now = start;
  while (now - start < DURATION_MS) {
    for (let i = 0; i < 10_000; i++) fn(n + i);
    n += 10_000;
    now = performance.now();
  }
  const rate = n / ((now - start) / 1000);
  console.log(`${name.padEnd(48)} ${(rate / 1e6).toFixed(2).padStart(7)} M/s  ${(1e9 / rate).toFixed(0).padStart(5)} ns/op`);
  return rate;
}

const tcp4 = buildTcp({
  src: '192.0.2.1',
  dst: '198.51.100.2',
  sport: 40000,
  dport: 443,
  flags: TcpFlag.ACK,
  timestamps: { val: 1, ecr: 2 },
  payloadLength: 1200,
});
const tcp6 = buildTcp({
  src: '2001:db8::1',
  dst: '2001:db8::2',
  sport: 40000,
  dport: 443,
  flags: TcpFlag.ACK,
  timestamps: { val: 1, ecr: 2 },
  payloadLength: 1200,
});
const icmpErr = buildIcmpError({
  src: '203.0.113.1',
  dst: '192.0.2.1',
  type: 3,
  code: 4,
  quote: buildTcp({ src: '192.0.2.1', dst: '198.51.100.2', sport: 40000, dport: 443, flags: TcpFlag.ACK, payloadLength: 1400 }),
});

const v = new PacketView();
let sink = 0;
console.log(`packet bench (node ${process.version}, ${DURATION_MS} ms per line)`);
measure('parse TCP/IPv4 (timestamps, 1200 B payload)', () => {
  sink += v.parse(tcp4);
});
measure('parse TCP/IPv6 (timestamps, 1200 B payload)', () => {
  sink += v.parse(tcp6);
});
measure('parse ICMP frag-needed quoting TCP/IPv4', () => {
  sink += v.parse(icmpErr);
});
v.verifyIpChecksum = v.verifyL4Checksum = true;
measure('parse TCP/IPv4 + verify both checksums', () => {
  sink += v.parse(tcp4);
});
v.verifyIpChecksum = v.verifyL4Checksum = false;

const addrs = [Uint32Array.of(0xc6336401, 0, 0, 0), Uint32Array.of(0xc6336402, 0, 0, 0)];
v.parse(tcp4);
const inc = measure('SNAT TCP/IPv4 addr+port, incremental (RFC 1624)', (i) => {
  setSourceAddress(v, addrs[i & 1]);
  setSourcePort(v, 1024 + (i & 1023));
});
const full = measure('SNAT TCP/IPv4 addr+port, full recompute', (i) => {
  const b = v.buffer;
  const a = addrs[i & 1][0];
  b[12] = a >>> 24;
  b[13] = (a >>> 16) & 255;
  b[14] = (a >>> 8) & 255;
  b[15] = a & 255;
  const p = 1024 + (i & 1023);
  b[20] = p >>> 8;
  b[21] = p & 255;
  refreshIpv4HeaderChecksum(v);
  refreshL4Checksum(v);
});
console.log(`incremental is ${(inc / full).toFixed(1)}x faster than full recompute on a 1252-byte segment`);

const addrs6 = [Uint32Array.of(0x20010db8, 0, 0, 0x99), Uint32Array.of(0x20010db8, 0, 1, 0x99)];
v.parse(tcp6);
measure('SNAT TCP/IPv6 addr+port, incremental (RFC 1624)', (i) => {
  setSourceAddress(v, addrs6[i & 1]);
  setSourcePort(v, 1024 + (i & 1023));
});
if (sink === -1) console.log(sink);

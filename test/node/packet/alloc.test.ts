import v8 from 'node:v8';
import { describe, expect, it } from 'vitest';
import {
  PacketView,
  TcpFlag,
  buildIcmpError,
  buildTcp,
  buildUdp,
  setDestinationPort,
  setSourceAddress,
  setSourcePort,
} from '../../../src/node/packet/index.js';

/**
 * Garbage collections while running fn a million times (after warming up). A per-call allocation
 * of even a few dozen bytes fills the young generation many times over and shows up as scavenges;
 * an allocation-free hot path shows none.
 */
function collectionsDuring(fn: (i: number) => void): number {
  for (let i = 0; i < 100_000; i++) fn(i);
  const profiler = new v8.GCProfiler();
  profiler.start();
  for (let i = 0; i < 1_000_000; i++) fn(i);
  return profiler.stop().statistics.length;
}

describe('hot paths allocate nothing', () => {
  const tcp = buildTcp({ src: '2001:db8::1', dst: '2001:db8::2', sport: 1, dport: 2, flags: TcpFlag.ACK, timestamps: { val: 1, ecr: 2 }, sackBlocks: [[1, 2]] });
  const err = buildIcmpError({ src: '10.0.0.3', dst: '10.0.0.1', type: 3, code: 1, quote: buildUdp({ src: '10.0.0.1', dst: '10.0.0.9', sport: 5, dport: 6 }) });

  it('the probe sees allocation when there is some', () => {
    const keep: unknown[] = [null];
    expect(collectionsDuring((i) => (keep[0] = { i, a: [i, i] }))).toBeGreaterThan(3);
  });

  it('parse (TCP/IPv6 with options, ICMP error with its quote)', () => {
    const v = new PacketView();
    v.verifyL4Checksum = true;
    expect(collectionsDuring((i) => v.parse(i & 1 ? tcp : err))).toBeLessThanOrEqual(1);
  });

  it('NAT rewrites', () => {
    const v = new PacketView();
    v.parse(tcp);
    const addrs = [Uint32Array.of(0x20010db8, 0, 0, 7), Uint32Array.of(0x20010db8, 0, 0, 8)];
    expect(
      collectionsDuring((i) => {
        setSourceAddress(v, addrs[i & 1]);
        setSourcePort(v, i & 0xffff);
        setDestinationPort(v, 443);
      }),
    ).toBeLessThanOrEqual(1);
  });
});

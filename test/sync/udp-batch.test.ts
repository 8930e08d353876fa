/**
 * The sync socket's batched receiving (native/udp, src/sync/udp-batch.ts) on real UDP over
 * loopback: two UdpTransports in unicast, 127.0.0.1 and 127.0.0.2 on one port. A burst arrives
 * whole and in order, in batches of more than one datagram per call; a transport asked not to
 * batch gets the same through dgram's events.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { UdpTransport } from '../../src/sync/index.js';

const PORT = 39000 + Math.floor(Math.random() * 2000);

describe('UdpTransport batched receiving', () => {
  const open: UdpTransport[] = [];
  afterEach(async () => {
    for (const t of open.splice(0)) await t.close();
  });

  async function link(batchReceive: boolean, port: number): Promise<{ a: UdpTransport; b: UdpTransport; got: string[] }> {
    const a = await UdpTransport.open({ localAddress: '127.0.0.1', peerAddress: '127.0.0.2', port, batchReceive });
    const b = await UdpTransport.open({ localAddress: '127.0.0.2', peerAddress: '127.0.0.1', port, batchReceive });
    open.push(a, b);
    const got: string[] = [];
    b.onMessage = (buf) => got.push(buf.toString('latin1'));
    return { a, b, got };
  }

  async function until(cond: () => boolean, ms = 5000): Promise<void> {
    const end = Date.now() + ms;
    while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
  }

  it('delivers a burst whole and in order, several datagrams per batch', async () => {
    const { a, b, got } = await link(true, PORT);
    expect(b.batchStats()).not.toBeNull();
    const n = 2000;
    for (let i = 0; i < n; i++) a.send(Buffer.from(`m${i}:${'x'.repeat(i % 1400)}`, 'latin1'));
    await until(() => got.length >= n);
    expect(got.length).toBe(n);
    expect(got.every((m, i) => m === `m${i}:${'x'.repeat(i % 1400)}`)).toBe(true);
    const s = b.batchStats()!;
    expect(s.datagrams).toBe(n);
    expect(s.maxBatch).toBeGreaterThan(1);
    expect(s.batches).toBeLessThan(n);
    expect(s.truncated).toBe(0);
  });

  it('without batching, the same datagrams come through dgram', async () => {
    const { a, b, got } = await link(false, PORT + 1);
    expect(b.batchStats()).toBeNull();
    for (let i = 0; i < 100; i++) a.send(Buffer.from(`m${i}`));
    await until(() => got.length >= 100);
    expect(got).toEqual(Array.from({ length: 100 }, (_, i) => `m${i}`));
  });
});

/**
 * The sync socket's batched receiving and sending (native/udp, src/sync/udp-batch.ts) on real
 * UDP over loopback: two UdpTransports in unicast, 127.0.0.1 and 127.0.0.2 on one port. A burst
 * arrives whole and in order, read in batches of more than one datagram per call and sent in
 * sendmmsg() calls of many; a transport asked not to batch gets the same through dgram.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { UdpTransport } from '../../src/sync/index.js';

const PORT = 39000 + Math.floor(Math.random() * 2000);

describe('UdpTransport batched receiving', () => {
  const open: UdpTransport[] = [];
  afterEach(async () => {
    for (const t of open.splice(0)) await t.close();
  });

  async function link(batch: boolean, port: number): Promise<{ a: UdpTransport; b: UdpTransport; got: string[] }> {
    const a = await UdpTransport.open({ localAddress: '127.0.0.1', peerAddress: '127.0.0.2', port, batchReceive: batch, batchSend: batch });
    const b = await UdpTransport.open({ localAddress: '127.0.0.2', peerAddress: '127.0.0.1', port, batchReceive: batch, batchSend: batch });
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
    // In turns of 200 (a bulk dump's step): each turn's datagrams leave together at its end.
    for (let i = 0; i < n; i++) {
      a.send(Buffer.from(`m${i}:${'x'.repeat(i % 1400)}`, 'latin1'));
      if (i % 200 === 199) await new Promise((r) => setImmediate(r));
    }
    await until(() => got.length >= n);
    expect(got.length).toBe(n);
    expect(got.every((m, i) => m === `m${i}:${'x'.repeat(i % 1400)}`)).toBe(true);
    const s = b.batchStats()!;
    expect(s.datagrams).toBe(n);
    expect(s.maxBatch).toBeGreaterThan(1);
    expect(s.batches).toBeLessThan(n);
    expect(s.truncated).toBe(0);
    const tx = a.sendStats()!;
    expect(tx.datagrams).toBe(n);
    expect(tx.errors + tx.viaDgram).toBe(0);
    // 200 per turn, up to 64 per sendmmsg(): 4 calls a turn, not 200.
    expect(tx.flushes).toBe(10);
    expect(tx.syscalls).toBe(40);
  });

  it('counts a datagram the kernel refuses and goes on with the rest', async () => {
    const { a, b, got } = await link(true, PORT + 2);
    // 70 000 bytes: larger than any UDP datagram (EMSGSIZE), between two good ones.
    a.send(Buffer.from('first'));
    a.send(Buffer.alloc(70_000));
    a.send(Buffer.from('last'));
    await until(() => got.length >= 2);
    expect(got).toEqual(['first', 'last']);
    expect(a.sendStats()).toMatchObject({ datagrams: 2, errors: 1, lastErrno: 90 });
    expect(b.batchStats()!.datagrams).toBe(2);
  });

  it('without batching, the same datagrams come through dgram', async () => {
    const { a, b, got } = await link(false, PORT + 1);
    expect(b.batchStats()).toBeNull();
    expect(a.sendStats()).toBeNull();
    for (let i = 0; i < 100; i++) a.send(Buffer.from(`m${i}`));
    await until(() => got.length >= 100);
    expect(got).toEqual(Array.from({ length: 100 }, (_, i) => `m${i}`));
  });
});

import { createSocket } from 'node:dgram';
import { createServer, connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { fstatSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { socketFd, socketHandle } from '../src/native.js';
import { BatchReceiver } from '../src/sync/udp-batch.js';

describe('socketFd', () => {
  it("reads a dgram socket's descriptor without the deprecated _handle (no DEP0112 warning)", async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error & { code?: string }) => warnings.push(w.code ?? w.name);
    process.on('warning', onWarning);
    const s = createSocket('udp4');
    try {
      s.bind(0, '127.0.0.1');
      await once(s, 'listening');
      const fd = socketFd(s);
      expect(fd).toBeGreaterThanOrEqual(0);
      expect(fstatSync(fd).isSocket()).toBe(true);
      await new Promise((r) => setImmediate(r));
      expect(warnings).not.toContain('DEP0112');
    } finally {
      process.off('warning', onWarning);
      s.close();
    }
  });

  it("reads a TCP socket's descriptor, and -1 for a socket that has none", async () => {
    const server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as { port: number };
    const c: Socket = connect(port, '127.0.0.1');
    try {
      await once(c, 'connect');
      expect(socketFd(c)).toBeGreaterThanOrEqual(0);
      expect(socketFd(createSocket('udp4'))).toBe(-1);
    } finally {
      c.destroy();
      server.close();
    }
  });

  it('batched sync receiving takes over a dgram socket through its handle, without DEP0112', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error & { code?: string }) => warnings.push(w.code ?? w.name);
    process.on('warning', onWarning);
    const rx = createSocket('udp4');
    const tx = createSocket('udp4');
    try {
      rx.bind(0, '127.0.0.1');
      await once(rx, 'listening');
      expect(typeof socketHandle(rx)?.recvStop).toBe('function');
      const got: string[] = [];
      const batch = BatchReceiver.attach(rx, (b) => got.push(b.toString()));
      expect(batch).not.toBeNull();
      tx.send('hello', rx.address().port, '127.0.0.1');
      for (let i = 0; i < 100 && got.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
      expect(got).toEqual(['hello']);
      batch?.close();
      await new Promise((r) => setImmediate(r));
      expect(warnings).not.toContain('DEP0112');
    } finally {
      process.off('warning', onWarning);
      rx.close();
      tx.close();
    }
  });
});

/**
 * The peer link on loopback with real TCP: a master in a child process killed with SIGKILL (its
 * kernel closes the link), links closed by the backup itself, wrong keys, another master, and
 * garbled or replayed handshakes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { existsSync, statSync } from 'node:fs';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PeerLink } from '../../src/failover/peer-link.js';
import { Keyring } from '../../src/sync/index.js';
import { KEY } from './sim.js';
import { compileProject } from '../lab/compile.js';

const MASTER = '127.0.0.1';
const BACKUP = '127.0.0.2';
const EPOCH = 1_700_000_000_123;
const port = 30_000 + Math.floor(Math.random() * 20_000);
const keys = new Keyring([KEY], 1);
const dist = fileURLToPath(new URL('../../dist/src/', import.meta.url));

// The master's process runs the compiled module: compile when dist/ lacks it or is older.
beforeAll(() => {
  const src = fileURLToPath(new URL('../../src/failover/peer-link.ts', import.meta.url));
  const out = `${dist}failover/peer-link.js`;
  if (!existsSync(out) || statSync(out).mtimeMs < statSync(src).mtimeMs) compileProject(fileURLToPath(new URL('../../', import.meta.url)));
}, 180_000);

const open: { close(): void }[] = [];
const children: ChildProcess[] = [];
afterEach(() => {
  for (const l of open.splice(0)) l.close();
  for (const c of children.splice(0)) c.kill('SIGKILL');
});

function link(nodeId: number, address: string, k = keys, epoch = EPOCH + nodeId): { l: PeerLink; gone: { id: number; epoch: number; at: number }[] } {
  const gone: { id: number; epoch: number; at: number }[] = [];
  const l = new PeerLink({ nodeId, epoch, keys: k, address, port, onGone: (p) => gone.push({ ...p, at: performance.now() }) });
  open.push(l);
  return { l, gone };
}

async function until(what: () => boolean, ms = 3000): Promise<void> {
  const t0 = performance.now();
  while (!what()) {
    if (performance.now() - t0 > ms) throw new Error(`not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** A master's peer link in a process of its own (the compiled module), listening. */
async function masterProcess(): Promise<ChildProcess> {
  const code = `
    import { PeerLink } from '${dist}failover/peer-link.js';
    import { Keyring } from '${dist}sync/auth.js';
    const keys = new Keyring([{ id: ${KEY.id}, secret: Buffer.from('${KEY.secret.toString('hex')}', 'hex') }], ${KEY.id});
    const l = new PeerLink({ nodeId: 1, epoch: ${EPOCH + 1}, keys, address: '${MASTER}', port: ${port}, onGone() {} });
    await l.listen();
    console.log('listening');
    setInterval(() => {}, 1000);
  `;
  const c = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(c);
  await new Promise<void>((resolve, reject) => {
    c.stdout?.once('data', () => resolve());
    c.once('exit', (code) => reject(new Error(`the master process exited (${code})`)));
  });
  return c;
}

/** A raw client of a listening link: what it reads, and a way to write. */
async function raw(): Promise<{ sock: Socket; got: Buffer[]; closed: Promise<void> }> {
  const sock = connect({ host: MASTER, port, localAddress: BACKUP });
  const got: Buffer[] = [];
  sock.on('data', (d) => got.push(d));
  sock.on('error', () => undefined);
  const closed = new Promise<void>((r) => sock.once('close', () => r()));
  await new Promise((r) => sock.once('connect', r));
  return { sock, got, closed };
}

function hello(nodeId: number, epoch: number, nonce: Buffer): Buffer {
  const b = Buffer.alloc(36);
  b.writeUInt32BE(0x5457504c, 0);
  b[4] = 1;
  b.writeUInt32BE(nodeId, 8);
  b.writeUInt32BE(Math.floor(epoch / 2 ** 32), 12);
  b.writeUInt32BE(epoch >>> 0, 16);
  nonce.copy(b, 20);
  return b;
}

function proof(nodeId: number, epoch: number, peerNonce: Buffer, k = keys): Buffer {
  const b = Buffer.alloc(52);
  b.writeUInt32BE(0x54575050, 0);
  b[4] = k.sendId;
  b.writeUInt32BE(nodeId, 8);
  b.writeUInt32BE(Math.floor(epoch / 2 ** 32), 12);
  b.writeUInt32BE(epoch >>> 0, 16);
  peerNonce.copy(b, 20);
  k.sign(b, 36);
  return b;
}

describe('peer link', () => {
  it('a backup learns at once that its master\'s process was killed (SIGKILL): its kernel closes the link', async () => {
    const master = await masterProcess();
    const { l, gone } = link(2, BACKUP);
    const follow = (): void => l.follow({ id: 1, epoch: EPOCH + 1, address: MASTER });
    follow();
    await until(() => l.up);
    expect(l.stats.proved).toBe(1);
    // Adverts keep coming: following the same master again changes nothing.
    for (let i = 0; i < 10; i++) follow();
    expect(l.up).toBe(true);
    const killedAt = performance.now();
    master.kill('SIGKILL');
    await until(() => gone.length > 0);
    expect(gone).toEqual([{ id: 1, epoch: EPOCH + 1, at: expect.any(Number) }]);
    const ms = gone[0].at - killedAt;
    console.log(`peer link: master SIGKILLed, gone seen after ${ms.toFixed(1)} ms`);
    expect(ms).toBeLessThan(1000);
    expect(l.up).toBe(false);
    // Following it again (no advert comes from a dead master, but say one was queued) tries
    // again after the retry pause; the connection is refused: no second "gone".
    await new Promise((r) => setTimeout(r, 250));
    follow();
    await until(() => l.stats.connectFailures > 0);
    expect(gone).toHaveLength(1);
  });

  it('says nothing when the backup drops the link itself (another master, or it took over)', async () => {
    const m = link(1, MASTER);
    await m.l.listen();
    const b = link(2, BACKUP);
    b.l.follow({ id: 1, epoch: EPOCH + 1, address: MASTER });
    await until(() => b.l.up);
    b.l.follow(null);
    expect(b.l.up).toBe(false);
    b.l.follow({ id: 1, epoch: EPOCH + 1, address: MASTER });
    await until(() => b.l.up);
    // The master restarted (a new epoch in its adverts): the old link goes, quietly.
    b.l.follow({ id: 1, epoch: EPOCH + 99, address: MASTER });
    await new Promise((r) => setTimeout(r, 100));
    expect(b.gone).toHaveLength(0);
    expect(b.l.up).toBe(false);
    expect(b.l.stats.refused.not_the_master).toBeGreaterThanOrEqual(1);
  });

  it('trusts no link it cannot prove: a wrong key, another node than the master followed', async () => {
    const m = link(1, MASTER, new Keyring([{ id: 1, secret: Buffer.from('another key of 32 bytes, not ours') }], 1));
    await m.l.listen();
    const b = link(2, BACKUP);
    b.l.follow({ id: 1, epoch: EPOCH + 1, address: MASTER });
    await until(() => (b.l.stats.refused.bad_mac ?? 0) > 0 && (m.l.stats.refused.bad_mac ?? 0) > 0);
    expect(b.l.up).toBe(false);
    expect(b.gone).toHaveLength(0);
    // Closed unproved: a connect failure, never "gone", and tried again later.
    m.l.close();
    await new Promise((r) => setTimeout(r, 50));
    expect(b.gone).toHaveLength(0);
  });

  it('closes and counts garbled, truncated and replayed handshakes; the listener goes on', async () => {
    const m = link(1, MASTER);
    await m.l.listen();
    // Garbage instead of a hello.
    let c = await raw();
    c.sock.write(randomBytes(64));
    await c.closed;
    expect(m.l.stats.refused.bad_hello).toBe(1);
    // A hello claiming the master's own id.
    c = await raw();
    c.sock.write(hello(1, EPOCH, randomBytes(16)));
    await c.closed;
    expect(m.l.stats.refused.bad_hello).toBe(2);
    // A wrong version.
    c = await raw();
    const h = hello(2, EPOCH, randomBytes(16));
    h[4] = 9;
    c.sock.write(h);
    await c.closed;
    expect(m.l.stats.refused.bad_version).toBe(1);
    // A proof made for another nonce (recorded from another connection): replayed.
    c = await raw();
    c.sock.write(Buffer.concat([hello(2, EPOCH, randomBytes(16)), proof(2, EPOCH, randomBytes(16))]));
    await c.closed;
    expect(m.l.stats.refused.bad_proof).toBe(1);
    // A good proof followed by more bytes.
    c = await raw();
    c.sock.write(hello(2, EPOCH, randomBytes(16)));
    await until(() => Buffer.concat(c.got).length >= 36);
    const masterNonce = Buffer.concat(c.got).subarray(20, 36);
    c.sock.write(Buffer.concat([proof(2, EPOCH, masterNonce), Buffer.from('x')]));
    await c.closed;
    expect(m.l.stats.refused.bytes_after_proof).toBe(1);
    // A good handshake, split byte by byte: proved.
    c = await raw();
    const hb = hello(2, EPOCH, randomBytes(16));
    for (const byte of hb) c.sock.write(Buffer.from([byte]));
    await until(() => Buffer.concat(c.got).length >= 88);
    const n2 = Buffer.concat(c.got).subarray(20, 36);
    c.sock.write(proof(2, EPOCH, n2));
    await until(() => m.l.stats.proved === 1);
    c.sock.destroy();
    expect(m.l.stats.proved).toBe(1);
  });
});

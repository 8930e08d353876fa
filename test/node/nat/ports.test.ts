import { describe, expect, it } from 'vitest';
import { PortPool } from '../../../src/node/nat/index.js';

const A = 0x0a000005; // 10.0.0.5
const B = 0x0a000006;

describe('PortPool', () => {
  it('keeps the wanted port when free, else takes the next free one in range', () => {
    const p = new PortPool(0xc6336401, 6);
    expect(p.findFree(40000, 1024, 65535)).toBe(40000);
    p.claim(PortPool.key(A, 40000), 40000);
    expect(p.findFree(40000, 1024, 65535)).toBe(40001);
    // Out of range: start at the range's low end.
    expect(p.findFree(80, 1024, 2000)).toBe(1024);
  });

  it('wraps around and skips full words', () => {
    const p = new PortPool(1, 17);
    for (let port = 1024; port < 1100; port++) p.claim(PortPool.key(A, port), port);
    expect(p.findFree(1099, 1024, 1100)).toBe(1100);
    p.claim(PortPool.key(B, 1), 1100);
    expect(p.findFree(1050, 1024, 1100)).toBe(-1);
    p.release(1030);
    expect(p.findFree(1050, 1024, 1100)).toBe(1030);
    expect(p.findFree(1050, 1024, 1200)).toBe(1101);
  });

  it('maps an inside endpoint to one port and frees it with its last connection', () => {
    const p = new PortPool(1, 6);
    const k = PortPool.key(A, 5000);
    expect(p.mapped(k)).toBe(-1);
    p.claim(k, 5000);
    p.ref(5000);
    expect(p.mapped(k)).toBe(5000);
    expect([p.inUse, p.refsOf(5000), p.mappings]).toEqual([1, 2, 1]);
    p.release(5000);
    expect(p.mapped(k)).toBe(5000);
    p.release(5000);
    expect([p.mapped(k), p.inUse, p.mappings, p.isFree(5000)]).toEqual([-1, 0, 0, true]);
    p.release(5000); // a stray release changes nothing
    expect(p.inUse).toBe(0);
  });

  it('exhausts a one-port range', () => {
    const p = new PortPool(1, 6);
    expect(p.findFree(9, 2000, 2000)).toBe(2000);
    p.claim(PortPool.key(A, 9), 2000);
    expect(p.findFree(9, 2000, 2000)).toBe(-1);
  });
});

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  PacketView,
  TcpFlag,
  buildIcmpEcho,
  buildIcmpError,
  buildTcp,
  buildUdp,
} from '../../../src/node/packet/index.js';

/** What a reader may rely on for a valid packet: every offset and length stays inside the bytes. */
function expectInBounds(v: PacketView, start: number, end: number): void {
  if (v.invalid !== 0) return;
  expect(v.family === 4 || v.family === 6).toBe(true);
  expect(v.l3Offset).toBe(start);
  expect(v.l3Offset + v.captureLength).toBeLessThanOrEqual(end);
  expect(v.ipEnd).toBeLessThanOrEqual(v.l3Offset + v.captureLength);
  expect(v.l4Offset).toBeGreaterThanOrEqual(v.l3Offset + (v.family === 4 ? 20 : 40));
  expect(v.l4Offset).toBeLessThanOrEqual(v.ipEnd);
  expect(v.payloadOffset).toBeGreaterThanOrEqual(v.l4Offset);
  expect(v.payloadLength).toBeGreaterThanOrEqual(0);
  expect(v.payloadOffset + v.payloadLength).toBeLessThanOrEqual(v.ipEnd);
  for (const x of [v.sport, v.dport, v.icmpId, v.icmpSeq, v.tcpWindow, v.tcpMss]) {
    expect(x >= 0 && x <= 0xffff).toBe(true);
  }
  expect(v.tcpWscale).toBeLessThanOrEqual(14);
  if (v.isIcmpError && !v.isQuoted) {
    expect(v.inner.invalid).toBe(0);
    expectInBounds(v.inner, v.l4Offset + 8, v.ipEnd);
    expect(v.inner.family).toBe(v.family);
  }
}

function parseChecked(v: PacketView, buf: Uint8Array, offset = 0, length = buf.length - offset): void {
  let r = -1;
  expect(() => (r = v.parse(buf, offset, length))).not.toThrow();
  expect(r).toBe(v.invalid);
  expectInBounds(v, offset, offset + length);
}

const ip4 = { src: '192.0.2.10', dst: '198.51.100.20' };
const ip6 = { src: '2001:db8::10', dst: '2001:db8::20' };

const samples: Uint8Array[] = [];
for (const ip of [ip4, ip6]) {
  samples.push(
    buildTcp({ ...ip, sport: 1234, dport: 80, flags: TcpFlag.SYN, mss: 1460, wscale: 7, sackPermitted: true, timestamps: { val: 5, ecr: 0 } }),
    buildTcp({ ...ip, sport: 1234, dport: 80, flags: TcpFlag.ACK, sackBlocks: [[1, 2]], payloadLength: 30 }),
    buildUdp({ ...ip, sport: 53, dport: 5353, payloadLength: 25 }),
    buildIcmpEcho({ ...ip, id: 7, seq: 8, payloadLength: 16 }),
    buildIcmpError({
      src: ip.dst,
      dst: ip.src,
      type: ip === ip4 ? 3 : 1,
      code: 3,
      quote: buildTcp({ ...ip, sport: 1, dport: 2, mss: 1200, payloadLength: 100 }),
    }),
  );
}
samples.push(
  buildUdp({ ...ip4, sport: 1, dport: 2, ipOptions: Uint8Array.of(1, 1, 148, 4, 0, 0) }),
  buildTcp({
    ...ip6,
    sport: 1,
    dport: 2,
    flags: TcpFlag.ACK,
    extHeaders: [
      { type: 0, body: new Uint8Array(6) },
      { type: 43, body: new Uint8Array(6) },
      { type: 44, body: new Uint8Array(6) },
      { type: 60, body: Uint8Array.of(1, 4, 0, 0, 0, 0) },
    ],
  }),
);

describe('the parser never throws and keeps valid fields in bounds', () => {
  it('on random bytes', () => {
    const v = new PacketView();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.boolean(), (b, verify) => {
        v.verifyIpChecksum = v.verifyL4Checksum = verify;
        parseChecked(v, b);
      }),
      { numRuns: 5000 },
    );
  });

  it('on random bytes that start like IPv4 or IPv6', () => {
    const v = new PacketView();
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 300 }), fc.constantFrom(0x45, 0x46, 0x4f, 0x60), (b, first) => {
        b[0] = first;
        parseChecked(v, b);
      }),
      { numRuns: 5000 },
    );
  });

  it('on every truncation of valid packets', () => {
    const v = new PacketView();
    for (const s of samples) {
      expect(v.parse(s)).toBe(0);
      for (let n = 0; n <= s.length; n++) parseChecked(v, s, 0, n);
    }
  });

  it('on valid packets with bit flips, random offsets and lengths', () => {
    const v = new PacketView();
    fc.assert(
      fc.property(
        fc.constantFrom(...samples),
        fc.array(fc.nat(), { minLength: 1, maxLength: 6 }),
        fc.integer({ min: -4, max: 600 }),
        fc.integer({ min: -4, max: 16 }),
        fc.boolean(),
        (s, flips, length, offset, verify) => {
          const b = new Uint8Array(s.length + 16);
          const at = offset > 0 ? offset : 0;
          b.set(s, at);
          for (const f of flips) b[at + (f % (s.length * 8) >> 3)] ^= 1 << (f & 7);
          v.verifyIpChecksum = v.verifyL4Checksum = verify;
          let r = -1;
          expect(() => (r = v.parse(b, offset, length))).not.toThrow();
          expect(r).toBe(v.invalid);
          if (offset >= 0 && length >= 0 && offset + length <= b.length) expectInBounds(v, offset, offset + length);
          else if (r === 0) expectInBounds(v, v.l3Offset, b.length);
        },
      ),
      { numRuns: 20000 },
    );
  });

  it('with checksums verified, a single bit flip anywhere in an IPv4 packet is caught', () => {
    const v = new PacketView();
    v.verifyIpChecksum = v.verifyL4Checksum = true;
    fc.assert(
      fc.property(fc.constantFrom(...samples.slice(0, 4)), fc.nat(), (s, f) => {
        const b = Uint8Array.from(s);
        b[(f % (b.length * 8)) >> 3] ^= 1 << (f & 7);
        expect(v.parse(b)).not.toBe(0);
      }),
      { numRuns: 3000 },
    );
  });
});

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  checksumUpdate16,
  checksumUpdate32,
  computeIpv4HeaderChecksum,
  fold,
  internetChecksum,
  sumWords,
} from '../../../src/node/packet/index.js';

/** The plain RFC 1071 reference: byte pairs, fold after every addition. */
function referenceChecksum(b: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < b.length; i += 2) {
    s += (b[i] << 8) | (i + 1 < b.length ? b[i + 1] : 0);
    s = (s & 0xffff) + (s >>> 16);
  }
  return ~s & 0xffff;
}

describe('Internet checksum', () => {
  it('matches the RFC 1071 example sum', () => {
    // RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
    const b = Uint8Array.of(0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7);
    expect(fold(sumWords(b, 0, b.length, 0))).toBe(0xddf2);
    expect(internetChecksum(b, 0, b.length)).toBe(~0xddf2 & 0xffff);
  });

  it('checks a real IPv4 header', () => {
    // A header from the wild with checksum b861.
    const h = Buffer.from('450000730000400040110000c0a80001c0a800c7', 'hex');
    expect(computeIpv4HeaderChecksum(h, 0)).toBe(0xb861);
    h[10] = 0xb8;
    h[11] = 0x61;
    expect(internetChecksum(h, 0, 20)).toBe(0);
  });

  it('agrees with the plain reference on any bytes, odd lengths included', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), (b) => {
        expect(internetChecksum(b, 0, b.length)).toBe(referenceChecksum(b));
      }),
    );
  });

  it('gives RFC 1624 section 4 its answer (equation 3 avoids -0)', () => {
    expect(checksumUpdate16(0xdd2f, 0x5555, 0x3285)).toBe(0x0000);
  });

  it('incremental 16- and 32-bit updates equal a full recompute', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 8, maxLength: 200 }),
        fc.nat(),
        fc.integer({ min: 0, max: 0xffffffff }),
        (data, pos, value) => {
          const b = Uint8Array.from(data);
          if (b.length % 2) return;
          const at = (pos % (b.length / 2 - 1)) * 2;
          // Put a valid checksum in the first word, then change a later word or pair.
          b[0] = b[1] = 0;
          const c0 = internetChecksum(b, 0, b.length);
          b[0] = c0 >>> 8;
          b[1] = c0 & 0xff;
          const fieldAt = Math.max(2, at);
          if (fieldAt + 4 > b.length) return;
          const old32 = ((b[fieldAt] << 24) | (b[fieldAt + 1] << 16) | (b[fieldAt + 2] << 8) | b[fieldAt + 3]) >>> 0;
          const inc32 = checksumUpdate32(c0, old32, value);
          const old16 = (b[fieldAt] << 8) | b[fieldAt + 1];
          const inc16 = checksumUpdate16(c0, old16, value & 0xffff);
          const c = Uint8Array.from(b);
          c[0] = c[1] = 0;
          c[fieldAt] = value >>> 24;
          c[fieldAt + 1] = (value >>> 16) & 0xff;
          c[fieldAt + 2] = (value >>> 8) & 0xff;
          c[fieldAt + 3] = value & 0xff;
          // All-zero data is the one case with two zeros (0 and 0xffff); no IP packet is all zero.
          if (c.every((x) => x === 0)) return;
          expect(inc32).toBe(internetChecksum(c, 0, c.length));
          const d = Uint8Array.from(b);
          d[0] = d[1] = 0;
          d[fieldAt] = (value >>> 8) & 0xff;
          d[fieldAt + 1] = value & 0xff;
          if (!d.every((x) => x === 0)) expect(inc16).toBe(internetChecksum(d, 0, d.length));
        },
      ),
      { numRuns: 2000 },
    );
  });
});

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Keyring } from '../../src/sync/index.js';
import { ADVERT_DATAGRAM_BYTES, Role, addressBytes, decodeAdvert, encodeAdvert, newAdvert, type Advert } from '../../src/failover/index.js';

const keys = new Keyring([{ id: 3, secret: Buffer.from('fedcba9876543210fedcba9876543210') }], 3);

describe('election adverts', () => {
  it('round-trip every field, signed with the sending key id, in 60 bytes', () => {
    const a: Advert = { ...newAdvert(), priority: 200, role: Role.MASTER, groupId: 7, intervalMs: 10, sender: 0xdeadbeef, epoch: 1_763_900_000_123, seq: 0xfffffffe, address: addressBytes('192.0.2.7') };
    const buf = encodeAdvert(a, keys, Buffer.alloc(64));
    expect(buf.length).toBe(ADVERT_DATAGRAM_BYTES);
    const out = newAdvert();
    expect(decodeAdvert(Buffer.from(buf), keys, out)).toBeNull();
    expect(out).toEqual({ ...a, keyId: 3 });
  });

  it('carry addresses as 16 bytes whose order is the addresses\' order (the tie-break)', () => {
    expect(addressBytes('10.0.0.1').toString('hex')).toBe('00000000000000000000ffff0a000001');
    expect(addressBytes('fd00::1').toString('hex')).toBe('fd000000000000000000000000000001');
    expect(addressBytes('::').toString('hex')).toBe('0'.repeat(32));
    expect(Buffer.compare(addressBytes('10.0.0.2'), addressBytes('10.0.0.10'))).toBe(-1);
    expect(() => addressBytes('10.0.0')).toThrow(/not an IPv4 or IPv6/);
    expect(() => addressBytes('fd00::1::2')).toThrow(/not an IPv4 or IPv6/);
    expect(() => addressBytes('10.0.0.256')).toThrow(/not an IPv4 or IPv6/);
  });

  it('never throw and never accept a changed byte (fuzz)', () => {
    const a: Advert = { ...newAdvert(), priority: 100, role: Role.BACKUP, groupId: 1, intervalMs: 50, sender: 5, epoch: 1000, seq: 9, address: addressBytes('10.0.0.5') };
    const genuine = Buffer.from(encodeAdvert(a, keys, Buffer.alloc(64)));
    fc.assert(fc.property(fc.integer({ min: 0, max: ADVERT_DATAGRAM_BYTES - 1 }), fc.integer({ min: 1, max: 255 }), (i, x) => {
      const b = Buffer.from(genuine);
      b[i] ^= x;
      expect(decodeAdvert(b, keys, newAdvert())).not.toBeNull();
    }), { numRuns: 2000 });
    fc.assert(fc.property(fc.uint8Array({ maxLength: 80 }), (bytes) => {
      expect(typeof (decodeAdvert(Buffer.from(bytes), keys, newAdvert()) ?? 'ok')).toBe('string');
    }), { numRuns: 2000 });
  });
});

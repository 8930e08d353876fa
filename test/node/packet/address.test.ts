import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  AddressError,
  HostBitsError,
  PrefixError,
  formatAddress,
  parseAddress,
  parseCidr,
  prefixMask,
} from '../../../src/node/packet/address.js';

describe('parseAddress', () => {
  it('reads IPv4 into word 0, host order', () => {
    const a = parseAddress('192.0.2.1');
    expect(a.family).toBe(4);
    expect(Array.from(a.words)).toEqual([0xc0000201, 0, 0, 0]);
  });

  it('reads IPv6 forms: full, compressed, embedded IPv4', () => {
    expect(Array.from(parseAddress('2001:db8::1').words)).toEqual([0x20010db8, 0, 0, 1]);
    expect(Array.from(parseAddress('::').words)).toEqual([0, 0, 0, 0]);
    expect(Array.from(parseAddress('::1').words)).toEqual([0, 0, 0, 1]);
    expect(Array.from(parseAddress('fe80::').words)).toEqual([0xfe800000, 0, 0, 0]);
    expect(Array.from(parseAddress('1:2:3:4:5:6:7:8').words)).toEqual([0x10002, 0x30004, 0x50006, 0x70008]);
    expect(Array.from(parseAddress('::ffff:192.0.2.1').words)).toEqual([0, 0, 0xffff, 0xc0000201]);
    expect(parseAddress('2001:DB8::A').family).toBe(6);
  });

  it.each([
    '',
    '1.2.3',
    '1.2.3.4.5',
    '256.1.1.1',
    '01.2.3.4',
    '1.2.3.-4',
    'a.b.c.d',
    '1::2::3',
    '1:2:3:4:5:6:7:8:9',
    '1:2:3:4:5:6:7',
    '12345::',
    'fe80::1%eth0',
    ':1:2:3:4:5:6:7',
    '1:2:3:4:5:6:7::8',
    '::1.2.3',
    'hello',
  ])('refuses %j with an AddressError', (text) => {
    expect(() => parseAddress(text)).toThrow(AddressError);
    try {
      parseAddress(text);
    } catch (e) {
      expect((e as AddressError).code).toBe('ADDRESS_INVALID');
      expect((e as Error).message).toMatch(/not an IP address/);
    }
  });
});

describe('parseCidr', () => {
  it('reads prefixes of both families and bare hosts', () => {
    expect(parseCidr('10.0.0.0/8')).toMatchObject({ family: 4, prefix: 8, hostBitsMasked: false });
    expect(parseCidr('10.0.0.1').prefix).toBe(32);
    expect(parseCidr('2001:db8::/32')).toMatchObject({ family: 6, prefix: 32 });
    expect(parseCidr('::1').prefix).toBe(128);
    expect(parseCidr('0.0.0.0/0').prefix).toBe(0);
  });

  it('clears host bits like iptables-restore, and says so', () => {
    const c = parseCidr('10.1.2.3/8');
    expect(formatAddress(c.family, c.words)).toBe('10.0.0.0');
    expect(c.hostBitsMasked).toBe(true);
    const c6 = parseCidr('2001:db8:1:2::5/33');
    expect(formatAddress(6, c6.words)).toBe('2001:db8::');
  });

  it('refuses host bits in strict mode, suggesting the network', () => {
    expect(() => parseCidr('10.1.2.3/8', { strict: true })).toThrow(HostBitsError);
    expect(() => parseCidr('10.1.2.3/8', { strict: true })).toThrow(/10\.0\.0\.0\/8/);
    expect(parseCidr('10.0.0.0/8', { strict: true }).prefix).toBe(8);
  });

  it.each(['10.0.0.0/33', '::/129', '10.0.0.0/', '10.0.0.0/x', '10.0.0.0/-1', '10.0.0.0/8/8'])(
    'refuses bad prefix %j',
    (text) => {
      expect(() => parseCidr(text)).toThrow(PrefixError);
    },
  );
});

describe('prefixMask', () => {
  it('builds masks', () => {
    expect(Array.from(prefixMask(4, 24))).toEqual([0xffffff00, 0, 0, 0]);
    expect(Array.from(prefixMask(4, 0))).toEqual([0, 0, 0, 0]);
    expect(Array.from(prefixMask(4, 32))).toEqual([0xffffffff, 0, 0, 0]);
    expect(Array.from(prefixMask(6, 48))).toEqual([0xffffffff, 0xffff0000, 0, 0]);
    expect(Array.from(prefixMask(6, 128))).toEqual([0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff]);
    expect(() => prefixMask(4, 33)).toThrow(PrefixError);
  });
});

describe('formatAddress', () => {
  it('follows RFC 5952', () => {
    const f = (t: string) => formatAddress(6, parseAddress(t).words);
    expect(f('2001:0DB8:0000:0000:0000:0000:0000:0001')).toBe('2001:db8::1');
    expect(f('2001:db8:0:1:1:1:1:1')).toBe('2001:db8:0:1:1:1:1:1'); // one zero group stays
    expect(f('2001:0:0:1:0:0:0:1')).toBe('2001:0:0:1::1'); // longest run
    expect(f('2001:db8:0:0:1:0:0:1')).toBe('2001:db8::1:0:0:1'); // first on a tie
    expect(f('::')).toBe('::');
    expect(f('::1')).toBe('::1');
    expect(f('fe80::')).toBe('fe80::');
    expect(f('::ffff:c000:0201')).toBe('::ffff:192.0.2.1');
    expect(formatAddress(4, parseAddress('203.0.113.255').words)).toBe('203.0.113.255');
  });

  it('round-trips random addresses', () => {
    fc.assert(
      fc.property(fc.uint32Array({ minLength: 4, maxLength: 4 }), (w) => {
        const t = formatAddress(6, w);
        expect(Array.from(parseAddress(t).words)).toEqual(Array.from(w));
        const t4 = formatAddress(4, [w[0]]);
        expect(parseAddress(t4).words[0]).toBe(w[0]);
      }),
    );
    fc.assert(
      fc.property(fc.ipV6(), (t) => {
        const a = parseAddress(t);
        expect(Array.from(parseAddress(formatAddress(6, a.words)).words)).toEqual(Array.from(a.words));
      }),
    );
  });
});

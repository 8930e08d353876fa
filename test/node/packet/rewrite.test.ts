import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  InvalidReason,
  PacketView,
  fixIpv4HeaderChecksum,
  Proto,
  TcpFlag,
  buildIcmpEcho,
  buildIcmpError,
  buildTcp,
  buildUdp,
  computeIpv4HeaderChecksum,
  computeL4Checksum,
  formatAddress,
  parseAddress,
  refreshIpv4HeaderChecksum,
  refreshL4Checksum,
  setDestinationAddress,
  setDestinationPort,
  setIcmpEchoId,
  setSourceAddress,
  setSourcePort,
} from '../../../src/node/packet/index.js';

type Kind = 'tcp' | 'udp' | 'udp0' | 'icmp';

const words4 = fc.integer({ min: 0, max: 0xffffffff }).map((w) => Uint32Array.of(w, 0, 0, 0));
const words6 = fc.uint32Array({ minLength: 4, maxLength: 4 });

const packetArb = fc
  .record({
    family: fc.constantFrom(4, 6),
    kind: fc.constantFrom<Kind>('tcp', 'udp', 'udp0', 'icmp'),
    sport: fc.integer({ min: 0, max: 0xffff }),
    dport: fc.integer({ min: 0, max: 0xffff }),
    seq: fc.integer({ min: 0, max: 0xffffffff }),
    payload: fc.uint8Array({ maxLength: 64 }),
    a4: fc.tuple(words4, words4),
    a6: fc.tuple(words6, words6),
  })
  .map((r) => {
    const [s, d] = r.family === 4 ? r.a4 : r.a6;
    const ip = { src: { family: r.family, words: s }, dst: { family: r.family, words: d }, ttl: 9 };
    const kind = r.kind === 'udp0' && r.family === 6 ? 'udp' : r.kind;
    let pkt: Buffer;
    if (kind === 'tcp') {
      pkt = buildTcp({ ...ip, sport: r.sport, dport: r.dport, seq: r.seq, flags: TcpFlag.ACK, payload: r.payload, timestamps: { val: 1, ecr: 2 } });
    } else if (kind === 'icmp') {
      pkt = buildIcmpEcho({ ...ip, id: r.sport, seq: r.dport, payload: r.payload });
    } else {
      pkt = buildUdp({ ...ip, sport: r.sport, dport: r.dport, payload: r.payload, noChecksum: kind === 'udp0' });
    }
    return { pkt, kind, family: r.family };
  });

function strictView(): PacketView {
  const v = new PacketView();
  v.verifyIpChecksum = true;
  v.verifyL4Checksum = true;
  return v;
}

/** The same packet with every checksum recomputed from scratch. */
function fullRecompute(buf: Uint8Array): Uint8Array {
  const copy = Uint8Array.from(buf);
  const v = new PacketView();
  expect(v.parse(copy)).toBe(0);
  refreshIpv4HeaderChecksum(v);
  refreshL4Checksum(v);
  return copy;
}

describe('incremental rewrites equal a full recompute', () => {
  it('addresses, ports and echo ids on random packets (v4 and v6, TCP, UDP, ICMP)', () => {
    fc.assert(
      fc.property(
        packetArb,
        words4,
        words6,
        fc.integer({ min: 0, max: 0xffff }),
        fc.constantFrom('src', 'dst', 'sport', 'dport', 'id'),
        ({ pkt, kind, family }, n4, n6, port, what) => {
          const v = strictView();
          expect(v.parse(pkt)).toBe(0);
          const nw = family === 4 ? n4 : n6;
          let ok: boolean;
          if (what === 'src') ok = setSourceAddress(v, nw);
          else if (what === 'dst') ok = setDestinationAddress(v, nw);
          else if (what === 'sport') ok = setSourcePort(v, port);
          else if (what === 'dport') ok = setDestinationPort(v, port);
          else ok = setIcmpEchoId(v, port);
          const applicable = what === 'src' || what === 'dst' || (what === 'id' ? kind === 'icmp' : kind !== 'icmp');
          expect(ok).toBe(applicable);
          // The view follows the bytes...
          const again = strictView();
          expect(again.parse(pkt)).toBe(0);
          for (const f of ['sport', 'dport', 'icmpId'] as const) expect(v[f]).toBe(again[f]);
          expect(Array.from(v.src)).toEqual(Array.from(again.src));
          expect(Array.from(v.dst)).toEqual(Array.from(again.dst));
          if (ok && what === 'src') expect(Array.from(again.src)).toEqual(Array.from(nw));
          if (ok && what === 'dport') expect(again.dport).toBe(port);
          // ...and the checksums are byte for byte what a recompute writes.
          expect(Buffer.from(pkt).equals(Buffer.from(fullRecompute(pkt)))).toBe(true);
          if (kind === 'udp0') expect(pkt.readUInt16BE(26)).toBe(0);
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('a chain of NAT rewrites keeps the packet valid', () => {
    const pkt = buildTcp({ src: '10.0.0.5', dst: '203.0.113.80', sport: 51000, dport: 80, flags: TcpFlag.ACK, payload: 'GET / HTTP/1.1\r\n' });
    const v = strictView();
    v.parse(pkt);
    expect(setSourceAddress(v, parseAddress('198.51.100.1').words)).toBe(true);
    expect(setSourcePort(v, 61000)).toBe(true);
    expect(setDestinationAddress(v, parseAddress('10.1.1.80').words)).toBe(true);
    expect(setDestinationPort(v, 8080)).toBe(true);
    const w = strictView();
    expect(w.parse(pkt)).toBe(0);
    expect(formatAddress(4, w.src)).toBe('198.51.100.1');
    expect(formatAddress(4, w.dst)).toBe('10.1.1.80');
    expect([w.sport, w.dport]).toEqual([61000, 8080]);
    expect(computeIpv4HeaderChecksum(pkt, 0)).toBe(pkt.readUInt16BE(10));
  });

  it('refuses what does not exist: ports on ICMP, ids on TCP, anything on an invalid view', () => {
    const v = new PacketView();
    v.parse(buildIcmpEcho({ src: '::1', dst: '::2', id: 1, seq: 1 }));
    expect(setSourcePort(v, 1)).toBe(false);
    v.parse(buildTcp({ src: '::1', dst: '::2', sport: 1, dport: 2 }));
    expect(setIcmpEchoId(v, 1)).toBe(false);
    v.parse(new Uint8Array(10));
    expect(setSourceAddress(v, Uint32Array.of(1, 2, 3, 4))).toBe(false);
    v.parse(buildUdp({ src: '10.0.0.1', dst: '10.0.0.2', sport: 1, dport: 2, fragmentOffset: 8 }));
    expect(setSourcePort(v, 5)).toBe(false);
    expect(setSourceAddress(v, Uint32Array.of(5, 0, 0, 0))).toBe(true); // header only
    expect(computeIpv4HeaderChecksum(v.buffer, 0)).toBe((v.buffer[10] << 8) | v.buffer[11]);
  });
});

describe('NAT of an ICMP error and its quote', () => {
  it.each([
    [4, '10.0.0.5', '198.51.100.1', '203.0.113.80', '192.0.2.254'],
    [6, 'fd00::5', '2001:db8:1::1', '2001:db8:2::80', '2001:db8:3::fe'],
  ] as const)('IPv%i: rewriting the quote then refreshing the ICMP checksum', (family, inside, outside, server, router) => {
    // The client's packet after SNAT, then the router's error about it, sent to the outside address.
    const quoted = buildUdp({ src: outside, dst: server, sport: 61000, dport: 53, payloadLength: 30 });
    const err = buildIcmpError({ src: router, dst: outside, type: family === 4 ? 11 : 3, code: 0, quote: quoted });
    const v = strictView();
    expect(v.parse(err)).toBe(0);
    // Reverse SNAT: outer destination and the quote's source go back to the inside host.
    const inWords = parseAddress(inside).words;
    expect(setDestinationAddress(v, inWords)).toBe(true);
    expect(setSourceAddress(v.inner, inWords)).toBe(true);
    expect(setSourcePort(v.inner, 51000)).toBe(true);
    expect(refreshL4Checksum(v)).toBe(true);
    const w = strictView();
    expect(w.parse(err)).toBe(0);
    expect(formatAddress(family, w.dst)).toBe(inside);
    expect(formatAddress(family, w.inner.src)).toBe(inside);
    expect(w.inner.sport).toBe(51000);
    if (family === 4) expect(computeIpv4HeaderChecksum(err, 28)).toBe(err.readUInt16BE(28 + 10));
    // The quote's own UDP checksum was kept right, as for the original datagram.
    const original = buildUdp({ src: inside, dst: server, sport: 51000, dport: 53, payloadLength: 30 });
    const at = w.inner.l4Offset + 6;
    const origAt = family === 4 ? 26 : 46;
    expect(err.readUInt16BE(at)).toBe(original.readUInt16BE(origAt));
    expect(w.inner.proto).toBe(Proto.UDP);
  });

  it('leaves a TCP checksum cut off by the quote alone', () => {
    const quoted = buildTcp({ src: '10.0.0.1', dst: '10.0.0.2', sport: 1, dport: 2 }).subarray(0, 28);
    const v = new PacketView();
    expect(v.parse(buildIcmpError({ src: '10.0.0.3', dst: '10.0.0.1', type: 3, code: 4, quote: quoted }))).toBe(0);
    const before = Buffer.from(v.buffer);
    expect(setSourcePort(v.inner, 9)).toBe(true);
    expect(v.inner.sport).toBe(9);
    // Only the two port bytes changed: no write past the quote.
    let changed = 0;
    for (let i = 0; i < before.length; i++) if (before[i] !== v.buffer[i]) changed++;
    expect(changed).toBeLessThanOrEqual(2);
  });
});

describe('what each checksum covers', () => {
  it('ICMPv6 covers the addresses (pseudo-header); ICMPv4 does not', () => {
    const v = strictView();
    const e6 = buildIcmpEcho({ src: '2001:db8::1', dst: '2001:db8::2', id: 1, seq: 1 });
    e6[39] ^= 1; // last byte of the destination
    expect(v.parse(e6)).toBe(InvalidReason.BAD_L4_CHECKSUM);
    const e4 = buildIcmpEcho({ src: '10.0.0.1', dst: '10.0.0.2', id: 1, seq: 1 });
    e4[19] ^= 1;
    fixIpv4HeaderChecksum(e4, 0);
    expect(v.parse(e4)).toBe(0);
  });

  it('computeL4Checksum agrees with the stored checksum of built packets', () => {
    const v = new PacketView();
    for (const p of [
      buildTcp({ src: '10.0.0.1', dst: '10.0.0.2', sport: 1, dport: 2, payloadLength: 3 }),
      buildUdp({ src: '::1', dst: '::2', sport: 1, dport: 2, payloadLength: 5 }),
      buildIcmpEcho({ src: '::1', dst: '::2', id: 1, seq: 2 }),
    ]) {
      v.parse(p);
      const field = v.l4Offset + (v.proto === Proto.TCP ? 16 : v.proto === Proto.UDP ? 6 : 2);
      expect(computeL4Checksum(v)).toBe(p.readUInt16BE(field));
    }
  });
});

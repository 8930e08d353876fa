import { describe, expect, it } from 'vitest';
import {
  BuildError,
  InvalidReason,
  PacketView,
  Proto,
  TcpFlag,
  buildIcmpEcho,
  buildIcmpError,
  buildIcmpUnreachable,
  buildTcp,
  buildTcpReset,
  buildUdp,
  formatAddress,
  writeTcpInto,
} from '../../../src/node/packet/index.js';

function strictParse(buf: Uint8Array): PacketView {
  const v = new PacketView();
  v.verifyIpChecksum = true;
  v.verifyL4Checksum = true;
  v.parse(buf);
  return v;
}

const FAMILIES = [
  [4, '192.0.2.1', '198.51.100.2'],
  [6, '2001:db8::1', '2001:db8::2'],
] as const;

describe.each(FAMILIES)('buildTcpReset (IPv%i)', (family, client, server) => {
  it('answers a SYN with RST|ACK, ack = seq + 1, addresses and ports swapped', () => {
    const syn = strictParse(buildTcp({ src: client, dst: server, sport: 40000, dport: 22, seq: 1000, flags: TcpFlag.SYN }));
    const rst = strictParse(buildTcpReset(syn)!);
    expect(rst.invalid).toBe(0);
    expect(rst.family).toBe(family);
    expect(formatAddress(family, rst.src)).toBe(server);
    expect(formatAddress(family, rst.dst)).toBe(client);
    expect([rst.sport, rst.dport]).toEqual([22, 40000]);
    expect(rst.tcpFlags).toBe(TcpFlag.RST | TcpFlag.ACK);
    expect([rst.tcpSeq, rst.tcpAck, rst.payloadLength, rst.tcpWindow]).toEqual([0, 1001, 0, 0]);
  });

  it('answers a segment with ACK by RST with seq = its ack', () => {
    const seg = strictParse(
      buildTcp({ src: client, dst: server, sport: 1, dport: 2, seq: 5, ack: 0xdeadbeef, flags: TcpFlag.ACK | TcpFlag.PSH, payloadLength: 100 }),
    );
    const rst = strictParse(buildTcpReset(seg)!);
    expect([rst.tcpFlags, rst.tcpSeq, rst.tcpAck]).toEqual([TcpFlag.RST, 0xdeadbeef, 0]);
  });

  it('counts payload and FIN in the ack of an answer without ACK, wrapping at 2^32', () => {
    const seg = strictParse(
      buildTcp({ src: client, dst: server, sport: 1, dport: 2, seq: 0xfffffff0, flags: TcpFlag.FIN | TcpFlag.PSH | TcpFlag.URG, payloadLength: 20 }),
    );
    expect(seg.invalid).toBe(InvalidReason.BAD_TCP_FLAGS); // a Xmas scan: still answered, as Linux does
    const rst = strictParse(buildTcpReset(seg)!);
    expect(rst.tcpAck).toBe((0xfffffff0 + 20 + 1) >>> 0);
  });

  it('stays silent for a RST, a non-TCP packet and a later fragment', () => {
    expect(buildTcpReset(strictParse(buildTcp({ src: client, dst: server, sport: 1, dport: 2, flags: TcpFlag.RST })))).toBeNull();
    expect(buildTcpReset(strictParse(buildUdp({ src: client, dst: server, sport: 1, dport: 2 })))).toBeNull();
    if (family === 4) {
      expect(buildTcpReset(strictParse(buildTcp({ src: client, dst: server, sport: 1, dport: 2, fragmentOffset: 64 })))).toBeNull();
    }
  });
});

describe.each(FAMILIES)('buildIcmpUnreachable (IPv%i)', (family, client, server) => {
  it('quotes the offending packet, and the answer parses back to it', () => {
    const orig = buildUdp({ src: client, dst: server, sport: 5000, dport: 161, payloadLength: 50 });
    const u = strictParse(buildIcmpUnreachable(strictParse(orig), 3)!);
    expect(u.invalid).toBe(0);
    expect(u.icmpType).toBe(family === 4 ? 3 : 1);
    expect(u.icmpCode).toBe(3);
    expect(formatAddress(family, u.src)).toBe(server);
    expect(formatAddress(family, u.dst)).toBe(client);
    expect(u.payloadLength).toBe(orig.length);
    expect([u.inner.sport, u.inner.dport, u.inner.proto]).toEqual([5000, 161, Proto.UDP]);
  });

  it(`fits ${family === 4 ? 576 : 1280} bytes by cutting the quote`, () => {
    const orig = buildTcp({ src: client, dst: server, sport: 1, dport: 2, flags: TcpFlag.ACK, payloadLength: 1400 });
    const out = buildIcmpUnreachable(strictParse(orig), family === 4 ? 13 : 1)!;
    expect(out.length).toBe(family === 4 ? 576 : 1280);
    const u = strictParse(out);
    expect(u.invalid).toBe(0);
    expect(u.inner.ipLength).toBe(orig.length);
    expect(u.inner.dport).toBe(2);
  });

  it('carries the next-hop MTU when asked', () => {
    const orig = buildTcp({ src: client, dst: server, sport: 1, dport: 2, flags: TcpFlag.ACK, payloadLength: 100 });
    const out = buildIcmpUnreachable(strictParse(orig), 4, { mtu: 1400, ttl: 30 })!;
    const u = strictParse(out);
    expect(u.ttl).toBe(30);
    expect(out.readUInt32BE(u.l4Offset + 4)).toBe(1400);
  });

  it('never answers an ICMP error, a multicast destination or a later fragment', () => {
    const err = buildIcmpError({ src: server, dst: client, type: family === 4 ? 3 : 1, code: 0, quote: buildUdp({ src: client, dst: server, sport: 1, dport: 2 }) });
    expect(buildIcmpUnreachable(strictParse(err), 3)).toBeNull();
    const mc = buildUdp({ src: client, dst: family === 4 ? '224.0.0.251' : 'ff02::fb', sport: 5353, dport: 5353 });
    expect(buildIcmpUnreachable(strictParse(mc), 3)).toBeNull();
    // Echo requests are not errors: they do get an answer.
    expect(buildIcmpUnreachable(strictParse(buildIcmpEcho({ src: client, dst: server, id: 1, seq: 1 })), 3)).not.toBeNull();
  });
});

describe('builders', () => {
  it('refuse mixed families, oversize options and bad fragment offsets with BuildError', () => {
    expect(() => buildUdp({ src: '10.0.0.1', dst: '::1', sport: 1, dport: 2 })).toThrow(BuildError);
    expect(() => buildUdp({ src: '10.0.0.1', dst: '::1', sport: 1, dport: 2 })).toThrow(/one family/);
    expect(() => buildUdp({ src: '10.0.0.1', dst: '10.0.0.2', sport: 1, dport: 2, ipOptions: new Uint8Array(41) })).toThrow(BuildError);
    expect(() => buildUdp({ src: '10.0.0.1', dst: '10.0.0.2', sport: 1, dport: 2, fragmentOffset: 3 })).toThrow(BuildError);
    expect(() => buildUdp({ src: '::1', dst: '::2', sport: 1, dport: 2, noChecksum: true })).toThrow(BuildError);
    expect(() => buildTcp({ src: '::1', dst: '::2', sport: 1, dport: 2, rawOptions: new Uint8Array(40), mss: 1 })).toThrow(BuildError);
  });

  it('sets ttl, id and UDP "no checksum"', () => {
    const p = buildUdp({ src: '10.0.0.1', dst: '10.0.0.2', sport: 1, dport: 2, ttl: 3, id: 0x1234, noChecksum: true });
    expect(p.readUInt16BE(4)).toBe(0x1234);
    expect(p[8]).toBe(3);
    expect(p.readUInt16BE(26)).toBe(0);
    expect(strictParse(p).invalid).toBe(0);
  });
});

describe('writeTcpInto', () => {
  it.each(FAMILIES)('rewrites a template (IPv%i) into valid segments', (_f, a, b) => {
    const t = buildTcp({ src: a, dst: b, sport: 1, dport: 2, flags: TcpFlag.SYN, payloadLength: 64 });
    const v = new PacketView();
    v.verifyIpChecksum = v.verifyL4Checksum = true;
    for (let i = 0; i < 1000; i++) {
      const seq = (i * 2654435761) >>> 0;
      writeTcpInto(t, 0, 1024 + i, 443, seq, ~seq >>> 0, i % 2 ? TcpFlag.ACK : TcpFlag.ACK | TcpFlag.PSH);
      expect(v.parse(t)).toBe(0);
      expect([v.sport, v.dport, v.tcpSeq, v.tcpAck]).toEqual([1024 + i, 443, seq, ~seq >>> 0]);
    }
  });
});

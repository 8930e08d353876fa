import { describe, expect, it } from 'vitest';
import {
  InvalidReason,
  PacketView,
  Proto,
  TcpFlag,
  buildIcmpEcho,
  buildIcmpError,
  buildTcp,
  buildUdp,
  fixIpv4HeaderChecksum,
  formatAddress,
  invalidReasonName,
} from '../../../src/node/packet/index.js';

const V4 = { src: '192.0.2.1', dst: '198.51.100.7' };
const V6 = { src: '2001:db8::1', dst: '2001:db8:ffff::2' };

function parsed(buf: Uint8Array, setup?: (v: PacketView) => void): PacketView {
  const v = new PacketView();
  setup?.(v);
  v.parse(buf);
  return v;
}

describe.each([
  ['IPv4', V4, 4],
  ['IPv6', V6, 6],
] as const)('round trip %s', (_name, addrs, family) => {
  it('TCP SYN with every option', () => {
    const pkt = buildTcp({
      ...addrs,
      sport: 40000,
      dport: 443,
      seq: 0xfffffff0,
      ack: 0,
      flags: TcpFlag.SYN,
      window: 64240,
      mss: 1460,
      wscale: 7,
      sackPermitted: true,
      timestamps: { val: 123456, ecr: 0 },
      ttl: 61,
    });
    const v = parsed(pkt, (x) => {
      x.verifyIpChecksum = true;
      x.verifyL4Checksum = true;
    });
    expect(invalidReasonName(v.invalid)).toBe('none');
    expect(v.family).toBe(family);
    expect(v.proto).toBe(Proto.TCP);
    expect(formatAddress(v.family, v.src)).toBe(addrs.src);
    expect(formatAddress(v.family, v.dst)).toBe(addrs.dst);
    expect(v.ttl).toBe(61);
    expect([v.sport, v.dport, v.tcpSeq, v.tcpAck, v.tcpFlags, v.tcpWindow]).toEqual([
      40000, 443, 0xfffffff0, 0, TcpFlag.SYN, 64240,
    ]);
    expect([v.tcpMss, v.tcpWscale, v.tcpSackPermitted, v.tcpHasTimestamp, v.tcpTsVal, v.tcpTsEcr]).toEqual([
      1460, 7, true, true, 123456, 0,
    ]);
    expect(v.tcpHeaderLength).toBe(40);
    expect(v.payloadLength).toBe(0);
    expect(v.captureLength).toBe(pkt.length);
    expect(v.ipLength).toBe(pkt.length);
    expect(v.isFragment).toBe(false);
    expect(v.isIcmpError).toBe(false);
  });

  it('TCP data segment with SACK blocks', () => {
    const pkt = buildTcp({
      ...addrs,
      sport: 1,
      dport: 2,
      seq: 1000,
      ack: 5000,
      flags: TcpFlag.ACK | TcpFlag.PSH,
      sackBlocks: [
        [6000, 7000],
        [8000, 9000],
      ],
      payload: 'hello world',
    });
    const v = parsed(pkt, (x) => (x.verifyL4Checksum = true));
    expect(v.invalid).toBe(0);
    expect(v.tcpSackAck).toBe(9000);
    expect(v.tcpWscale).toBe(-1);
    expect(v.tcpMss).toBe(0);
    expect(v.payloadLength).toBe(11);
    expect(Buffer.from(pkt.subarray(v.payloadOffset, v.payloadOffset + v.payloadLength)).toString()).toBe(
      'hello world',
    );
  });

  it('UDP', () => {
    const pkt = buildUdp({ ...addrs, sport: 5353, dport: 53, payload: 'query' });
    const v = parsed(pkt, (x) => (x.verifyL4Checksum = true));
    expect(v.invalid).toBe(0);
    expect([v.proto, v.sport, v.dport, v.payloadLength]).toEqual([Proto.UDP, 5353, 53, 5]);
    expect(pkt.subarray(v.payloadOffset, v.payloadOffset + 5).toString()).toBe('query');
  });

  it('ICMP echo request and reply', () => {
    for (const reply of [false, true]) {
      const pkt = buildIcmpEcho({ ...addrs, id: 0xbeef, seq: 7, reply, payloadLength: 56 });
      const v = parsed(pkt, (x) => (x.verifyL4Checksum = true));
      expect(v.invalid).toBe(0);
      expect(v.proto).toBe(family === 4 ? Proto.ICMP : Proto.ICMPV6);
      expect(v.icmpType).toBe(family === 4 ? (reply ? 0 : 8) : reply ? 129 : 128);
      expect([v.icmpId, v.icmpSeq, v.isIcmpError, v.payloadLength]).toEqual([0xbeef, 7, false, 56]);
    }
  });

  it('ICMP error quoting a TCP segment, parsed into inner', () => {
    const orig = buildTcp({ ...addrs, sport: 33000, dport: 80, seq: 42, flags: TcpFlag.SYN, mss: 1400 });
    const err = buildIcmpError({
      src: family === 4 ? '203.0.113.9' : '2001:db8:9::9',
      dst: addrs.src,
      type: family === 4 ? 3 : 1,
      code: family === 4 ? 1 : 3,
      quote: orig,
    });
    const v = parsed(err, (x) => (x.verifyL4Checksum = true));
    expect(v.invalid).toBe(0);
    expect(v.isIcmpError).toBe(true);
    expect(v.inner.isQuoted).toBe(true);
    expect(v.inner.proto).toBe(Proto.TCP);
    expect([v.inner.sport, v.inner.dport, v.inner.tcpSeq, v.inner.tcpMss]).toEqual([33000, 80, 42, 1400]);
    expect(formatAddress(family, v.inner.src)).toBe(addrs.src);
  });

  it('ICMP error with a quote cut to IP header + 8 bytes (RFC 792)', () => {
    const orig = buildTcp({ ...addrs, sport: 33000, dport: 80, seq: 42, payloadLength: 500, mss: 1400 });
    const hl = family === 4 ? 20 : 40;
    const err = buildIcmpError({ src: addrs.dst, dst: addrs.src, type: family === 4 ? 11 : 3, code: 0, quote: orig.subarray(0, hl + 8) });
    const v = parsed(err);
    expect(v.invalid).toBe(0);
    expect(v.inner.ipLength).toBe(orig.length); // says more than is there
    expect([v.inner.sport, v.inner.dport, v.inner.tcpSeq]).toEqual([33000, 80, 42]);
    expect(v.inner.tcpMss).toBe(0);
  });

  it('ICMP error quoting a UDP datagram and an echo request', () => {
    const u = buildUdp({ ...addrs, sport: 1234, dport: 53, payloadLength: 40 });
    const v = parsed(buildIcmpError({ src: addrs.dst, dst: addrs.src, type: family === 4 ? 3 : 1, code: 3, quote: u }));
    expect(v.invalid).toBe(0);
    expect([v.inner.proto, v.inner.sport, v.inner.dport]).toEqual([Proto.UDP, 1234, 53]);
    const e = buildIcmpEcho({ ...addrs, id: 9, seq: 1 });
    const w = parsed(buildIcmpError({ src: addrs.dst, dst: addrs.src, type: family === 4 ? 11 : 3, code: 0, quote: e }));
    expect(w.invalid).toBe(0);
    expect([w.inner.icmpId, w.inner.icmpHasId]).toEqual([9, true]);
  });
});

describe('IPv4 specifics', () => {
  it('accepts well-formed options and trailing padding', () => {
    // NOP, router alert (RFC 2113), EOL
    const pkt = buildTcp({ ...V4, sport: 1, dport: 2, ipOptions: Uint8Array.of(1, 148, 4, 0, 0), flags: TcpFlag.ACK });
    const padded = Buffer.concat([pkt, Buffer.alloc(6)]);
    const v = parsed(padded, (x) => (x.verifyIpChecksum = x.verifyL4Checksum = true));
    expect(v.invalid).toBe(0);
    expect(v.l4Offset).toBe(28);
    expect(v.captureLength).toBe(pkt.length + 6);
    expect(v.ipLength).toBe(pkt.length);
    expect(v.payloadLength).toBe(0);
  });

  it('marks fragments; later fragments carry no transport fields', () => {
    const first = parsed(buildUdp({ ...V4, sport: 7, dport: 9, payloadLength: 100, moreFragments: true }));
    expect([first.invalid, first.isFragment, first.isLaterFragment, first.sport]).toEqual([0, true, false, 7]);
    const later = parsed(buildUdp({ ...V4, sport: 7, dport: 9, payloadLength: 100, fragmentOffset: 1480 }));
    expect([later.invalid, later.isFragment, later.isLaterFragment, later.sport, later.dport]).toEqual([
      0,
      true,
      true,
      0,
      0,
    ]);
    expect(later.payloadLength).toBe(108);
  });

  it('accepts other protocols without reading them', () => {
    const pkt = buildTcp({ ...V4, sport: 1, dport: 2 });
    pkt[9] = 47; // GRE
    fixIpv4HeaderChecksum(pkt, 0);
    const v = parsed(pkt);
    expect([v.invalid, v.proto, v.sport, v.payloadLength]).toEqual([0, 47, 0, 20]);
  });
});

describe('IPv6 extension headers', () => {
  const hbh = { type: 0, body: Uint8Array.of(5, 2, 0, 0, 1, 0) }; // router alert + PadN(0)
  const dst = { type: 60, body: Uint8Array.of(1, 4, 0, 0, 0, 0) }; // PadN(4)
  const rt = { type: 43, body: Uint8Array.of(0, 0, 0, 0, 0, 0) };
  const ah = { type: 51, body: new Uint8Array(22) };
  const frag = (offset: number, more: boolean) => ({
    type: 44,
    body: Uint8Array.of(offset >> 8, (offset & 0xf8) | (more ? 1 : 0), 0, 0, 0, 1),
  });

  it('walks hop-by-hop, destination, routing and AH to the transport header', () => {
    const pkt = buildTcp({ ...V6, sport: 10, dport: 20, flags: TcpFlag.ACK, extHeaders: [hbh, dst, rt, ah] });
    const v = parsed(pkt, (x) => (x.verifyL4Checksum = true));
    expect(v.invalid).toBe(0);
    expect([v.proto, v.sport, v.dport]).toEqual([Proto.TCP, 10, 20]);
    expect(v.l4Offset).toBe(40 + 8 + 8 + 8 + 24);
  });

  it('marks fragments from the fragment header', () => {
    const first = parsed(buildUdp({ ...V6, sport: 1, dport: 2, payloadLength: 20, extHeaders: [frag(0, true)] }));
    expect([first.invalid, first.isFragment, first.isLaterFragment, first.sport]).toEqual([0, true, false, 1]);
    const atomic = parsed(buildUdp({ ...V6, sport: 1, dport: 2, extHeaders: [frag(0, false)] }));
    expect([atomic.invalid, atomic.isFragment]).toEqual([0, true]);
    const later = parsed(buildUdp({ ...V6, sport: 1, dport: 2, payloadLength: 20, extHeaders: [frag(1448, false)] }));
    expect([later.invalid, later.isLaterFragment, later.proto, later.sport]).toEqual([0, true, Proto.UDP, 0]);
  });

  it('stops at ESP and no-next-header with that protocol', () => {
    for (const p of [50, 59]) {
      const pkt = buildUdp({ ...V6, sport: 1, dport: 2, payloadLength: 8 });
      pkt[6] = p;
      const v = parsed(pkt);
      expect([v.invalid, v.proto, v.l4Offset, v.sport]).toEqual([0, p, 40, 0]);
    }
  });
});

describe('invalid reasons', () => {
  const tcp4 = () => buildTcp({ ...V4, sport: 1, dport: 2, flags: TcpFlag.ACK, payloadLength: 10 });
  const cases: Array<[string, () => Uint8Array, number, ((v: PacketView) => void)?]> = [
    ['empty', () => new Uint8Array(0), InvalidReason.TRUNCATED],
    ['short IPv4 header', () => tcp4().subarray(0, 19), InvalidReason.TRUNCATED],
    ['short IPv6 header', () => buildUdp({ ...V6, sport: 1, dport: 2 }).subarray(0, 39), InvalidReason.TRUNCATED],
    ['version 5', () => Uint8Array.of(0x55, 0, 0, 20), InvalidReason.BAD_VERSION],
    [
      'IHL 4',
      () => {
        const p = tcp4();
        p[0] = 0x44;
        return p;
      },
      InvalidReason.BAD_IHL,
    ],
    [
      'IHL past the packet',
      () => tcp4().subarray(0, 20).map((x, i) => (i === 0 ? 0x4f : x)),
      InvalidReason.BAD_IHL,
    ],
    ['total length beyond the bytes', () => tcp4().subarray(0, 45), InvalidReason.BAD_LENGTH],
    [
      'total length below the header',
      () => {
        const p = tcp4();
        p[2] = 0;
        p[3] = 10;
        return p;
      },
      InvalidReason.BAD_LENGTH,
    ],
    ['IPv6 payload length beyond the bytes', () => buildUdp({ ...V6, sport: 1, dport: 2, payloadLength: 4 }).subarray(0, 50), InvalidReason.BAD_LENGTH],
    [
      'IPv4 header checksum (when verified)',
      () => {
        const p = tcp4();
        p[10] ^= 1;
        return p;
      },
      InvalidReason.BAD_IP_CHECKSUM,
      (v) => (v.verifyIpChecksum = true),
    ],
    ['IPv4 option of length 1', () => buildTcp({ ...V4, sport: 1, dport: 2, flags: TcpFlag.ACK, ipOptions: Uint8Array.of(7, 1, 0, 0) }), InvalidReason.BAD_OPTIONS],
    ['IPv4 option past the header', () => buildTcp({ ...V4, sport: 1, dport: 2, flags: TcpFlag.ACK, ipOptions: Uint8Array.of(1, 7, 11, 0) }), InvalidReason.BAD_OPTIONS],
    ['IPv6 hop-by-hop not first', () => buildUdp({ ...V6, sport: 1, dport: 2, extHeaders: [{ type: 60, body: new Uint8Array(6) }, { type: 0, body: new Uint8Array(6) }] }), InvalidReason.BAD_OPTIONS],
    ['IPv6 bad TLV in destination options', () => buildUdp({ ...V6, sport: 1, dport: 2, extHeaders: [{ type: 60, body: Uint8Array.of(1, 9, 0, 0, 0, 0) }] }), InvalidReason.BAD_OPTIONS],
    [
      'IPv6 extension header past the payload',
      () => {
        const p = buildUdp({ ...V6, sport: 1, dport: 2, extHeaders: [{ type: 43, body: new Uint8Array(6) }] });
        p[41] = 5;
        return p;
      },
      InvalidReason.BAD_OPTIONS,
    ],
    ['two IPv6 fragment headers', () => buildUdp({ ...V6, sport: 1, dport: 2, extHeaders: [{ type: 44, body: new Uint8Array(6) }, { type: 44, body: new Uint8Array(6) }] }), InvalidReason.BAD_OPTIONS],
    [
      'TCP data offset 4',
      () => {
        const p = tcp4();
        p[32] = 0x40;
        return p;
      },
      InvalidReason.BAD_TCP_HEADER,
    ],
    [
      'TCP data offset past the segment',
      () => {
        const p = tcp4();
        p[32] = 0xf0;
        return p;
      },
      InvalidReason.BAD_TCP_HEADER,
    ],
    ['TCP header cut by IP length', () => buildTcp({ ...V4, sport: 1, dport: 2, flags: TcpFlag.ACK }).subarray(0, 30).map((x, i) => (i === 3 ? 30 : x)), InvalidReason.TRUNCATED],
    ['TCP option of length 0', () => buildTcp({ ...V4, sport: 1, dport: 2, flags: TcpFlag.ACK, rawOptions: Uint8Array.of(1, 30, 0, 0) }), InvalidReason.BAD_TCP_OPTIONS],
    ['TCP option past the header', () => buildTcp({ ...V4, sport: 1, dport: 2, flags: TcpFlag.ACK, rawOptions: Uint8Array.of(8, 10, 0, 0) }), InvalidReason.BAD_TCP_OPTIONS],
    ['TCP SYN|FIN', () => buildTcp({ ...V4, sport: 1, dport: 2, flags: TcpFlag.SYN | TcpFlag.FIN }), InvalidReason.BAD_TCP_FLAGS],
    ['TCP no flags (null scan)', () => buildTcp({ ...V4, sport: 1, dport: 2, flags: 0 }), InvalidReason.BAD_TCP_FLAGS],
    ['TCP FIN|PSH|URG (xmas)', () => buildTcp({ ...V6, sport: 1, dport: 2, flags: TcpFlag.FIN | TcpFlag.PSH | TcpFlag.URG }), InvalidReason.BAD_TCP_FLAGS],
    ['UDP length below 8', () => buildUdp({ ...V4, sport: 1, dport: 2, payloadLength: 4 }).map((x, i) => (i === 25 ? 7 : x)), InvalidReason.BAD_UDP_LENGTH],
    ['UDP length past the datagram', () => buildUdp({ ...V6, sport: 1, dport: 2, payloadLength: 4 }).map((x, i) => (i === 45 ? 13 : x)), InvalidReason.BAD_UDP_LENGTH],
    [
      'TCP checksum (when verified)',
      () => {
        const p = tcp4();
        p[p.length - 1] ^= 0x10;
        return p;
      },
      InvalidReason.BAD_L4_CHECKSUM,
      (v) => (v.verifyL4Checksum = true),
    ],
    [
      'UDP checksum 0 on IPv6 (when verified)',
      () => buildUdp({ ...V6, sport: 1, dport: 2 }).map((x, i) => (i === 46 || i === 47 ? 0 : x)),
      InvalidReason.BAD_L4_CHECKSUM,
      (v) => (v.verifyL4Checksum = true),
    ],
    ['ICMP error quoting an ICMP error', () => buildIcmpError({ ...V4, type: 3, code: 1, quote: buildIcmpError({ ...V4, type: 11, code: 0, quote: tcp4() }) }), InvalidReason.BAD_ICMP_INNER],
    ['ICMPv6 error quoting garbage', () => buildIcmpError({ ...V6, type: 1, code: 0, quote: new Uint8Array(30) }), InvalidReason.BAD_ICMP_INNER],
    ['ICMP error quoting IPv6', () => buildIcmpError({ ...V4, type: 3, code: 0, quote: buildUdp({ ...V6, sport: 1, dport: 2 }) }), InvalidReason.BAD_ICMP_INNER],
    ['ICMP error quote with 4 bytes of TCP', () => buildIcmpError({ ...V4, type: 3, code: 0, quote: tcp4().subarray(0, 24) }), InvalidReason.BAD_ICMP_INNER],
    ['ICMP header of 4 bytes', () => buildIcmpEcho({ ...V4, id: 1, seq: 1 }).subarray(0, 24).map((x, i) => (i === 3 ? 24 : x)), InvalidReason.TRUNCATED],
  ];

  it.each(cases)('%s', (_name, make, reason, setup) => {
    const v = parsed(make(), setup);
    expect(invalidReasonName(v.invalid)).toBe(invalidReasonName(reason));
  });

  it('accepts every flag combination tcp_valid_flags accepts, with PSH/ECE/CWR ignored', () => {
    const { FIN, SYN, RST, PSH, ACK, URG, ECE, CWR } = TcpFlag;
    const valid = new Set([SYN, SYN | URG, SYN | ACK, RST, RST | ACK, FIN | ACK, FIN | ACK | URG, ACK, ACK | URG]);
    for (let f = 0; f < 256; f++) {
      const v = parsed(buildTcp({ ...V4, sport: 1, dport: 2, flags: f }));
      const expectValid = valid.has(f & ~(PSH | ECE | CWR));
      expect(v.invalid === 0, `flags 0x${f.toString(16)}`).toBe(expectValid);
      if (!expectValid) expect(v.invalid).toBe(InvalidReason.BAD_TCP_FLAGS);
    }
  });

  it('clamps the window scale shift to 14 like Linux', () => {
    expect(parsed(buildTcp({ ...V4, sport: 1, dport: 2, wscale: 15 })).tcpWscale).toBe(14);
    expect(parsed(buildTcp({ ...V4, sport: 1, dport: 2, wscale: 0 })).tcpWscale).toBe(0);
  });
});

describe('reuse', () => {
  it('resets fields that do not apply to the next packet', () => {
    const v = new PacketView();
    v.parse(buildTcp({ ...V6, sport: 1, dport: 2, mss: 1000, wscale: 3, timestamps: { val: 1, ecr: 2 } }));
    v.parse(buildUdp({ ...V4, sport: 5, dport: 6 }));
    expect(v.invalid).toBe(0);
    expect([v.tcpMss, v.tcpWscale, v.tcpHasTimestamp, v.tcpFlags, v.tcpSeq]).toEqual([0, -1, false, 0, 0]);
    expect(Array.from(v.src.subarray(1))).toEqual([0, 0, 0]);
    v.parse(new Uint8Array(3));
    expect([v.invalid, v.family, v.sport]).toEqual([InvalidReason.BAD_VERSION, 0, 0]);
  });

  it('keeps one inner view across 1e5 parses and never reallocates its words', () => {
    const v = new PacketView();
    const err = buildIcmpError({ ...V4, type: 3, code: 3, quote: buildUdp({ ...V4, sport: 9, dport: 53 }) });
    const other = buildTcp({ ...V4, sport: 1, dport: 2, flags: TcpFlag.ACK });
    v.parse(err);
    const inner = v.inner;
    const src = v.src;
    const innerSrc = inner.src;
    for (let i = 0; i < 100_000; i++) {
      v.parse(i % 2 ? err : other);
    }
    v.parse(err);
    expect(v.inner).toBe(inner);
    expect(v.src).toBe(src);
    expect(v.inner.src).toBe(innerSrc);
    expect(v.inner.dport).toBe(53);
  });

  it('parses at an offset within a larger buffer', () => {
    const pkt = buildUdp({ ...V4, sport: 7, dport: 8, payload: 'x' });
    const big = Buffer.concat([Buffer.alloc(14, 0xaa), pkt, Buffer.alloc(10, 0xbb)]);
    const v = new PacketView();
    v.verifyL4Checksum = v.verifyIpChecksum = true;
    expect(v.parse(big, 14, pkt.length)).toBe(0);
    expect([v.l3Offset, v.l4Offset, v.payloadOffset, v.sport]).toEqual([14, 34, 42, 7]);
    expect(v.parse(big, 14)).toBe(0); // trailing bytes are padding
    expect(v.parse(big, 14, 20)).toBe(InvalidReason.BAD_LENGTH);
    expect(v.parse(big, -5, 1e9)).toBe(InvalidReason.BAD_VERSION);
    expect(v.parse(big, 1e9)).toBe(InvalidReason.TRUNCATED);
  });
});

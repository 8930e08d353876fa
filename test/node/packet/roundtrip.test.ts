import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  InvalidReason,
  PacketView,
  Proto,
  TcpFlag,
  buildTcp,
  buildUdp,
  parseAddress,
} from '../../../src/node/packet/index.js';

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u16 = fc.integer({ min: 0, max: 0xffff });
const validFlags = fc.constantFrom(
  TcpFlag.SYN,
  TcpFlag.SYN | TcpFlag.ACK,
  TcpFlag.ACK,
  TcpFlag.ACK | TcpFlag.PSH,
  TcpFlag.FIN | TcpFlag.ACK,
  TcpFlag.RST,
  TcpFlag.RST | TcpFlag.ACK,
  TcpFlag.ACK | TcpFlag.URG | TcpFlag.ECE | TcpFlag.CWR,
);
const addrPair = fc.oneof(
  fc.tuple(fc.ipV4(), fc.ipV4()),
  fc.tuple(fc.ipV6(), fc.ipV6()),
);

describe('build -> parse round trip on random segments', () => {
  it('TCP: every field and option comes back', () => {
    fc.assert(
      fc.property(
        fc.record({
          addrs: addrPair,
          sport: u16,
          dport: u16,
          seq: u32,
          ack: u32,
          flags: validFlags,
          window: u16,
          ttl: fc.integer({ min: 1, max: 255 }),
          mss: fc.option(u16, { nil: undefined }),
          wscale: fc.option(fc.integer({ min: 0, max: 255 }), { nil: undefined }),
          sackPermitted: fc.boolean(),
          timestamps: fc.option(fc.record({ val: u32, ecr: u32 }), { nil: undefined }),
          payloadLength: fc.integer({ min: 0, max: 1400 }),
        }),
        (r) => {
          const [src, dst] = r.addrs;
          const pkt = buildTcp({ ...r, src, dst });
          const v = new PacketView();
          v.verifyIpChecksum = v.verifyL4Checksum = true;
          expect(v.parse(pkt)).toBe(InvalidReason.NONE);
          expect(v.proto).toBe(Proto.TCP);
          expect(Array.from(v.src)).toEqual(Array.from(parseAddress(src).words));
          expect(Array.from(v.dst)).toEqual(Array.from(parseAddress(dst).words));
          expect([v.sport, v.dport, v.tcpSeq, v.tcpAck, v.tcpFlags, v.tcpWindow, v.ttl]).toEqual([
            r.sport, r.dport, r.seq, r.ack, r.flags, r.window, r.ttl,
          ]);
          expect(v.tcpMss).toBe(r.mss ?? 0);
          expect(v.tcpWscale).toBe(r.wscale === undefined ? -1 : Math.min(14, r.wscale));
          expect(v.tcpSackPermitted).toBe(r.sackPermitted);
          expect(v.tcpHasTimestamp).toBe(r.timestamps !== undefined);
          expect([v.tcpTsVal, v.tcpTsEcr]).toEqual(r.timestamps ? [r.timestamps.val, r.timestamps.ecr] : [0, 0]);
          expect(v.payloadLength).toBe(r.payloadLength);
          expect(v.payloadOffset + v.payloadLength).toBe(pkt.length);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('UDP: ports and payload come back', () => {
    fc.assert(
      fc.property(addrPair, u16, u16, fc.uint8Array({ maxLength: 300 }), ([src, dst], sport, dport, payload) => {
        const pkt = buildUdp({ src, dst, sport, dport, payload });
        const v = new PacketView();
        v.verifyIpChecksum = v.verifyL4Checksum = true;
        expect(v.parse(pkt)).toBe(0);
        expect([v.sport, v.dport, v.payloadLength]).toEqual([sport, dport, payload.length]);
        expect(Buffer.from(pkt.subarray(v.payloadOffset, v.payloadOffset + v.payloadLength)).equals(Buffer.from(payload))).toBe(true);
      }),
      { numRuns: 500 },
    );
  });
});

describe('IPv6 chain limits', () => {
  it('gives up after 16 extension headers with BAD_OPTIONS', () => {
    const hdr = { type: 60, body: Uint8Array.of(1, 4, 0, 0, 0, 0) };
    const ok = buildUdp({ src: '::1', dst: '::2', sport: 1, dport: 2, extHeaders: Array(16).fill(hdr) });
    expect(new PacketView().parse(ok)).toBe(0);
    const tooMany = buildUdp({ src: '::1', dst: '::2', sport: 1, dport: 2, extHeaders: Array(17).fill(hdr) });
    expect(new PacketView().parse(tooMany)).toBe(InvalidReason.BAD_OPTIONS);
  });
});

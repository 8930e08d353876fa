import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { canRewrite4, rewrite4 } from '../../../src/node/nat/rewrite4.js';
import { buildTcp, buildUdp } from '../../../src/node/packet/build.js';
import { PacketView } from '../../../src/node/packet/view.js';
import { setDestinationAddress, setDestinationPort, setSourceAddress, setSourcePort } from '../../../src/node/packet/rewrite.js';
import { formatAddress } from '../../../src/node/packet/address.js';

/** The fused rewrite gives the same bytes as packet/rewrite.ts field by field (the reference). */
describe('rewrite4', () => {
  it('matches the field-by-field rewrite on TCP and UDP, checksums valid', () => {
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.boolean(),
        fc.boolean(),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: 0, max: 65535 }),
        fc.integer({ min: 1, max: 65535 }),
        fc.integer({ min: 0, max: 40 }),
        (tcp, side, noCk, addr, port, sport, len) => {
          const o = { src: '10.0.0.5', dst: '203.0.113.7', sport, dport: 53, payloadLength: len };
          const pkt = tcp ? buildTcp({ ...o, flags: 2 }) : buildUdp({ ...o, noChecksum: noCk });
          const ref = Buffer.from(pkt);
          const a = new PacketView();
          const r = new PacketView();
          a.parse(pkt);
          r.parse(ref);
          expect(canRewrite4(a)).toBe(true);
          rewrite4(a, side ? 1 : 0, addr, port);
          const words = [addr, 0, 0, 0];
          if (side) {
            setDestinationAddress(r, words);
            setDestinationPort(r, port);
          } else {
            setSourceAddress(r, words);
            setSourcePort(r, port);
          }
          expect(pkt.equals(ref)).toBe(true);
          expect([formatAddress(4, a.src), a.sport, formatAddress(4, a.dst), a.dport]).toEqual([
            formatAddress(4, r.src),
            r.sport,
            formatAddress(4, r.dst),
            r.dport,
          ]);
          const check = new PacketView();
          check.verifyIpChecksum = true;
          check.verifyL4Checksum = true;
          expect(check.parse(pkt)).toBe(0);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('is not for quotes, IPv6 or ICMP', () => {
    const v = new PacketView();
    v.parse(buildUdp({ src: 'fd00::1', dst: 'fd00::2', sport: 1, dport: 2 }));
    expect(canRewrite4(v)).toBe(false);
  });
});

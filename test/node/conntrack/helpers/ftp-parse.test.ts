import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { FtpAnnouncement, FtpKind, FtpRefusal, parseFtpLine } from '../../../../src/node/conntrack/helpers/ftp-parse.js';
import { formatAddress } from '../../../../src/node/packet/address.js';

const enc = (s: string) => Buffer.from(s, 'latin1');

function parse(s: string, fromClient: boolean) {
  const a = new FtpAnnouncement();
  const b = enc(s);
  const why = parseFtpLine(b, 0, b.length, fromClient, a);
  return { why, kind: a.kind, family: a.family, addr: a.family ? formatAddress(a.family, a.addr) : '', port: a.port, text: b.subarray(a.textStart, a.textEnd).toString('latin1') };
}

describe('FTP announcements', () => {
  it('reads PORT and EPRT from the client, any case', () => {
    expect(parse('PORT 10,50,1,10,200,21', true)).toMatchObject({ why: 0, kind: FtpKind.PORT, family: 4, addr: '10.50.1.10', port: 200 * 256 + 21, text: '10,50,1,10,200,21' });
    expect(parse('port 192,0,2,7,4,1', true)).toMatchObject({ why: 0, kind: FtpKind.PORT, addr: '192.0.2.7', port: 1025 });
    expect(parse('EPRT |1|132.235.1.2|6275|', true)).toMatchObject({ why: 0, kind: FtpKind.EPRT, family: 4, addr: '132.235.1.2', port: 6275, text: '132.235.1.2|6275' });
    expect(parse('EPRT |2|1080::8:800:200C:417A|5282|', true)).toMatchObject({ why: 0, kind: FtpKind.EPRT, family: 6, addr: '1080::8:800:200c:417a', port: 5282 });
    expect(parse('eprt !2!fd00:50:1::10!40000!', true)).toMatchObject({ why: 0, family: 6, addr: 'fd00:50:1::10', port: 40000 });
  });

  it('reads 227 and 229 replies from the server', () => {
    expect(parse('227 Entering Passive Mode (10,50,2,10,117,49).', false)).toMatchObject({ why: 0, kind: FtpKind.PASV, addr: '10.50.2.10', port: 117 * 256 + 49, text: '10,50,2,10,117,49' });
    // RFC 1123 4.1.2.6: the numbers may come without parentheses.
    expect(parse('227 =10,50,2,10,4,0', false)).toMatchObject({ why: 0, kind: FtpKind.PASV, port: 1024 });
    expect(parse('229 Entering Extended Passive Mode (|||6446|)', false)).toMatchObject({ why: 0, kind: FtpKind.EPSV, family: 0, port: 6446, text: '6446' });
  });

  it('ignores other lines, and the commands in the wrong direction', () => {
    for (const s of ['USER anonymous', 'PASV', 'EPSV', 'RETR file', '230 Login successful.', '200 PORT command successful.', '', 'PORTX 1,2,3,4,5,6', '2270 x']) {
      expect(parse(s, true).kind).toBe(FtpKind.NONE);
      expect(parse(s, false).kind).toBe(FtpKind.NONE);
    }
    expect(parse('227 Entering Passive Mode (10,50,2,10,117,49)', true).kind).toBe(FtpKind.NONE);
    expect(parse('PORT 10,50,1,10,200,21', false).kind).toBe(FtpKind.NONE);
  });

  it('refuses bad numbers, ports out of range, bad addresses and broken syntax', () => {
    expect(parse('PORT 10,50,1,256,4,1', true).why).toBe(FtpRefusal.BAD_NUMBER);
    expect(parse('PORT 10,50,1,1000,4,1', true).why).toBe(FtpRefusal.BAD_NUMBER);
    expect(parse('PORT 10,50,1,10,4x,1', true).why).toBe(FtpRefusal.BAD_NUMBER);
    expect(parse('PORT 10,50,1,10,4', true).why).toBe(FtpRefusal.SYNTAX);
    expect(parse('PORT 10,50,1,10,,4', true).why).toBe(FtpRefusal.SYNTAX);
    expect(parse('PORT ', true).why).toBe(FtpRefusal.SYNTAX);
    expect(parse('PORT 10,50,1,10,0,21', true).why).toBe(FtpRefusal.BAD_PORT);
    expect(parse('PORT 10,50,1,10,0,0', true).why).toBe(FtpRefusal.BAD_PORT);
    expect(parse('EPRT |1|10.50.1.10|70000|', true).why).toBe(FtpRefusal.BAD_PORT);
    expect(parse('EPRT |1|10.50.1.10|0|', true).why).toBe(FtpRefusal.BAD_PORT);
    expect(parse('EPRT |1|10.50.1.10|999999|', true).why).toBe(FtpRefusal.BAD_NUMBER);
    expect(parse('EPRT |3|10.50.1.10|5000|', true).why).toBe(FtpRefusal.BAD_ADDRESS);
    expect(parse('EPRT |1|fd00::1|5000|', true).why).toBe(FtpRefusal.BAD_ADDRESS);
    expect(parse('EPRT |2|10.50.1.10|5000|', true).why).toBe(FtpRefusal.BAD_ADDRESS);
    expect(parse('EPRT |1|10.50.1|5000|', true).why).toBe(FtpRefusal.BAD_ADDRESS);
    expect(parse('EPRT |1|10.50.1.10|5000', true).why).toBe(FtpRefusal.SYNTAX);
    expect(parse('EPRT |1|10.50.1.10', true).why).toBe(FtpRefusal.SYNTAX);
    expect(parse('227 Entering Passive Mode', false).why).toBe(FtpRefusal.SYNTAX);
    expect(parse('227 Entering Passive Mode (10,50,2,10,300,1)', false).why).toBe(FtpRefusal.BAD_NUMBER);
    expect(parse('229 Entering Extended Passive Mode (|||0|)', false).why).toBe(FtpRefusal.BAD_PORT);
    expect(parse('229 Entering Extended Passive Mode (||6446|)', false).why).toBe(FtpRefusal.SYNTAX);
    expect(parse('229 Entering Extended Passive Mode', false).why).toBe(FtpRefusal.SYNTAX);
  });

  it('property: every PORT / 227 with valid numbers reads back its address and port', () => {
    const byte = fc.integer({ min: 0, max: 255 });
    fc.assert(
      fc.property(fc.tuple(byte, byte, byte, byte), fc.integer({ min: 1024, max: 65535 }), fc.boolean(), (h, port, client) => {
        const nums = [...h, port >> 8, port & 255].join(',');
        const r = parse(client ? `PORT ${nums}` : `227 Entering Passive Mode (${nums})`, client);
        expect(r).toMatchObject({ why: 0, addr: h.join('.'), port, text: nums });
      }),
    );
  });

  it('property: any bytes, either direction, give a known result and never throw', () => {
    const prefix = fc.constantFrom('PORT ', 'EPRT ', '227 ', '229 ', 'port ', '227 (', '229 (|||', 'EPRT |2|', 'EPRT |1|', '');
    fc.assert(
      fc.property(prefix, fc.uint8Array({ maxLength: 80 }), fc.boolean(), (p, tail, client) => {
        const b = Buffer.concat([enc(p), tail]);
        const a = new FtpAnnouncement();
        const why = parseFtpLine(b, 0, b.length, client, a);
        expect(why).toBeGreaterThanOrEqual(0);
        expect(why).toBeLessThanOrEqual(FtpRefusal.FAMILY);
        if (why === 0 && a.kind !== FtpKind.NONE) {
          expect(a.port).toBeGreaterThanOrEqual(1024);
          expect(a.port).toBeLessThanOrEqual(65535);
          expect(a.textStart).toBeLessThanOrEqual(a.textEnd);
          expect(a.textEnd).toBeLessThanOrEqual(b.length);
        }
      }),
      { numRuns: 5000 },
    );
  });
});

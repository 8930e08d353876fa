/**
 * The FTP helper through the engine: a control connection to port 21 with the helper attached by
 * a raw-chain rule, a ruleset that lets through only port 21 and ESTABLISHED,RELATED, and data
 * connections announced in either mode. Packets built with real headers (buildTcp).
 */
import { describe, expect, it } from 'vitest';
import { Engine, EngineResult } from '../../../../src/node/engine/engine.js';
import { compileRuleset, parseRuleset, RulesetError, Verdict } from '../../../../src/node/filter/index.js';
import { buildTcp } from '../../../../src/node/packet/build.js';
import { TcpFlag } from '../../../../src/node/packet/fields.js';
import { CtState } from '../../../../src/node/conntrack/state.js';
import { FtpRefusal } from '../../../../src/node/conntrack/helpers/index.js';

const { SYN, ACK, PSH, FIN } = TcpFlag;
const IN = 2;
const OUT = 3;
const names: Record<number, string> = { [IN]: 'inside0', [OUT]: 'outside0' };
const C = '10.1.0.5';
const S = '10.2.0.9';
const C6 = 'fd00:1::5';
const S6 = 'fd00:2::9';

const rules = (helper: boolean) => `
chains:
  raw:
    policy: accept
    rules:${helper ? `
      - match: { proto: tcp, dport: 21 }
        target: { helper: ftp }` : ' []'}
  forward:
    policy: drop
    rules:
      - match: { ctstate: [ESTABLISHED, RELATED] }
        target: ACCEPT
      - match: { in: inside0, proto: tcp, dport: 21, ctstate: NEW }
        target: { connmark: { set: 9 } }
      - match: { in: inside0, proto: tcp, dport: 21, ctstate: NEW }
        target: ACCEPT
`;

function ftpPair(helper = true, client = C, server = S) {
  let now = 1_000_000;
  const engine = new Engine({
    conntrack: { maxEntries: 1000 },
    ruleset: compileRuleset(parseRuleset(rules(helper)), { interfaceName: (i: number) => names[i] }),
    clock: () => now,
  });
  const out = new EngineResult();
  const seq = [1000, 50000];
  const pass = (pkt: Buffer, inIf: number) => {
    now += 1;
    engine.process(pkt, 0, pkt.length, { inIf, outIf: inIf === IN ? OUT : IN, mark: 0, now }, out);
    return out;
  };
  /** Open the control connection (client port 40000 -> 21). */
  const open = () => {
    expect(pass(buildTcp({ src: client, dst: server, sport: 40000, dport: 21, flags: SYN, seq: seq[0]++ }), IN).verdict).toBe(Verdict.ACCEPT);
    expect(pass(buildTcp({ src: server, dst: client, sport: 21, dport: 40000, flags: SYN | ACK, seq: seq[1]++, ack: seq[0] }), OUT).verdict).toBe(Verdict.ACCEPT);
    expect(pass(buildTcp({ src: client, dst: server, sport: 40000, dport: 21, flags: ACK, seq: seq[0], ack: seq[1] }), IN).verdict).toBe(Verdict.ACCEPT);
  };
  /** A control segment from the client (dir 0) or the server (dir 1). */
  const say = (dir: 0 | 1, text: string) => {
    const payload = Buffer.from(text, 'latin1');
    const p = dir === 0
      ? buildTcp({ src: client, dst: server, sport: 40000, dport: 21, flags: ACK | PSH, seq: seq[0], ack: seq[1], payload })
      : buildTcp({ src: server, dst: client, sport: 21, dport: 40000, flags: ACK | PSH, seq: seq[1], ack: seq[0], payload });
    seq[dir] += payload.length;
    const r = pass(p, dir === 0 ? IN : OUT);
    expect(r.verdict).toBe(Verdict.ACCEPT);
  };
  /** A bare ACK from the client of everything the server sent. */
  const ack = () => {
    expect(pass(buildTcp({ src: client, dst: server, sport: 40000, dport: 21, flags: ACK, seq: seq[0], ack: seq[1] }), IN).verdict).toBe(Verdict.ACCEPT);
  };
  /** A data connection's SYN: from `src`:sport to `dst`:dport, arriving on `inIf`. */
  const dataSyn = (src: string, sport: number, dst: string, dport: number, inIf: number) => {
    const r = pass(buildTcp({ src, dst, sport, dport, flags: SYN, seq: 7 }), inIf);
    return { verdict: r.verdict, state: r.ctState, slot: r.slot };
  };
  return { engine, open, say, ack, dataSyn, pass, advance: (ms: number) => (now += ms) };
}

describe('FTP helper', () => {
  it('passive (227): the data connection to the announced port is RELATED and passes; without the helper it is dropped', () => {
    for (const helper of [true, false]) {
      const f = ftpPair(helper);
      f.open();
      f.say(0, 'PASV\r\n');
      f.say(1, '227 Entering Passive Mode (10,2,0,9,117,49).\r\n');
      const d = f.dataSyn(C, 40001, S, 117 * 256 + 49, IN);
      expect(d.verdict).toBe(helper ? Verdict.ACCEPT : Verdict.DROP);
      if (!helper) continue;
      expect(d.state).toBe(CtState.RELATED);
      const t = f.engine.conntrack.table;
      // Inherits the control connection's connmark; knows its master; the expectation is used up.
      expect(t.markOf(d.slot)).toBe(9);
      expect(t.master[d.slot]).toBeGreaterThanOrEqual(0);
      expect(f.engine.conntrack.expectations.count).toBe(0);
      expect(f.engine.helpers.ftp.expected).toBe(1);
      // A second connection to the same port is not expected any more.
      expect(f.dataSyn(C, 40002, S, 117 * 256 + 49, IN).verdict).toBe(Verdict.DROP);
    }
  });

  it('active (PORT, EPRT): the server\'s connection back to the client is RELATED; several outstanding at once', () => {
    const f = ftpPair();
    f.open();
    f.say(0, 'PORT 10,1,0,5,156,65\r\n');
    f.say(1, '200 PORT command successful.\r\n');
    f.say(0, 'EPRT |1|10.1.0.5|40100|\r\n');
    expect(f.engine.conntrack.expectations.count).toBe(2);
    const b = f.dataSyn(S, 20, C, 40100, OUT);
    expect([b.verdict, b.state]).toEqual([Verdict.ACCEPT, CtState.RELATED]);
    const a = f.dataSyn(S, 20, C, 156 * 256 + 65, OUT);
    expect([a.verdict, a.state]).toEqual([Verdict.ACCEPT, CtState.RELATED]);
    // Only the server may open it: the same port from another host is not expected.
    f.say(0, 'PORT 10,1,0,5,156,66\r\n');
    expect(f.dataSyn('10.2.0.77', 20, C, 156 * 256 + 66, OUT).verdict).toBe(Verdict.DROP);
  });

  it('IPv6: EPSV and EPRT', () => {
    const f = ftpPair(true, C6, S6);
    f.open();
    f.say(1, '229 Entering Extended Passive Mode (|||50001|)\r\n');
    expect(f.dataSyn(C6, 40001, S6, 50001, IN)).toMatchObject({ verdict: Verdict.ACCEPT, state: CtState.RELATED });
    f.say(0, 'EPRT |2|fd00:1::5|50002|\r\n');
    expect(f.dataSyn(S6, 20, C6, 50002, OUT)).toMatchObject({ verdict: Verdict.ACCEPT, state: CtState.RELATED });
    f.say(0, 'EPRT |1|10.1.0.5|50003|\r\n');
    expect(f.engine.helpers.ftp.refused[FtpRefusal.FAMILY]).toBe(1);
  });

  it('a command split across segments is read whole', () => {
    const f = ftpPair();
    f.open();
    f.say(1, '227 Entering Pass');
    f.say(1, 'ive Mode (10,2,0,');
    f.say(1, '9,117,50)\r\n');
    expect(f.dataSyn(C, 40001, S, 117 * 256 + 50, IN).verdict).toBe(Verdict.ACCEPT);
  });

  it('malformed or hostile announcements create nothing, are counted, and do not stop later ones', () => {
    const f = ftpPair();
    f.open();
    f.say(0, 'PORT 10,1,0,5,300,1\r\n'); // bad number
    f.say(0, 'PORT 10,1,0,5,0,22\r\n'); // privileged port
    f.say(0, 'PORT 10,2,0,77,156,65\r\n'); // not the client's address (a hole towards another host)
    f.say(0, 'EPRT |1|10.1.0.5|99999|\r\n'); // out of range
    f.say(0, 'EPRT |1|10.1.0.5\r\n'); // truncated
    f.say(0, `STOR ${'x'.repeat(600)}\r\n`); // overlong line
    f.say(1, '227 Entering Passive Mode (10,2,0,8,117,49)\r\n'); // not the server's address
    const ftp = f.engine.helpers.ftp;
    expect(f.engine.conntrack.expectations.count).toBe(0);
    expect(ftp.refused[FtpRefusal.BAD_NUMBER]).toBe(1);
    expect(ftp.refused[FtpRefusal.BAD_PORT]).toBe(2);
    expect(ftp.refused[FtpRefusal.NOT_SENDER]).toBe(2);
    expect(ftp.refused[FtpRefusal.SYNTAX]).toBe(1);
    expect(ftp.refused[FtpRefusal.OVERLONG]).toBe(1);
    expect(f.dataSyn(C, 40001, S, 117 * 256 + 49, IN).verdict).toBe(Verdict.DROP);
    f.say(1, '227 Entering Passive Mode (10,2,0,9,117,49)\r\n');
    expect(f.dataSyn(C, 40001, S, 117 * 256 + 49, IN).verdict).toBe(Verdict.ACCEPT);
  });

  it('expectations go when they time out and when the control connection ends', () => {
    const f = ftpPair();
    f.open();
    f.say(1, '227 Entering Passive Mode (10,2,0,9,117,49)\r\n');
    // (acknowledged: unacknowledged data would end the control entry itself after 5 minutes)
    f.ack();
    f.advance(5 * 60_000 + 1);
    f.engine.tick();
    expect(f.engine.conntrack.expectations.count).toBe(0);
    expect(f.dataSyn(C, 40001, S, 117 * 256 + 49, IN).verdict).toBe(Verdict.DROP);
    f.say(1, '227 Entering Passive Mode (10,2,0,9,117,51)\r\n');
    expect(f.engine.conntrack.expectations.count).toBe(1);
    // The control connection goes (destroyed as an operator's `ct delete` would).
    const t = f.engine.conntrack.table;
    let control = -1;
    t.forEach((s) => (control = s));
    t.destroy(control, 3);
    f.engine.tick();
    expect(f.engine.conntrack.expectations.count).toBe(0);
    expect(f.engine.helpers.ftp.flows).toBe(0);
  });

  it('refuses a helper rule in forward, for the wrong protocol, or with an unknown name, with the path', () => {
    const bad = (raw: string, forward = '[]') => {
      try {
        parseRuleset(`chains:\n  raw:\n    rules:\n${raw}\n  forward:\n    rules: ${forward}\n`);
        return '';
      } catch (e) {
        if (!(e instanceof RulesetError)) throw e;
        return e.message;
      }
    };
    expect(bad('      - { match: { proto: udp, dport: 21 }, target: { helper: ftp } }')).toMatch(/chains\/raw\/rules\/0\/target\/helper.*proto: tcp/);
    expect(bad('      - { match: { dport: 21 }, target: { helper: ftp } }')).toMatch(/proto: tcp/);
    expect(bad('      - { match: { proto: tcp, dport: 21 }, target: { helper: sip } }')).toMatch(/"sip" is not a connection helper/);
    expect(bad('      []', '\n      - { match: { proto: tcp, dport: 21 }, target: { helper: ftp } }')).toMatch(/raw chain/);
    expect(bad('      - { match: { proto: tcp, dport: 21 }, target: { helper: ftp } }')).toBe('');
  });

  it('FIN of the control connection still leaves the announced data connections their chance', () => {
    const f = ftpPair();
    f.open();
    f.say(1, '227 Entering Passive Mode (10,2,0,9,117,52)\r\n');
    // The data connection opens while the control connection is still there.
    expect(f.dataSyn(C, 40005, S, 117 * 256 + 52, IN).verdict).toBe(Verdict.ACCEPT);
    f.pass(buildTcp({ src: C, dst: S, sport: 40000, dport: 21, flags: FIN | ACK, seq: 5000, ack: 1 }), IN);
  });
});

/**
 * The FTP helper behind NAT, through the engine, as both ends see it: a client and a server that
 * each keep their own sequence numbers and read what the firewall delivers. The announced
 * address is rewritten to the NAT address (a length change), every later packet's sequence and
 * acknowledgement numbers (and SACK blocks) are adjusted so each end sees a consistent stream,
 * and the data connection is NATed like its master.
 */
import { describe, expect, it } from 'vitest';
import { Engine, EngineResult } from '../../../../src/node/engine/engine.js';
import { compileRuleset, parseRuleset, Verdict } from '../../../../src/node/filter/index.js';
import { buildTcp } from '../../../../src/node/packet/build.js';
import { TcpFlag } from '../../../../src/node/packet/fields.js';
import { CtState } from '../../../../src/node/conntrack/state.js';
import { FtpRefusal } from '../../../../src/node/conntrack/helpers/index.js';

import { C, IN, OUT, R, RULES, S, V, WEB, connection, names, parse, type Got } from './ftp-ends.js';

const { SYN, ACK, PSH } = TcpFlag;
function harness() {
  let now = 1_000_000;
  const engine = new Engine({
    conntrack: { maxEntries: 1000 },
    ruleset: compileRuleset(parseRuleset(RULES), { interfaceName: (i: number) => names[i] }),
    clock: () => now,
  });
  const out = new EngineResult();
  /** Through the firewall; returns what comes out (null when dropped). */
  const pass = (pkt: Buffer, inIf: number): Got | null => {
    now += 1;
    const v = engine.process(pkt, 0, pkt.length, { inIf, outIf: inIf === IN ? OUT : IN, mark: 0, now }, out);
    if (v !== Verdict.ACCEPT) return null;
    return parse(out.replacement ?? pkt);
  };
  return { engine, pass, out };
}

describe('FTP helper with NAT', () => {
  it('SNAT, active (PORT): the address is rewritten, both ends stay in step, the server reaches the client through the NAT address', () => {
    const h = harness();
    const ctl = connection(h, { addr: C, port: 40000, ifIn: IN }, { addr: S, port: 21 });
    expect(ctl.send(1, '220 ready\r\n')?.text).toBe('220 ready\r\n');
    const port = ctl.send(0, 'PORT 10,0,0,5,156,65\r\n') as Got;
    expect(port.text).toBe('PORT 198,51,100,10,156,65\r\n');
    // The server acknowledges the longer command; the client gets an ack of its own bytes.
    ctl.send(1, '200 PORT command successful\r\n');
    expect(ctl.acks().a).toBe(ctl.acks().aNext);
    const retr = ctl.send(0, 'RETR f\r\n') as Got;
    expect(retr.text).toBe('RETR f\r\n');
    ctl.send(1, '150 here it comes\r\n');
    ctl.send(0, '');
    expect(ctl.acks().a).toBe(ctl.acks().aNext);
    expect(ctl.acks().b).toBe(ctl.acks().bNext);
    // The data connection: the server connects from port 20 to the NAT address and the announced port.
    const syn = h.pass(buildTcp({ src: S, dst: V, sport: 20, dport: 156 * 256 + 65, flags: SYN, seq: 5 }), OUT) as Got;
    expect(syn).not.toBeNull();
    expect(h.out.ctState).toBe(CtState.RELATED);
    expect([syn.dst, syn.dport]).toEqual([C, 156 * 256 + 65]);
    const synack = h.pass(buildTcp({ src: C, dst: S, sport: 156 * 256 + 65, dport: 20, flags: SYN | ACK, seq: 77, ack: 6 }), IN) as Got;
    expect([synack.src, synack.sport]).toEqual([V, 156 * 256 + 65]);
    expect(h.engine.helpers.ftp.rewritten).toBe(1);
  });

  it('SNAT, passive (PASV): nothing to rewrite; the data connection leaves through the NAT address', () => {
    const h = harness();
    const ctl = connection(h, { addr: C, port: 40010, ifIn: IN }, { addr: S, port: 21 });
    ctl.send(0, 'PASV\r\n');
    expect(ctl.send(1, '227 Entering Passive Mode (203,0,113,7,117,49).\r\n')?.text).toContain('203,0,113,7,117,49');
    const syn = h.pass(buildTcp({ src: C, dst: S, sport: 41000, dport: 117 * 256 + 49, flags: SYN, seq: 5 }), IN) as Got;
    expect(h.out.ctState).toBe(CtState.RELATED);
    expect([syn.src, syn.dst, syn.dport]).toEqual([V, S, 117 * 256 + 49]);
    expect(h.engine.helpers.ftp.rewritten).toBe(0);
  });

  it('DNAT (a server behind a port forward), passive (227) and extended passive (229): the reply names the outside address; the client reaches the inside server', () => {
    const h = harness();
    const ctl = connection(h, { addr: R, port: 50000, ifIn: OUT }, { addr: V, port: 21 });
    expect(ctl.real.addr).toBe(WEB);
    ctl.send(0, 'PASV\r\n');
    const pasv = ctl.send(1, '227 Entering Passive Mode (10,0,0,80,117,50).\r\n') as Got;
    expect(pasv.text).toBe('227 Entering Passive Mode (198,51,100,10,117,50).\r\n');
    const syn = h.pass(buildTcp({ src: R, dst: V, sport: 51000, dport: 117 * 256 + 50, flags: SYN, seq: 5 }), OUT) as Got;
    expect(h.out.ctState).toBe(CtState.RELATED);
    expect([syn.dst, syn.dport, syn.src]).toEqual([WEB, 117 * 256 + 50, R]);
    ctl.send(0, 'EPSV\r\n');
    expect(ctl.send(1, '229 Entering Extended Passive Mode (|||30001|)\r\n')?.text).toBe('229 Entering Extended Passive Mode (|||30001|)\r\n');
    expect(h.pass(buildTcp({ src: R, dst: V, sport: 51001, dport: 30001, flags: SYN, seq: 5 }), OUT)?.dst).toBe(WEB);
    ctl.send(0, 'NOOP\r\n');
    expect(ctl.acks().b).toBe(ctl.acks().bNext);
  });

  it('picks another outside port when the announced one is taken on the NAT address', () => {
    const h = harness();
    // An inside host already holds V:40100 for its own connection (SNAT kept its source port).
    expect(h.pass(buildTcp({ src: '10.0.0.9', dst: S, sport: 40100, dport: 21, flags: SYN, seq: 1 }), IN)?.sport).toBe(40100);
    const ctl = connection(h, { addr: C, port: 40020, ifIn: IN }, { addr: S, port: 21 });
    const port = ctl.send(0, 'EPRT |1|10.0.0.5|40100|\r\n') as Got;
    expect(port.text).toBe('EPRT |1|198.51.100.10|40101|\r\n');
    const syn = h.pass(buildTcp({ src: S, dst: V, sport: 20, dport: 40101, flags: SYN, seq: 5 }), OUT) as Got;
    expect([syn.dst, syn.dport]).toEqual([C, 40100]);
  });

  it('a retransmission of the rewritten segment is rewritten the same way; SACK blocks are adjusted', () => {
    const h = harness();
    const ctl = connection(h, { addr: C, port: 40030, ifIn: IN }, { addr: S, port: 21 });
    const seq0 = ctl.nxt[0];
    const first = ctl.send(0, 'PORT 10,0,0,5,156,70\r\n') as Got;
    // Sent again (the first copy was lost after the firewall): the same bytes at the same seq.
    const again = h.pass(buildTcp({ src: C, dst: S, sport: 40030, dport: 21, flags: ACK | PSH, seq: seq0, ack: ctl.nxt[1], payload: 'PORT 10,0,0,5,156,70\r\n' }), IN) as Got;
    expect(again.text).toBe(first.text);
    expect(again.seq).toBe(first.seq);
    // The server SACKs a later block of the client's (in its numbers): the client gets its own numbers.
    const after = ctl.nxt[0];
    const delta = first.text.length - 'PORT 10,0,0,5,156,70\r\n'.length;
    const sacked = h.pass(buildTcp({ src: S, dst: V, sport: 21, dport: 40030, flags: ACK, seq: ctl.nxt[1], ack: (after + delta) >>> 0, sackBlocks: [[after + delta + 10, after + delta + 20]] }), OUT) as Got;
    expect(sacked.ack).toBe(after);
    expect(sacked.sack).toEqual([after + 10, after + 20]);
  });

  it('a command that needs rewriting but began in an earlier segment is refused and counted', () => {
    const h = harness();
    const ctl = connection(h, { addr: C, port: 40040, ifIn: IN }, { addr: S, port: 21 });
    ctl.send(0, 'PORT 10,0,');
    ctl.send(0, '0,5,156,71\r\n');
    expect(h.engine.helpers.ftp.refused[FtpRefusal.SPLIT_REWRITE]).toBe(1);
    expect(h.engine.conntrack.expectations.count).toBe(0);
  });
});

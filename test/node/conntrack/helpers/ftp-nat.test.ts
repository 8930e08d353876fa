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
import { PacketView } from '../../../../src/node/packet/view.js';
import { TcpFlag } from '../../../../src/node/packet/fields.js';
import { formatAddress } from '../../../../src/node/packet/address.js';
import { CtState } from '../../../../src/node/conntrack/state.js';
import { FtpRefusal } from '../../../../src/node/conntrack/helpers/index.js';

const { SYN, ACK, PSH } = TcpFlag;
const IN = 2;
const OUT = 3;
const names: Record<number, string> = { [IN]: 'inside0', [OUT]: 'outside0' };
const C = '10.0.0.5'; // inside client
const WEB = '10.0.0.80'; // inside FTP server behind the port forward
const V = '198.51.100.10'; // the NAT address
const S = '203.0.113.7'; // outside FTP server
const R = '203.0.113.99'; // outside client of the port forward

const RULES = `
chains:
  raw:
    rules:
      - { match: { proto: tcp, dport: 21 }, target: { helper: ftp } }
  forward:
    policy: drop
    rules:
      - { match: { ctstate: [ESTABLISHED, RELATED] }, target: ACCEPT }
      - { match: { in: inside0, proto: tcp, dport: 21, ctstate: NEW }, target: ACCEPT }
      - { match: { in: outside0, dst: ${WEB}, proto: tcp, dport: 21, ctstate: NEW }, target: ACCEPT }
nat:
  snat:
    - { out: outside0, src: 10.0.0.0/8, to: ${V} }
  dnat:
    - { in: outside0, dst: ${V}, proto: tcp, dport: 21, to: "${WEB}:21" }
`;

/** What an end received: parsed, checksums verified. */
interface Got {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  seq: number;
  ack: number;
  text: string;
  sack: number[];
}

function parse(buf: Uint8Array): Got {
  const v = new PacketView();
  v.verifyIpChecksum = true;
  v.verifyL4Checksum = true;
  expect(v.parse(buf)).toBe(0);
  const sack: number[] = [];
  const b = v.buffer;
  for (let p = v.l4Offset + 20; p < v.l4Offset + v.tcpHeaderLength;) {
    if (b[p] === 0) break;
    if (b[p] === 1) { p++; continue; }
    if (b[p] === 5) for (let q = p + 2; q < p + b[p + 1]; q += 4) sack.push(((b[q] << 24) | (b[q + 1] << 16) | (b[q + 2] << 8) | b[q + 3]) >>> 0);
    p += b[p + 1];
  }
  return {
    src: formatAddress(4, v.src), dst: formatAddress(4, v.dst), sport: v.sport, dport: v.dport, seq: v.tcpSeq, ack: v.tcpAck,
    text: Buffer.from(b.subarray(v.payloadOffset, v.payloadOffset + v.payloadLength)).toString('latin1'), sack,
  };
}

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

/**
 * A TCP connection of two ends through the firewall: `a` opens to `b` (as addressed by `a`);
 * each end keeps its own next seq and the last ack it received.
 */
function connection(h: ReturnType<typeof harness>, a: { addr: string; port: number; ifIn: number }, b: { addr: string; port: number }) {
  const nxt = [1000, 900_000]; // a's, b's own numbers
  let peerB = { addr: '', port: 0 }; // b as it is seen from b's side: where b answers to
  const syn = h.pass(buildTcp({ src: a.addr, dst: b.addr, sport: a.port, dport: b.port, flags: SYN, seq: nxt[0]++ }), a.ifIn);
  expect(syn).not.toBeNull();
  const atB = syn as Got;
  peerB = { addr: atB.src, port: atB.sport };
  const real = { addr: atB.dst, port: atB.dport }; // b's own address after DNAT
  const bIf = a.ifIn === IN ? OUT : IN;
  expect(h.pass(buildTcp({ src: real.addr, dst: peerB.addr, sport: real.port, dport: peerB.port, flags: SYN | ACK, seq: nxt[1]++, ack: atB.seq + 1 }), bIf)).not.toBeNull();
  // The ack each end last got (in its own numbers, as the other end's packets said).
  let ackAtA = 0;
  let ackAtB = 0;
  let seqSeenByB = atB.seq + 1; // next seq b expects from a (in what b sees)
  let seqSeenByA = nxt[1]; // next seq a expects from b
  const send = (from: 0 | 1, text: string, extra: { sack?: [number, number][] } = {}): Got | null => {
    const payload = Buffer.from(text, 'latin1');
    const pkt = from === 0
      ? buildTcp({ src: a.addr, dst: b.addr, sport: a.port, dport: b.port, flags: ACK | (text ? PSH : 0), seq: nxt[0], ack: seqSeenByA, payload, sackPermitted: false, sackBlocks: extra.sack })
      : buildTcp({ src: real.addr, dst: peerB.addr, sport: real.port, dport: peerB.port, flags: ACK | (text ? PSH : 0), seq: nxt[1], ack: seqSeenByB, payload, sackBlocks: extra.sack });
    const got = h.pass(pkt, from === 0 ? a.ifIn : bIf);
    if (got === null) return null;
    nxt[from] += payload.length;
    if (from === 0) {
      // b checks the stream is contiguous in its numbers.
      expect(got.seq).toBe(seqSeenByB >>> 0);
      seqSeenByB = (got.seq + Buffer.byteLength(got.text, 'latin1')) >>> 0;
      ackAtB = got.ack;
    } else {
      expect(got.seq).toBe(seqSeenByA >>> 0);
      seqSeenByA = (got.seq + Buffer.byteLength(got.text, 'latin1')) >>> 0;
      ackAtA = got.ack;
    }
    return got;
  };
  return {
    send,
    /** The acks each end last received: equal to its own next seq when both views agree. */
    acks: () => ({ a: ackAtA, aNext: nxt[0], b: ackAtB, bNext: nxt[1] }),
    nxt,
    real,
  };
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

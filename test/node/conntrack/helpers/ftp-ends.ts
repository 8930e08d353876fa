/**
 * Two TCP ends talking through a firewall (any `pass` function: one engine, or a pair taking
 * over from each other), each keeping its own sequence numbers and checking that what it
 * receives is contiguous in them: the FTP NAT and sync tests' harness.
 */
import { expect } from 'vitest';
import { buildTcp } from '../../../../src/node/packet/build.js';
import { PacketView } from '../../../../src/node/packet/view.js';
import { TcpFlag } from '../../../../src/node/packet/fields.js';
import { formatAddress } from '../../../../src/node/packet/address.js';

const { SYN, ACK, PSH } = TcpFlag;
export const IN = 2;
export const OUT = 3;
export const names: Record<number, string> = { [IN]: 'inside0', [OUT]: 'outside0' };

export const C = '10.0.0.5'; // inside client
export const WEB = '10.0.0.80'; // inside FTP server behind the port forward
export const V = '198.51.100.10'; // the NAT address
export const S = '203.0.113.7'; // outside FTP server
export const R = '203.0.113.99'; // outside client of the port forward

/** The FTP helper on port 21; only FTP control connections and ESTABLISHED,RELATED pass. */
export const HELPER_RULES = `
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
`;

/** HELPER_RULES with SNAT of the inside network and a port forward of FTP to an inside server. */
export const RULES = `${HELPER_RULES}nat:
  snat:
    - { out: outside0, src: 10.0.0.0/8, to: ${V} }
  dnat:
    - { in: outside0, dst: ${V}, proto: tcp, dport: 21, to: "${WEB}:21" }
`;

/** Anything packets go through: returns what comes out, parsed, or null when dropped. */
export interface Through {
  pass(pkt: Buffer, inIf: number): Got | null;
}

/** What an end received: parsed, checksums verified. */
export interface Got {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  seq: number;
  ack: number;
  text: string;
  sack: number[];
}

export function parse(buf: Uint8Array): Got {
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

/**
 * A TCP connection of two ends through the firewall: `a` opens to `b` (as addressed by `a`);
 * each end keeps its own next seq and the last ack it received.
 */
export function connection(h: Through, a: { addr: string; port: number; ifIn: number }, b: { addr: string; port: number }) {
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


/**
 * Connection tuples as fixed runs of 32-bit words, so that the table can keep millions of them in
 * one Uint32Array and hash and compare them with integer arithmetic only.
 *
 * Layout (TUPLE_WORDS = 10):
 *   [0..3] source address words, [4..7] destination address words (IPv4 in word 0, like PacketFields)
 *   [8]    ports: (sport << 16 | dport) for TCP/UDP; (id << 16 | type << 8 | code) for ICMP echo-like
 *   [9]    (family << 8 | proto)
 *
 * For ICMP the reply tuple carries the reply type (echo request 8 -> echo reply 0), as in Linux's
 * nf_conntrack_proto_icmp invmap, so a reply packet's own tuple finds the entry directly.
 */
import { Proto, type PacketFields } from '../packet/fields.js';
import { formatAddress } from '../packet/address.js';

// Module-local copies of imported constants: on Node 20 each use of an imported binding costs
// a load through the exporting module even in optimised code; a local const costs nothing.
const P_ICMP = Proto.ICMP;
const P_ICMPV6 = Proto.ICMPV6;
const P_TCP = Proto.TCP;
const P_UDP = Proto.UDP;

export const TUPLE_WORDS = 10;
export const TW_PORTS = 8;
export const TW_PROTO = 9;

/** ICMPv4 request type -> reply type (RFC 792); -1 where the type opens no connection. */
const icmpInverse = new Int16Array(256).fill(-1);
icmpInverse[8] = 0; // echo
icmpInverse[0] = 8;
icmpInverse[13] = 14; // timestamp
icmpInverse[14] = 13;
icmpInverse[15] = 16; // information
icmpInverse[16] = 15;
icmpInverse[17] = 18; // address mask
icmpInverse[18] = 17;
/** ICMPv6 (RFC 4443): echo request 128 <-> echo reply 129; node information 139 <-> 140. */
const icmp6Inverse = new Int16Array(256).fill(-1);
icmp6Inverse[128] = 129;
icmp6Inverse[129] = 128;
icmp6Inverse[139] = 140;
icmp6Inverse[140] = 139;

/** ICMP types that may open a connection (the request half of a pair). */
export function icmpIsRequest(family: number, type: number): boolean {
  return family === 4 ? type === 8 || type === 13 || type === 15 || type === 17 : type === 128 || type === 139;
}

/**
 * Write the tuple of a parsed packet at `out[off..off+10)`. Returns false when the packet has no
 * trackable tuple (later fragment, ICMP type without id pairing).
 */
export function writePacketTuple(pkt: PacketFields, out: Uint32Array, off: number): boolean {
  if (pkt.isLaterFragment) return false;
  const s = pkt.src;
  const d = pkt.dst;
  out[off] = s[0];
  out[off + 1] = s[1];
  out[off + 2] = s[2];
  out[off + 3] = s[3];
  out[off + 4] = d[0];
  out[off + 5] = d[1];
  out[off + 6] = d[2];
  out[off + 7] = d[3];
  const proto = pkt.proto;
  if (proto === P_TCP || proto === P_UDP) {
    out[off + TW_PORTS] = ((pkt.sport << 16) | pkt.dport) >>> 0;
  } else if (proto === P_ICMP || proto === P_ICMPV6) {
    out[off + TW_PORTS] = ((pkt.icmpId << 16) | (pkt.icmpType << 8) | pkt.icmpCode) >>> 0;
  } else {
    out[off + TW_PORTS] = 0;
  }
  out[off + TW_PROTO] = (pkt.family << 8) | proto;
  return true;
}

/**
 * Write the inverse of the tuple at src[soff] into dst[doff]: addresses and ports swapped, ICMP type
 * replaced by its reply type. Returns false for an ICMP type that has no inverse.
 */
export function invertTuple(src: Uint32Array, soff: number, dst: Uint32Array, doff: number): boolean {
  const meta = src[soff + TW_PROTO];
  const proto = meta & 0xff;
  const family = meta >>> 8;
  const ports = src[soff + TW_PORTS];
  let inv: number;
  if (proto === P_ICMP || proto === P_ICMPV6) {
    const type = (ports >>> 8) & 0xff;
    const t = proto === P_ICMP ? icmpInverse[type] : icmp6Inverse[type];
    if (t < 0 || (proto === P_ICMP) !== (family === 4)) return false;
    inv = ((ports & 0xffff0000) | (t << 8) | (ports & 0xff)) >>> 0;
  } else if (proto === P_TCP || proto === P_UDP) {
    inv = ((ports << 16) | (ports >>> 16)) >>> 0;
  } else {
    inv = ports;
  }
  // Copy via locals: src and dst may be the same array.
  const a0 = src[soff], a1 = src[soff + 1], a2 = src[soff + 2], a3 = src[soff + 3];
  dst[doff] = src[soff + 4];
  dst[doff + 1] = src[soff + 5];
  dst[doff + 2] = src[soff + 6];
  dst[doff + 3] = src[soff + 7];
  dst[doff + 4] = a0;
  dst[doff + 5] = a1;
  dst[doff + 6] = a2;
  dst[doff + 7] = a3;
  dst[doff + TW_PORTS] = inv;
  dst[doff + TW_PROTO] = meta;
  return true;
}

/**
 * Seeded 32-bit hash of a tuple (murmur3's body and finaliser over its words). The seed is random
 * per table, so an attacker cannot aim many tuples at one chain (the reason Linux seeds with
 * get_random_bytes in nf_conntrack_hash_rnd).
 */
export function hashTuple(w: Uint32Array, off: number, seed: number): number {
  const meta = w[off + TW_PROTO];
  let h = seed | 0;
  // IPv4 tuples have zeros in address words 1..3: hash only the four words that vary.
  if (meta >>> 8 === 4) {
    h = mix(h, w[off]);
    h = mix(h, w[off + 4]);
  } else {
    for (let i = 0; i < 8; i++) h = mix(h, w[off + i]);
  }
  h = mix(h, w[off + TW_PORTS]);
  h = mix(h, meta);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** One murmur3 round: mix word k into h. */
function mix(h: number, k: number): number {
  k = Math.imul(k, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

export function tuplesEqual(a: Uint32Array, aoff: number, b: Uint32Array, boff: number): boolean {
  // Most selective words first: addresses and ports, then protocol, then the IPv6 words.
  if (a[aoff] !== b[boff] || a[aoff + TW_PORTS] !== b[boff + TW_PORTS] || a[aoff + 4] !== b[boff + 4]) return false;
  if (a[aoff + TW_PROTO] !== b[boff + TW_PROTO]) return false;
  for (let i = 1; i < 8; i++) if (i !== 4 && a[aoff + i] !== b[boff + i]) return false;
  return true;
}

/** A tuple read out as plain values, for the CLI, logs and tests (allocates). */
export interface TupleInfo {
  family: number;
  proto: number;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  /** ICMP only. */
  icmpType?: number;
  icmpCode?: number;
  icmpId?: number;
}

export function readTuple(w: Uint32Array, off: number): TupleInfo {
  const meta = w[off + TW_PROTO];
  const family = meta >>> 8;
  const proto = meta & 0xff;
  const ports = w[off + TW_PORTS];
  const info: TupleInfo = {
    family,
    proto,
    src: formatAddress(family as 4 | 6, w.subarray(off, off + 4)),
    dst: formatAddress(family as 4 | 6, w.subarray(off + 4, off + 8)),
    sport: 0,
    dport: 0,
  };
  if (proto === P_ICMP || proto === P_ICMPV6) {
    info.icmpId = ports >>> 16;
    info.icmpType = (ports >>> 8) & 0xff;
    info.icmpCode = ports & 0xff;
  } else if (proto === P_TCP || proto === P_UDP) {
    info.sport = ports >>> 16;
    info.dport = ports & 0xffff;
  }
  return info;
}

const protoNames: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 58: 'icmpv6' };
export function protoName(proto: number): string {
  return protoNames[proto] ?? String(proto);
}

/** conntrack -L style rendering: `src=10.0.0.1 dst=10.0.0.2 sport=1234 dport=80`. */
export function formatTuple(w: Uint32Array, off: number): string {
  const t = readTuple(w, off);
  if (t.icmpId !== undefined) return `src=${t.src} dst=${t.dst} type=${t.icmpType} code=${t.icmpCode} id=${t.icmpId}`;
  if (t.proto === P_TCP || t.proto === P_UDP) return `src=${t.src} dst=${t.dst} sport=${t.sport} dport=${t.dport}`;
  return `src=${t.src} dst=${t.dst}`;
}

/**
 * In-place rewrites for NAT, with every checksum fixed incrementally (RFC 1624) and the view's
 * fields updated to match. Allocation-free: NAT calls these per packet.
 *
 * Which checksums an address covers: the IPv4 header checksum (RFC 791); the TCP and UDP
 * checksums through the pseudo-header (RFC 793, RFC 768, RFC 8200 8.1); ICMPv6 through its
 * pseudo-header (RFC 4443 2.3); never ICMPv4 (RFC 792 checksums the message alone). A UDP/IPv4
 * checksum of 0 means "none" and stays 0.
 *
 * These work on a quoted packet too (`view.inner` of an ICMP error), as Linux's
 * nf_nat_icmp_reply_translation does: a transport checksum cut off by the quote is left alone.
 * After changing the quote, call refreshL4Checksum on the outer view: the ICMP checksum covers
 * the quote, and errors are rare enough for a full recompute (Linux recomputes it too).
 *
 * Each function returns false, changing nothing, when the field does not exist in this packet
 * (not parsed, a later fragment, another protocol).
 */

import {
  checksumUpdate16,
  computeIpv4HeaderChecksum,
  computeL4ChecksumRaw,
  fold,
  updateChecksumAt16,
  updateChecksumAt32,
} from './checksum.js';
import { Proto } from './fields.js';
import type { PacketView } from './view.js';

function write32(b: Uint8Array, at: number, v: number): void {
  b[at] = v >>> 24;
  b[at + 1] = (v >>> 16) & 0xff;
  b[at + 2] = (v >>> 8) & 0xff;
  b[at + 3] = v & 0xff;
}

/** True when a view's IP header is usable for a rewrite (valid, or a valid quote). */
function usable(v: PacketView): boolean {
  return v.invalid === 0 && (v.family === 4 || v.family === 6);
}

/**
 * Offset of the transport checksum that covers the pseudo-header, or -1: none for ICMPv4, later
 * fragments, UDP/IPv4 without checksum, or a checksum cut off by an ICMP quote.
 */
function pseudoChecksumAt(v: PacketView): number {
  if (v.isLaterFragment) return -1;
  const b = v.buffer;
  let at: number;
  if (v.proto === Proto.TCP) at = v.l4Offset + 16;
  else if (v.proto === Proto.UDP) at = v.l4Offset + 6;
  else if (v.proto === Proto.ICMPV6 && v.family === 6) at = v.l4Offset + 2;
  else return -1;
  if (at + 2 > v.ipEnd) return -1;
  if (v.proto === Proto.UDP && b[at] === 0 && b[at + 1] === 0) return -1;
  return at;
}

/** RFC 768: a UDP checksum computing to zero is sent as 0xffff (zero would mean "none"). */
function fixUdpZero(v: PacketView, at: number): void {
  if (v.proto === Proto.UDP && v.buffer[at] === 0 && v.buffer[at + 1] === 0) {
    v.buffer[at] = 0xff;
    v.buffer[at + 1] = 0xff;
  }
}

function setAddress(v: PacketView, words: ArrayLike<number>, target: Uint32Array, v4At: number, v6At: number): boolean {
  if (!usable(v)) return false;
  const b = v.buffer;
  const l3 = v.l3Offset;
  const ck = pseudoChecksumAt(v);
  if (v.family === 4) {
    const old = target[0];
    const now = words[0] >>> 0;
    if (old === now) return true;
    write32(b, l3 + v4At, now);
    updateChecksumAt32(b, l3 + 10, old, now);
    if (ck >= 0) {
      updateChecksumAt32(b, ck, old, now);
      fixUdpZero(v, ck);
    }
    target[0] = now;
    return true;
  }
  // IPv6: one RFC 1624 sum over the eight 16-bit words that change, folded once.
  let s = ck >= 0 ? ~((b[ck] << 8) | b[ck + 1]) & 0xffff : 0;
  for (let w = 0; w < 4; w++) {
    const old = target[w];
    const now = words[w] >>> 0;
    const o = ~old;
    s += ((o >>> 16) & 0xffff) + (o & 0xffff) + (now >>> 16) + (now & 0xffff);
    write32(b, l3 + v6At + 4 * w, now);
    target[w] = now;
  }
  if (ck >= 0) {
    const c = ~fold(s) & 0xffff;
    b[ck] = c >>> 8;
    b[ck + 1] = c & 0xff;
    fixUdpZero(v, ck);
  }
  return true;
}

/** Sets the source address (host-order words, IPv4 in word 0), fixing checksums. */
export function setSourceAddress(v: PacketView, words: ArrayLike<number>): boolean {
  return setAddress(v, words, v.src, 12, 8);
}

/** Sets the destination address (host-order words, IPv4 in word 0), fixing checksums. */
export function setDestinationAddress(v: PacketView, words: ArrayLike<number>): boolean {
  return setAddress(v, words, v.dst, 16, 24);
}

function setPort(v: PacketView, port: number, at: number): boolean {
  if (!usable(v) || v.isLaterFragment || (v.proto !== Proto.TCP && v.proto !== Proto.UDP)) return false;
  const b = v.buffer;
  const p = v.l4Offset + at;
  if (p + 2 > v.ipEnd) return false;
  const old = (b[p] << 8) | b[p + 1];
  const now = port & 0xffff;
  b[p] = now >>> 8;
  b[p + 1] = now & 0xff;
  const ck = pseudoChecksumAt(v); // the port is in the checksummed segment, like the pseudo-header
  if (ck >= 0) {
    updateChecksumAt16(b, ck, old, now);
    fixUdpZero(v, ck);
  }
  return true;
}

/** Sets the TCP/UDP source port, fixing the checksum. */
export function setSourcePort(v: PacketView, port: number): boolean {
  if (!setPort(v, port, 0)) return false;
  v.sport = port & 0xffff;
  return true;
}

/** Sets the TCP/UDP destination port, fixing the checksum. */
export function setDestinationPort(v: PacketView, port: number): boolean {
  if (!setPort(v, port, 2)) return false;
  v.dport = port & 0xffff;
  return true;
}

/** Sets the ICMP/ICMPv6 identifier (echo, timestamp, information), fixing the ICMP checksum. */
export function setIcmpEchoId(v: PacketView, id: number): boolean {
  if (!usable(v) || !v.icmpHasId || v.isLaterFragment) return false;
  const b = v.buffer;
  const p = v.l4Offset + 4;
  if (p + 2 > v.ipEnd) return false;
  const old = (b[p] << 8) | b[p + 1];
  const now = id & 0xffff;
  b[p] = now >>> 8;
  b[p + 1] = now & 0xff;
  const ck = v.l4Offset + 2;
  const c = checksumUpdate16((b[ck] << 8) | b[ck + 1], old, now);
  b[ck] = c >>> 8;
  b[ck + 1] = c & 0xff;
  v.icmpId = now;
  return true;
}

/**
 * The correct transport checksum of a parsed packet, computed from scratch as if its field were
 * zero (UDP's computed zero given as 0xffff), or -1 when there is none to compute: no TCP/UDP/ICMP
 * header, a fragment (the checksum covers the whole datagram), or a quote.
 */
export function computeL4Checksum(v: PacketView): number {
  if (!usable(v) || v.isFragment || v.isQuoted) return -1;
  const end = v.proto === Proto.UDP ? v.l4Offset + 8 + v.payloadLength : v.ipEnd;
  return computeL4ChecksumRaw(v.buffer, v.l3Offset, v.family, v.proto, v.l4Offset, end);
}

/**
 * Recomputes the transport checksum from scratch and writes it, e.g. an ICMP error's after its
 * quote was rewritten. Returns false when there is none to compute (see computeL4Checksum).
 */
export function refreshL4Checksum(v: PacketView): boolean {
  const b = v.buffer;
  if (usable(v) && v.proto === Proto.UDP && v.family === 4 && !v.isLaterFragment) {
    const at = v.l4Offset + 6;
    if (b[at] === 0 && b[at + 1] === 0) return true; // "no checksum" stays so
  }
  const c = computeL4Checksum(v);
  if (c < 0) return false;
  const at = v.l4Offset + (v.proto === Proto.TCP ? 16 : v.proto === Proto.UDP ? 6 : 2);
  b[at] = c >>> 8;
  b[at + 1] = c & 0xff;
  return true;
}

/** Recomputes the IPv4 header checksum from scratch (after a TTL or TOS change, say). */
export function refreshIpv4HeaderChecksum(v: PacketView): boolean {
  if (v.family !== 4 || v.ipEnd - v.l3Offset < 20) return false;
  const c = computeIpv4HeaderChecksum(v.buffer, v.l3Offset);
  v.buffer[v.l3Offset + 10] = c >>> 8;
  v.buffer[v.l3Offset + 11] = c & 0xff;
  return true;
}

/**
 * The Internet checksum (RFC 1071) and its incremental update (RFC 1624), over plain byte arrays.
 *
 * Sums are kept unfolded in a JS number: 16-bit words summed over a 64 KiB packet stay far below
 * 2^53, so no carry is lost and a field's contribution can be subtracted exactly before folding.
 * Everything here is allocation-free: the parser and NAT call it per packet.
 */

import { Proto } from './fields.js';

/** Adds the big-endian 16-bit words of buf[start, end) to `initial`; an odd last byte is padded with zero. */
export function sumWords(buf: Uint8Array, start: number, end: number, initial: number): number {
  // High and low bytes summed apart and combined once (RFC 1071 section 2(B): the sum is
  // byte-order independent in this sense); eight bytes per step. Both stay exact below 2^53.
  let hi = 0;
  let lo = 0;
  let i = start;
  for (const last8 = end - 7; i < last8; i += 8) {
    hi += buf[i] + buf[i + 2] + buf[i + 4] + buf[i + 6];
    lo += buf[i + 1] + buf[i + 3] + buf[i + 5] + buf[i + 7];
  }
  for (; i < end - 1; i += 2) {
    hi += buf[i];
    lo += buf[i + 1];
  }
  if (i < end) hi += buf[i];
  return initial + hi * 256 + lo;
}

/** Folds an unfolded sum into 16 bits with end-around carry (RFC 1071 section 4.1). */
export function fold(sum: number): number {
  let s = sum;
  while (s > 0xffff) s = (s % 0x10000) + Math.floor(s / 0x10000);
  return s;
}

/** The checksum (complemented folded sum) of buf[start, end) starting from an unfolded `initial`. */
export function internetChecksum(buf: Uint8Array, start: number, end: number, initial = 0): number {
  return ~fold(sumWords(buf, start, end, initial)) & 0xffff;
}

/**
 * Sum of the transport pseudo-header read from the IP header at l3Offset: RFC 793 section 3.1
 * (IPv4: addresses, protocol, length) and RFC 8200 section 8.1 (IPv6: addresses, 32-bit length,
 * next header). The addresses are the ones in the packet: a routing header's final destination is
 * not substituted (twinwall does not NAT source-routed packets).
 */
export function pseudoHeaderSum(
  buf: Uint8Array,
  l3Offset: number,
  family: number,
  proto: number,
  l4Length: number,
): number {
  if (family === 4) return sumWords(buf, l3Offset + 12, l3Offset + 20, proto + l4Length);
  return sumWords(buf, l3Offset + 8, l3Offset + 40, proto + Math.floor(l4Length / 0x10000) + (l4Length & 0xffff));
}

/**
 * Unfolded sum over a transport segment buf[start, end) including its checksum field and, except
 * for ICMPv4 (RFC 792 checksums the message alone), the pseudo-header. A correct segment folds
 * to 0xffff.
 */
export function l4Sum(
  buf: Uint8Array,
  l3Offset: number,
  family: number,
  proto: number,
  start: number,
  end: number,
): number {
  const initial = proto === Proto.ICMP && family === 4 ? 0 : pseudoHeaderSum(buf, l3Offset, family, proto, end - start);
  return sumWords(buf, start, end, initial);
}

/** Offset of the checksum field within the transport header, or -1 for protocols we do not checksum. */
export function l4ChecksumFieldOffset(family: number, proto: number): number {
  if (proto === Proto.TCP) return 16;
  if (proto === Proto.UDP) return 6;
  if ((proto === Proto.ICMP && family === 4) || (proto === Proto.ICMPV6 && family === 6)) return 2;
  return -1;
}

/**
 * The correct transport checksum of buf[start, end) as if its checksum field were zero, or -1 when
 * the protocol has none we know. A UDP result of 0 is returned as 0xffff (RFC 768: zero means
 * "no checksum", so a computed zero is sent as all ones).
 */
export function computeL4ChecksumRaw(
  buf: Uint8Array,
  l3Offset: number,
  family: number,
  proto: number,
  start: number,
  end: number,
): number {
  const field = l4ChecksumFieldOffset(family, proto);
  if (field < 0 || start + field + 2 > end) return -1;
  const at = start + field;
  const s = l4Sum(buf, l3Offset, family, proto, start, end) - ((buf[at] << 8) | buf[at + 1]);
  const c = ~fold(s) & 0xffff;
  return c === 0 && proto === Proto.UDP ? 0xffff : c;
}

/** The correct IPv4 header checksum of the header at l3Offset, as if its checksum field were zero. */
export function computeIpv4HeaderChecksum(buf: Uint8Array, l3Offset: number): number {
  const ihl = (buf[l3Offset] & 15) << 2;
  const s = sumWords(buf, l3Offset, l3Offset + ihl, 0) - ((buf[l3Offset + 10] << 8) | buf[l3Offset + 11]);
  return ~fold(s) & 0xffff;
}

/** Writes the correct IPv4 header checksum in place and returns it. */
export function fixIpv4HeaderChecksum(buf: Uint8Array, l3Offset: number): number {
  const c = computeIpv4HeaderChecksum(buf, l3Offset);
  buf[l3Offset + 10] = c >>> 8;
  buf[l3Offset + 11] = c & 0xff;
  return c;
}

/**
 * RFC 1624 equation 3, HC' = ~(~HC + ~m + m'), for one 16-bit field changing from m to m'.
 * Equation 3 (not 2) so that the result is never the "negative zero" a full recompute cannot give.
 */
export function checksumUpdate16(check: number, oldValue: number, newValue: number): number {
  return ~fold((~check & 0xffff) + (~oldValue & 0xffff) + (newValue & 0xffff)) & 0xffff;
}

/** RFC 1624 equation 3 for a 32-bit field (two 16-bit words) changing from m to m'. */
export function checksumUpdate32(check: number, oldValue: number, newValue: number): number {
  const o = ~oldValue;
  const s =
    (~check & 0xffff) + ((o >>> 16) & 0xffff) + (o & 0xffff) + ((newValue >>> 16) & 0xffff) + (newValue & 0xffff);
  return ~fold(s) & 0xffff;
}

/** Reads the 16-bit checksum at `at`, applies a 32-bit field change and writes it back. */
export function updateChecksumAt32(buf: Uint8Array, at: number, oldValue: number, newValue: number): void {
  const c = checksumUpdate32((buf[at] << 8) | buf[at + 1], oldValue, newValue);
  buf[at] = c >>> 8;
  buf[at + 1] = c & 0xff;
}

/** Reads the 16-bit checksum at `at`, applies a 16-bit field change and writes it back. */
export function updateChecksumAt16(buf: Uint8Array, at: number, oldValue: number, newValue: number): void {
  const c = checksumUpdate16((buf[at] << 8) | buf[at + 1], oldValue, newValue);
  buf[at] = c >>> 8;
  buf[at + 1] = c & 0xff;
}

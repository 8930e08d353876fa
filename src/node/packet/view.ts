/**
 * PacketView: a reusable, zero-copy parser of one IPv4 or IPv6 packet into the fields of
 * fields.ts. One instance per packet path; `parse` overwrites every field, allocates nothing
 * (after the first ICMP error, which creates `inner` once) and never throws: anything malformed
 * comes back as an InvalidReason code, to be counted and dropped by the engine.
 */

import { fold, l4Sum, sumWords } from './checksum.js';
import { InvalidReason, Proto, TcpFlag, type PacketFields } from './fields.js';

const EMPTY = new Uint8Array(0);

/** IPv6 extension headers we walk before giving up (RFC 8200 section 4.1 expects a handful). */
const MAX_IPV6_EXT_HEADERS = 16;

/** Linux caps the window scale shift at 14 (RFC 7323 section 2.3, TCP_MAX_WSCALE). */
const MAX_WSCALE = 14;

/**
 * Flag combinations Linux's conntrack accepts (tcp_valid_flags in nf_conntrack_proto_tcp.c),
 * indexed by the flags with PSH, ECE and CWR cleared. Everything else (no flags, SYN|FIN,
 * SYN|RST, FIN without ACK, ...) is a scan or an attack and is INVALID.
 */
const VALID_TCP_FLAGS = new Uint8Array(64);
{
  const { FIN, SYN, RST, ACK, URG } = TcpFlag;
  for (const f of [SYN, SYN | URG, SYN | ACK, RST, RST | ACK, FIN | ACK, FIN | ACK | URG, ACK, ACK | URG]) {
    VALID_TCP_FLAGS[f] = 1;
  }
}
/** The flags ignored by the validity check: PSH, ECE, CWR. */
const TCP_FLAG_CLASS_MASK = TcpFlag.FIN | TcpFlag.SYN | TcpFlag.RST | TcpFlag.ACK | TcpFlag.URG;

function read16(b: Uint8Array, i: number): number {
  return (b[i] << 8) | b[i + 1];
}

function read32(b: Uint8Array, i: number): number {
  return ((b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]) >>> 0;
}

/** Validates the TLV options of an IPv6 hop-by-hop or destination options header (RFC 8200 4.2). */
function validIpv6Tlvs(b: Uint8Array, start: number, end: number): boolean {
  let i = start;
  while (i < end) {
    if (b[i] === 0) {
      i++; // Pad1 is a lone byte
      continue;
    }
    if (i + 2 > end) return false;
    i += 2 + b[i + 1];
  }
  return i === end;
}

export class PacketView implements PacketFields {
  invalid = 0;
  family = 0;
  captureLength = 0;
  ipLength = 0;
  l4Offset = 0;
  proto = 0;
  readonly src = new Uint32Array(4);
  readonly dst = new Uint32Array(4);
  ttl = 0;
  isFragment = false;
  isLaterFragment = false;
  sport = 0;
  dport = 0;
  tcpFlags = 0;
  tcpSeq = 0;
  tcpAck = 0;
  tcpWindow = 0;
  tcpHeaderLength = 0;
  tcpMss = 0;
  tcpWscale = -1;
  tcpSackPermitted = false;
  tcpHasTimestamp = false;
  tcpTsVal = 0;
  tcpTsEcr = 0;
  /**
   * The acknowledgement extended by the highest SACK right edge (equal to tcpAck without SACK),
   * as Linux's tcp_sack computes it for window tracking.
   */
  tcpSackAck = 0;
  payloadLength = 0;
  payloadOffset = 0;
  icmpType = 0;
  icmpCode = 0;
  icmpId = 0;
  icmpSeq = 0;
  /** True when the ICMP type carries an identifier (echo, timestamp, information). */
  icmpHasId = false;
  isIcmpError = false;

  /** The bytes last parsed (not copied). */
  buffer: Uint8Array = EMPTY;
  /** Offset of the IP header within `buffer`. */
  l3Offset = 0;
  /**
   * End of the IP datagram within `buffer`: l3Offset + ipLength, or the end of the bytes given
   * when a quoted packet is cut short. Trailing padding after it is not part of the packet.
   */
  ipEnd = 0;
  /** True when this view holds the quoted packet of an ICMP error (parsed leniently). */
  isQuoted = false;

  /** Verify the IPv4 header checksum (off by default: NFQUEUE packets passed ip_rcv already). */
  verifyIpChecksum = false;
  /** Verify TCP/UDP/ICMP checksums (off by default: local packets may carry partial checksums). */
  verifyL4Checksum = false;

  private innerView: PacketView | null = null;

  /**
   * The packet quoted by an ICMP/ICMPv6 error, meaningful when `isIcmpError` is true. Created on
   * first use and reused for every later packet: do not keep it across parses.
   */
  get inner(): PacketView {
    if (this.innerView === null) this.innerView = new PacketView();
    return this.innerView;
  }

  /**
   * Parses buf[offset, offset + length) as an IP packet. Returns `invalid` (0 when valid).
   * Out-of-range offset/length are clamped to the buffer, which then reads as truncation.
   */
  parse(buf: Uint8Array, offset = 0, length: number = buf.length - offset): number {
    return this.parseAt(buf, offset, length, false);
  }

  private parseAt(buf: Uint8Array, offset: number, length: number, quoted: boolean): number {
    const bl = buf.length;
    let off = offset >= 0 ? Math.floor(offset) : 0;
    if (off > bl) off = bl;
    let len = length >= 0 ? Math.floor(length) : 0;
    if (len > bl - off) len = bl - off;
    this.reset();
    this.buffer = buf;
    this.l3Offset = off;
    this.captureLength = len;
    this.isQuoted = quoted;
    this.ipEnd = off + len;
    this.l4Offset = off;
    this.payloadOffset = off;
    if (len < 1) return this.fail(InvalidReason.TRUNCATED);
    const version = buf[off] >> 4;
    if (version === 4) return this.parseIpv4(buf, off, off + len, quoted);
    if (version === 6) return this.parseIpv6(buf, off, off + len, quoted);
    return this.fail(InvalidReason.BAD_VERSION);
  }

  private reset(): void {
    this.invalid = 0;
    this.family = 0;
    this.ipLength = 0;
    this.proto = 0;
    const src = this.src;
    const dst = this.dst;
    src[0] = src[1] = src[2] = src[3] = 0;
    dst[0] = dst[1] = dst[2] = dst[3] = 0;
    this.ttl = 0;
    this.isFragment = false;
    this.isLaterFragment = false;
    this.sport = 0;
    this.dport = 0;
    this.tcpFlags = 0;
    this.tcpSeq = 0;
    this.tcpAck = 0;
    this.tcpWindow = 0;
    this.tcpHeaderLength = 0;
    this.tcpMss = 0;
    this.tcpWscale = -1;
    this.tcpSackPermitted = false;
    this.tcpHasTimestamp = false;
    this.tcpTsVal = 0;
    this.tcpTsEcr = 0;
    this.tcpSackAck = 0;
    this.payloadLength = 0;
    this.icmpType = 0;
    this.icmpCode = 0;
    this.icmpId = 0;
    this.icmpSeq = 0;
    this.icmpHasId = false;
    this.isIcmpError = false;
  }

  private fail(reason: number): number {
    this.invalid = reason;
    return reason;
  }

  /** RFC 791 header; checks as Linux's ip_rcv_core does (ihl, total length, options). */
  private parseIpv4(b: Uint8Array, off: number, end: number, quoted: boolean): number {
    this.family = 4;
    if (end - off < 20) return this.fail(InvalidReason.TRUNCATED);
    const ihl = (b[off] & 15) << 2;
    const total = read16(b, off + 2);
    const frag = read16(b, off + 6);
    this.ipLength = total;
    this.ttl = b[off + 8];
    this.proto = b[off + 9];
    this.src[0] = read32(b, off + 12);
    this.dst[0] = read32(b, off + 16);
    // MF (0x2000) or a non-zero offset (low 13 bits) makes a fragment; DF (0x4000) does not.
    this.isFragment = (frag & 0x3fff) !== 0;
    this.isLaterFragment = (frag & 0x1fff) !== 0;
    if (ihl < 20 || ihl > end - off) return this.fail(InvalidReason.BAD_IHL);
    if (total < ihl) return this.fail(InvalidReason.BAD_LENGTH);
    let ipEnd = off + total;
    if (ipEnd > end) {
      // A quote is cut short by design (RFC 792: header + 64 bits; RFC 1812: up to 576 bytes).
      if (!quoted) return this.fail(InvalidReason.BAD_LENGTH);
      ipEnd = end;
    }
    this.ipEnd = ipEnd;
    // RFC 791 options: EOL ends the list (the rest is padding), NOP is one byte, others are TLVs
    // whose length counts type and length bytes, so below 2 is malformed (ip_options_compile).
    for (let i = off + 20, optEnd = off + ihl; i < optEnd; ) {
      const type = b[i];
      if (type === 0) break;
      if (type === 1) {
        i++;
        continue;
      }
      if (i + 2 > optEnd) return this.fail(InvalidReason.BAD_OPTIONS);
      const optLen = b[i + 1];
      if (optLen < 2 || i + optLen > optEnd) return this.fail(InvalidReason.BAD_OPTIONS);
      i += optLen;
    }
    if (this.verifyIpChecksum && !quoted && fold(sumWords(b, off, off + ihl, 0)) !== 0xffff) {
      return this.fail(InvalidReason.BAD_IP_CHECKSUM);
    }
    const l4 = off + ihl;
    this.l4Offset = l4;
    this.payloadOffset = l4;
    if (this.isLaterFragment) {
      // No transport header in this fragment: its bytes are opaque data.
      this.payloadLength = ipEnd - l4;
      return 0;
    }
    return this.parseL4(b, l4, ipEnd, quoted);
  }

  /** RFC 8200 header and extension header chain. */
  private parseIpv6(b: Uint8Array, off: number, end: number, quoted: boolean): number {
    this.family = 6;
    if (end - off < 40) return this.fail(InvalidReason.TRUNCATED);
    const payload = read16(b, off + 4);
    this.ipLength = 40 + payload;
    this.ttl = b[off + 7];
    for (let w = 0; w < 4; w++) {
      this.src[w] = read32(b, off + 8 + 4 * w);
      this.dst[w] = read32(b, off + 24 + 4 * w);
    }
    let ipEnd = off + 40 + payload;
    if (ipEnd > end) {
      if (!quoted) return this.fail(InvalidReason.BAD_LENGTH);
      ipEnd = end;
    }
    this.ipEnd = ipEnd;
    let next = b[off + 6];
    let p = off + 40;
    let sawFragment = false;
    for (let n = 0; n <= MAX_IPV6_EXT_HEADERS; n++) {
      this.proto = next;
      this.l4Offset = p;
      this.payloadOffset = p;
      switch (next) {
        case 0: // hop-by-hop options: only directly after the fixed header (RFC 8200 4.3)
        case 43: // routing
        case 60: {
          // destination options
          if (next === 0 && p !== off + 40) return this.fail(InvalidReason.BAD_OPTIONS);
          if (p + 2 > ipEnd) return this.fail(InvalidReason.BAD_OPTIONS);
          const hl = (b[p + 1] + 1) << 3; // 8-octet units, not counting the first 8
          if (p + hl > ipEnd) return this.fail(InvalidReason.BAD_OPTIONS);
          if (next !== 43 && !validIpv6Tlvs(b, p + 2, p + hl)) return this.fail(InvalidReason.BAD_OPTIONS);
          next = b[p];
          p += hl;
          break;
        }
        case 44: {
          // fragment header, fixed 8 bytes (RFC 8200 4.5); one per packet
          if (sawFragment || p + 8 > ipEnd) return this.fail(InvalidReason.BAD_OPTIONS);
          sawFragment = true;
          this.isFragment = true;
          next = b[p];
          const later = read16(b, p + 2) >> 3 !== 0;
          p += 8;
          if (later) {
            this.isLaterFragment = true;
            this.proto = next;
            this.l4Offset = p;
            this.payloadOffset = p;
            this.payloadLength = ipEnd - p;
            return 0;
          }
          break;
        }
        case 51: {
          // AH: length in 4-octet units minus 2 (RFC 4302 section 2.2)
          if (p + 2 > ipEnd) return this.fail(InvalidReason.BAD_OPTIONS);
          const hl = (b[p + 1] + 2) << 2;
          if (p + hl > ipEnd) return this.fail(InvalidReason.BAD_OPTIONS);
          next = b[p];
          p += hl;
          break;
        }
        case 50: // ESP: the rest is encrypted
        case 59: // no next header
          this.payloadLength = ipEnd - p;
          return 0;
        default:
          return this.parseL4(b, p, ipEnd, quoted);
      }
    }
    return this.fail(InvalidReason.BAD_OPTIONS);
  }

  private parseL4(b: Uint8Array, p: number, ipEnd: number, quoted: boolean): number {
    const proto = this.proto;
    if (proto === Proto.TCP) return this.parseTcp(b, p, ipEnd, quoted);
    if (proto === Proto.UDP) return this.parseUdp(b, p, ipEnd, quoted);
    if ((proto === Proto.ICMP && this.family === 4) || (proto === Proto.ICMPV6 && this.family === 6)) {
      return this.parseIcmp(b, p, ipEnd, quoted);
    }
    this.payloadLength = ipEnd - p;
    return 0;
  }

  /** True when the transport checksum should be and is wrong. */
  private badL4Checksum(b: Uint8Array, p: number, end: number): boolean {
    if (!this.verifyL4Checksum || this.isFragment) return false;
    return fold(l4Sum(b, this.l3Offset, this.family, this.proto, p, end)) !== 0xffff;
  }

  /** RFC 9293 header. Checks follow tcp_error() in nf_conntrack_proto_tcp.c. */
  private parseTcp(b: Uint8Array, p: number, ipEnd: number, quoted: boolean): number {
    const avail = ipEnd - p;
    // A quote needs only the ports and sequence number (RFC 792: 64 bits of the datagram).
    if (avail < (quoted ? 8 : 20)) return this.fail(InvalidReason.TRUNCATED);
    this.sport = read16(b, p);
    this.dport = read16(b, p + 2);
    this.tcpSeq = read32(b, p + 4);
    this.payloadOffset = ipEnd;
    if (avail < 20) {
      if (avail >= 12) this.tcpAck = this.tcpSackAck = read32(b, p + 8);
      if (avail >= 14) {
        this.tcpHeaderLength = (b[p + 12] >> 4) << 2;
        this.tcpFlags = b[p + 13];
      }
      if (avail >= 16) this.tcpWindow = read16(b, p + 14);
      return 0;
    }
    this.tcpAck = this.tcpSackAck = read32(b, p + 8);
    const doff = (b[p + 12] >> 4) << 2;
    this.tcpHeaderLength = doff;
    this.tcpFlags = b[p + 13];
    this.tcpWindow = read16(b, p + 14);
    if (doff < 20) return this.fail(InvalidReason.BAD_TCP_HEADER);
    let optEnd = p + doff;
    if (optEnd > ipEnd) {
      if (!quoted) return this.fail(InvalidReason.BAD_TCP_HEADER);
      optEnd = ipEnd; // options cut off by the quote: read what is there
    }
    if (!quoted) {
      if (this.badL4Checksum(b, p, ipEnd)) return this.fail(InvalidReason.BAD_L4_CHECKSUM);
      if (VALID_TCP_FLAGS[this.tcpFlags & TCP_FLAG_CLASS_MASK] === 0) return this.fail(InvalidReason.BAD_TCP_FLAGS);
    }
    if (!this.parseTcpOptions(b, p + 20, optEnd) && !quoted) return this.fail(InvalidReason.BAD_TCP_OPTIONS);
    this.payloadOffset = optEnd;
    this.payloadLength = ipEnd - optEnd;
    return 0;
  }

  /**
   * RFC 9293 section 3.1 options. Returns false when the list is malformed (a length below 2, or
   * an option running past the header). Known options with a wrong length are ignored, as Linux's
   * tcp_parse_options and conntrack's tcp_options do.
   */
  private parseTcpOptions(b: Uint8Array, start: number, end: number): boolean {
    let i = start;
    while (i < end) {
      const kind = b[i];
      if (kind === 0) return true; // EOL
      if (kind === 1) {
        i++; // NOP
        continue;
      }
      if (i + 2 > end) return false;
      const len = b[i + 1];
      if (len < 2 || i + len > end) return false;
      switch (kind) {
        case 2: // MSS (RFC 9293)
          if (len === 4) this.tcpMss = read16(b, i + 2);
          break;
        case 3: // window scale (RFC 7323 2.2)
          if (len === 3) this.tcpWscale = b[i + 2] > MAX_WSCALE ? MAX_WSCALE : b[i + 2];
          break;
        case 4: // SACK permitted (RFC 2018)
          if (len === 2) this.tcpSackPermitted = true;
          break;
        case 5: // SACK blocks: the highest right edge extends the ack (Linux tcp_sack)
          if (len >= 10 && (len - 2) % 8 === 0) {
            for (let j = i + 2; j < i + len; j += 8) {
              const right = read32(b, j + 4);
              if (((right - this.tcpSackAck) | 0) > 0) this.tcpSackAck = right;
            }
          }
          break;
        case 8: // timestamps (RFC 7323 3.2)
          if (len === 10) {
            this.tcpHasTimestamp = true;
            this.tcpTsVal = read32(b, i + 2);
            this.tcpTsEcr = read32(b, i + 6);
          }
          break;
        default:
          break;
      }
      i += len;
    }
    return true;
  }

  /** RFC 768 header. Checks follow udp_error() in nf_conntrack_proto_udp.c. */
  private parseUdp(b: Uint8Array, p: number, ipEnd: number, quoted: boolean): number {
    const avail = ipEnd - p;
    if (avail < 8) return this.fail(InvalidReason.TRUNCATED);
    this.sport = read16(b, p);
    this.dport = read16(b, p + 2);
    const ulen = read16(b, p + 4);
    this.payloadOffset = p + 8;
    if (quoted) {
      const n = (ulen < avail ? ulen : avail) - 8;
      this.payloadLength = n > 0 ? n : 0;
      return 0;
    }
    if (ulen < 8) return this.fail(InvalidReason.BAD_UDP_LENGTH);
    if (this.isFragment) {
      // The length covers the whole datagram; this first fragment holds only part of it.
      this.payloadLength = avail - 8;
      return 0;
    }
    // Bytes after ulen are trimmed like Linux's udp_rcv does; fewer bytes than ulen is malformed.
    if (ulen > avail) return this.fail(InvalidReason.BAD_UDP_LENGTH);
    this.payloadLength = ulen - 8;
    if (this.verifyL4Checksum) {
      const zero = b[p + 6] === 0 && b[p + 7] === 0;
      // Zero means "no checksum" on IPv4 only; RFC 8200 8.1 makes it mandatory on IPv6.
      if (zero ? this.family === 6 : this.badL4Checksum(b, p, p + ulen)) {
        return this.fail(InvalidReason.BAD_L4_CHECKSUM);
      }
    }
    return 0;
  }

  /** RFC 792 / RFC 4443 messages; errors quote the offending packet, parsed into `inner`. */
  private parseIcmp(b: Uint8Array, p: number, ipEnd: number, quoted: boolean): number {
    const avail = ipEnd - p;
    if (avail < 8) return this.fail(InvalidReason.TRUNCATED);
    const type = b[p];
    this.icmpType = type;
    this.icmpCode = b[p + 1];
    this.payloadOffset = p + 8;
    this.payloadLength = avail - 8;
    // IPv4: 0/8 echo, 13/14 timestamp, 15/16 information carry an id; 3 unreachable, 4 source
    // quench, 5 redirect, 11 time exceeded, 12 parameter problem are errors.
    // IPv6 (RFC 4443): 128/129 echo; 1-4 errors (unreachable, too big, time exceeded, parameter).
    const v4 = this.family === 4;
    const hasId = v4 ? type === 0 || type === 8 || (type >= 13 && type <= 16) : type === 128 || type === 129;
    const error = v4 ? type === 3 || type === 4 || type === 5 || type === 11 || type === 12 : type >= 1 && type <= 4;
    if (hasId) {
      this.icmpHasId = true;
      this.icmpId = read16(b, p + 4);
      this.icmpSeq = read16(b, p + 6);
    }
    this.isIcmpError = error;
    if (quoted) return 0; // the quote's own quote is never read
    if (this.badL4Checksum(b, p, ipEnd)) return this.fail(InvalidReason.BAD_L4_CHECKSUM);
    if (error) {
      const inner = this.inner;
      const r = inner.parseAt(b, p + 8, ipEnd - p - 8, true);
      // RFC 1122 3.2.2 / RFC 4443 2.4(e): no error about an error; and the quote is the same family.
      if (r !== 0 || inner.family !== this.family || inner.isIcmpError) {
        return this.fail(InvalidReason.BAD_ICMP_INNER);
      }
    }
    return 0;
  }
}


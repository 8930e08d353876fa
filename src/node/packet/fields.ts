/**
 * The parsed fields of one packet: the contract between the parser (which fills them, reusing one
 * object per packet) and its readers (conntrack, trackers, filter, NAT). Readers must not keep a
 * reference across packets: the next parse overwrites everything.
 *
 * Addresses are four host-order 32-bit words. IPv4 uses word 0 only (words 1..3 are 0), so that
 * the same numeric code hashes and compares v4 and v6 without building strings.
 */

/** IP protocol numbers (IANA). */
export const Proto = {
  ICMP: 1,
  TCP: 6,
  UDP: 17,
  ICMPV6: 58,
} as const;

/** TCP header flag bits, as in byte 13 of the TCP header. */
export const TcpFlag = {
  FIN: 0x01,
  SYN: 0x02,
  RST: 0x04,
  PSH: 0x08,
  ACK: 0x10,
  URG: 0x20,
  ECE: 0x40,
  CWR: 0x80,
} as const;

/**
 * Why a packet is INVALID. 0 means valid. Each reason is counted by the engine and becomes a
 * Prometheus label value (see invalidReasonName), so never renumber: only append.
 */
export const InvalidReason = {
  NONE: 0,
  /** Shorter than the fixed IP header, or the buffer ends inside a header. */
  TRUNCATED: 1,
  /** IP version nibble is neither 4 nor 6. */
  BAD_VERSION: 2,
  /** IPv4 header length below 20 bytes or beyond the packet. */
  BAD_IHL: 3,
  /** IP total / payload length disagrees with the bytes we were given. */
  BAD_LENGTH: 4,
  /** IPv4 header checksum wrong. */
  BAD_IP_CHECKSUM: 5,
  /** Malformed IPv4 option or IPv6 extension header chain. */
  BAD_OPTIONS: 6,
  /** TCP data offset below 5 words or beyond the segment. */
  BAD_TCP_HEADER: 7,
  /** Malformed TCP option (length 0/1, runs past the header). */
  BAD_TCP_OPTIONS: 8,
  /** Invalid TCP flag combination (e.g. SYN+FIN, SYN+RST, no flags). */
  BAD_TCP_FLAGS: 9,
  /** UDP length field disagrees with the packet. */
  BAD_UDP_LENGTH: 10,
  /** L4 checksum wrong (when verified). */
  BAD_L4_CHECKSUM: 11,
  /** ICMP error whose quoted packet cannot be parsed, or an error quoting an error. */
  BAD_ICMP_INNER: 12,
  /** Protocol the tracker does not accept in this state (conntrack reason, set by trackers). */
  TCP_STATE: 13,
  /** TCP segment outside the tracked window (conntrack reason). */
  TCP_WINDOW: 14,
  /** ICMP error quoting no tracked flow, or reply-type ICMP without a request (conntrack reason). */
  ICMP_UNTRACKED: 15,
  /** Table full and nothing could be early-dropped (conntrack reason). */
  TABLE_FULL: 16,
  /** A fragment other than the first: no transport header to track (the kernel reassembles first). */
  FRAGMENT: 17,
  /** Transport protocol conntrack does not track in this direction (e.g. a SYN/ACK opening a flow). */
  NO_TUPLE: 18,
} as const;
export type InvalidReasonCode = (typeof InvalidReason)[keyof typeof InvalidReason];

const reasonNames: string[] = [];
for (const [name, code] of Object.entries(InvalidReason)) reasonNames[code] = name.toLowerCase();
/** Stable lower-case name of an invalid reason, for logs and metric labels. */
export function invalidReasonName(code: number): string {
  return reasonNames[code] ?? `reason_${code}`;
}

/** Fields filled by the parser. Numbers are host order. */
export interface PacketFields {
  /** 0 when the packet parsed cleanly; otherwise an InvalidReason code. */
  invalid: number;
  /** 4 or 6 (0 when not even the version could be read). */
  family: number;
  /** Bytes of the packet actually present (may exceed the IP total length when padded). */
  captureLength: number;
  /** IPv4 total length, or 40 + IPv6 payload length. */
  ipLength: number;
  /** Offset of the transport header within the buffer (after IPv4 options / IPv6 ext headers). */
  l4Offset: number;
  /** Transport protocol (after IPv6 extension headers). */
  proto: number;
  src: Uint32Array;
  dst: Uint32Array;
  ttl: number;
  /** True for any fragment (offset > 0 or more-fragments set, or an IPv6 fragment header). */
  isFragment: boolean;
  /** True for a fragment other than the first: it carries no transport header. */
  isLaterFragment: boolean;
  sport: number;
  dport: number;
  tcpFlags: number;
  tcpSeq: number;
  tcpAck: number;
  /** Raw (unscaled) window field. */
  tcpWindow: number;
  /** TCP header length in bytes. */
  tcpHeaderLength: number;
  /** MSS option value, 0 when absent. */
  tcpMss: number;
  /** Window scale option shift, -1 when absent. */
  tcpWscale: number;
  tcpSackPermitted: boolean;
  tcpHasTimestamp: boolean;
  tcpTsVal: number;
  tcpTsEcr: number;
  /** Transport payload length in bytes (TCP/UDP data). */
  payloadLength: number;
  /** Offset of the transport payload within the buffer. */
  payloadOffset: number;
  icmpType: number;
  icmpCode: number;
  /** ICMP/ICMPv6 echo identifier and sequence. */
  icmpId: number;
  icmpSeq: number;
  /** True for ICMP/ICMPv6 error messages (dest unreachable, time exceeded, ...). */
  isIcmpError: boolean;
}

/**
 * Packet builders for tests, the demo traffic generator and the REJECT target. They produce
 * valid packets (correct lengths and checksums) as Buffers. Not the hot path, except
 * writeTcpInto, which rewrites a template in place without allocating.
 */

import { parseAddress } from './address.js';
import {
  computeL4ChecksumRaw,
  fixIpv4HeaderChecksum,
  updateChecksumAt16,
  updateChecksumAt32,
} from './checksum.js';
import { InvalidReason, Proto, TcpFlag } from './fields.js';
import type { PacketView } from './view.js';

/** A builder was asked for a packet that cannot exist. */
export class BuildError extends Error {
  readonly code = 'PACKET_BUILD_INVALID';
  constructor(message: string) {
    super(message);
    this.name = 'BuildError';
  }
}

/** An address as text ("192.0.2.1", "2001:db8::1") or as family + host-order words. */
export type AddressInput = string | { family: number; words: ArrayLike<number> };

export interface IpBuildOptions {
  src: AddressInput;
  dst: AddressInput;
  /** TTL / hop limit, default 64 (Linux's net.ipv4.ip_default_ttl). */
  ttl?: number;
  /** IPv4 identification, or the IPv6 flow label; default 0. */
  id?: number;
  /** IPv4 TOS / IPv6 traffic class; default 0. */
  tos?: number;
  /** IPv4 DF bit; default false. */
  dontFragment?: boolean;
  /** IPv4 MF bit; default false. */
  moreFragments?: boolean;
  /** IPv4 fragment offset in bytes (a multiple of 8); default 0. */
  fragmentOffset?: number;
  /** Raw IPv4 option bytes, padded with EOL to a multiple of 4. */
  ipOptions?: Uint8Array;
  /**
   * IPv6 extension headers in order: `body` is everything after the next-header and length
   * bytes; the builder fills both (fragment: 6 bytes of body; AH: 4-byte units; others: 8).
   */
  extHeaders?: ReadonlyArray<{ type: number; body: Uint8Array }>;
}

export interface TcpBuildOptions extends IpBuildOptions {
  sport: number;
  dport: number;
  seq?: number;
  ack?: number;
  /** TcpFlag bits; default SYN. */
  flags?: number;
  window?: number;
  urgent?: number;
  mss?: number;
  wscale?: number;
  sackPermitted?: boolean;
  timestamps?: { val: number; ecr: number };
  sackBlocks?: ReadonlyArray<readonly [number, number]>;
  /** Raw option bytes appended after the others. */
  rawOptions?: Uint8Array;
  payload?: Uint8Array | string;
  /** Payload of this many zero bytes, when `payload` is not given. */
  payloadLength?: number;
}

export interface UdpBuildOptions extends IpBuildOptions {
  sport: number;
  dport: number;
  payload?: Uint8Array | string;
  payloadLength?: number;
  /** IPv4 only: send checksum 0 ("none", RFC 768). Default false. */
  noChecksum?: boolean;
}

export interface IcmpEchoBuildOptions extends IpBuildOptions {
  id: number;
  seq: number;
  /** Echo reply (0 / 129) instead of request (8 / 128). */
  reply?: boolean;
  payload?: Uint8Array | string;
  payloadLength?: number;
}

export interface IcmpErrorBuildOptions extends IpBuildOptions {
  /** ICMP type, e.g. 3 / 11 for IPv4 or 1 / 3 for IPv6. */
  type: number;
  code: number;
  /** The offending packet; cut to fit maxLength. */
  quote: Uint8Array;
  /** The 32-bit field after the checksum (next-hop MTU, pointer...); default 0. */
  rest?: number;
  /** Whole packet at most this long; default 576 (IPv4, RFC 1812 4.3.2.3) or 1280 (IPv6, RFC 4443 2.4(c)). */
  maxLength?: number;
}

interface Resolved {
  family: 4 | 6;
  words: ArrayLike<number>;
}

function resolve(a: AddressInput, what: string): Resolved {
  if (typeof a === 'string') return parseAddress(a);
  if (a.family !== 4 && a.family !== 6) throw new BuildError(`${what} address family must be 4 or 6, got ${a.family}`);
  return { family: a.family, words: a.words };
}

function bytesOf(payload: Uint8Array | string | undefined, length: number | undefined): Uint8Array {
  if (typeof payload === 'string') return Buffer.from(payload, 'utf8');
  if (payload) return payload;
  return Buffer.alloc(length ?? 0);
}

function put16(b: Uint8Array, at: number, v: number): void {
  b[at] = (v >>> 8) & 0xff;
  b[at + 1] = v & 0xff;
}

function put32(b: Uint8Array, at: number, v: number): void {
  b[at] = (v >>> 24) & 0xff;
  b[at + 1] = (v >>> 16) & 0xff;
  b[at + 2] = (v >>> 8) & 0xff;
  b[at + 3] = v & 0xff;
}

/** The family of a src/dst pair, refusing a mix. */
export function familyOf(src: AddressInput, dst: AddressInput): 4 | 6 {
  const s = resolve(src, 'source');
  const d = resolve(dst, 'destination');
  if (s.family !== d.family) {
    throw new BuildError(`source is IPv${s.family} but destination is IPv${d.family}: use one family for both`);
  }
  return s.family;
}

/** Wraps a transport segment in an IPv4/IPv6 header and fills every checksum. */
export function buildIp(o: IpBuildOptions, proto: number, l4: Uint8Array): Buffer {
  return assemble(o, proto, l4, true);
}

function assemble(o: IpBuildOptions, proto: number, l4: Uint8Array, l4Checksum: boolean): Buffer {
  const s = resolve(o.src, 'source');
  const d = resolve(o.dst, 'destination');
  if (s.family !== d.family) {
    throw new BuildError(`source is IPv${s.family} but destination is IPv${d.family}: use one family for both`);
  }
  const ttl = o.ttl ?? 64;
  let pkt: Buffer;
  let l4Offset: number;
  let laterFragment = false;
  if (s.family === 4) {
    const opts = o.ipOptions ?? new Uint8Array(0);
    const hl = 20 + ((opts.length + 3) & ~3);
    if (hl > 60) throw new BuildError(`IPv4 options of ${opts.length} bytes exceed the 40 a header can hold`);
    const total = hl + l4.length;
    if (total > 0xffff) throw new BuildError(`IPv4 packet of ${total} bytes exceeds 65535`);
    const fo = o.fragmentOffset ?? 0;
    if (fo % 8 !== 0 || fo > 0xfff8) throw new BuildError(`fragment offset ${fo} must be a multiple of 8 below 65536`);
    laterFragment = fo > 0;
    pkt = Buffer.alloc(total);
    pkt[0] = 0x40 | (hl >> 2);
    pkt[1] = o.tos ?? 0;
    put16(pkt, 2, total);
    put16(pkt, 4, o.id ?? 0);
    put16(pkt, 6, (o.dontFragment ? 0x4000 : 0) | (o.moreFragments ? 0x2000 : 0) | (fo >> 3));
    pkt[8] = ttl;
    pkt[9] = proto;
    put32(pkt, 12, s.words[0]);
    put32(pkt, 16, d.words[0]);
    pkt.set(opts, 20);
    l4Offset = hl;
    pkt.set(l4, l4Offset);
    fixIpv4HeaderChecksum(pkt, 0);
  } else {
    const exts = o.extHeaders ?? [];
    let extLen = 0;
    for (const e of exts) extLen += 2 + e.body.length;
    const total = 40 + extLen + l4.length;
    if (total - 40 > 0xffff) throw new BuildError(`IPv6 payload of ${total - 40} bytes exceeds 65535`);
    pkt = Buffer.alloc(total);
    const tc = o.tos ?? 0;
    put32(pkt, 0, ((6 << 28) | (tc << 20) | ((o.id ?? 0) & 0xfffff)) >>> 0);
    put16(pkt, 4, total - 40);
    pkt[6] = exts.length > 0 ? exts[0].type : proto;
    pkt[7] = ttl;
    for (let w = 0; w < 4; w++) {
      put32(pkt, 8 + 4 * w, s.words[w]);
      put32(pkt, 24 + 4 * w, d.words[w]);
    }
    let p = 40;
    for (let i = 0; i < exts.length; i++) {
      const e = exts[i];
      const len = 2 + e.body.length;
      pkt[p] = i + 1 < exts.length ? exts[i + 1].type : proto;
      if (e.type === 44) {
        if (len !== 8) throw new BuildError('an IPv6 fragment header body is exactly 6 bytes');
        pkt[p + 1] = 0;
        if ((((e.body[0] << 8) | e.body[1]) >> 3) !== 0) laterFragment = true;
      } else if (e.type === 51) {
        if (len % 8 !== 0) throw new BuildError('an IPv6 AH header is a multiple of 8 bytes');
        pkt[p + 1] = len / 4 - 2;
      } else {
        if (len % 8 !== 0) throw new BuildError(`IPv6 extension header ${e.type} must be a multiple of 8 bytes`);
        pkt[p + 1] = len / 8 - 1;
      }
      pkt.set(e.body, p + 2);
      p += len;
    }
    l4Offset = p;
    pkt.set(l4, l4Offset);
  }
  const ckField = proto === Proto.TCP ? 16 : proto === Proto.UDP ? 6 : 2;
  if (l4Checksum && !laterFragment) {
    const c = computeL4ChecksumRaw(pkt, 0, s.family, proto, l4Offset, pkt.length);
    if (c >= 0) put16(pkt, l4Offset + ckField, c);
  }
  return pkt;
}

function tcpOptionBytes(o: TcpBuildOptions): Uint8Array {
  const out: number[] = [];
  if (o.mss !== undefined) out.push(2, 4, (o.mss >>> 8) & 0xff, o.mss & 0xff);
  // The order Linux sends on a SYN: MSS, SACK-permitted + timestamps, NOP + window scale.
  if (o.sackPermitted && o.timestamps) out.push(4, 2);
  else if (o.timestamps) out.push(1, 1);
  if (o.timestamps) {
    const { val, ecr } = o.timestamps;
    out.push(8, 10, (val >>> 24) & 255, (val >>> 16) & 255, (val >>> 8) & 255, val & 255);
    out.push((ecr >>> 24) & 255, (ecr >>> 16) & 255, (ecr >>> 8) & 255, ecr & 255);
  } else if (o.sackPermitted) out.push(1, 1, 4, 2);
  if (o.wscale !== undefined) out.push(1, 3, 3, o.wscale & 0xff);
  if (o.sackBlocks && o.sackBlocks.length > 0) {
    out.push(1, 1, 5, 2 + 8 * o.sackBlocks.length);
    for (const [l, r] of o.sackBlocks) {
      out.push((l >>> 24) & 255, (l >>> 16) & 255, (l >>> 8) & 255, l & 255);
      out.push((r >>> 24) & 255, (r >>> 16) & 255, (r >>> 8) & 255, r & 255);
    }
  }
  if (o.rawOptions) out.push(...o.rawOptions);
  while (out.length % 4 !== 0) out.push(0);
  if (out.length > 40) throw new BuildError(`TCP options of ${out.length} bytes exceed the 40 a header can hold`);
  return Uint8Array.from(out);
}

/** A TCP segment in IPv4 or IPv6 (family from the addresses). */
export function buildTcp(o: TcpBuildOptions): Buffer {
  const opts = tcpOptionBytes(o);
  const payload = bytesOf(o.payload, o.payloadLength);
  const hl = 20 + opts.length;
  const l4 = Buffer.alloc(hl + payload.length);
  put16(l4, 0, o.sport);
  put16(l4, 2, o.dport);
  put32(l4, 4, o.seq ?? 0);
  put32(l4, 8, o.ack ?? 0);
  l4[12] = (hl >> 2) << 4;
  l4[13] = o.flags ?? TcpFlag.SYN;
  put16(l4, 14, o.window ?? 65535);
  put16(l4, 18, o.urgent ?? 0);
  l4.set(opts, 20);
  l4.set(payload, hl);
  return buildIp(o, Proto.TCP, l4);
}

/** A UDP datagram in IPv4 or IPv6. */
export function buildUdp(o: UdpBuildOptions): Buffer {
  const payload = bytesOf(o.payload, o.payloadLength);
  const l4 = Buffer.alloc(8 + payload.length);
  put16(l4, 0, o.sport);
  put16(l4, 2, o.dport);
  put16(l4, 4, l4.length);
  l4.set(payload, 8);
  if (o.noChecksum && familyOf(o.src, o.dst) === 6) {
    throw new BuildError('IPv6 UDP requires a checksum (RFC 8200 8.1): drop noChecksum');
  }
  return assemble(o, Proto.UDP, l4, !o.noChecksum);
}

/** An ICMP echo request/reply (IPv4) or ICMPv6 echo (IPv6). */
export function buildIcmpEcho(o: IcmpEchoBuildOptions): Buffer {
  const family = familyOf(o.src, o.dst);
  const payload = bytesOf(o.payload, o.payloadLength);
  const l4 = Buffer.alloc(8 + payload.length);
  l4[0] = family === 4 ? (o.reply ? 0 : 8) : o.reply ? 129 : 128;
  put16(l4, 4, o.id);
  put16(l4, 6, o.seq);
  l4.set(payload, 8);
  return buildIp(o, family === 4 ? Proto.ICMP : Proto.ICMPV6, l4);
}

/** An ICMP / ICMPv6 error quoting `quote`, cut so the whole packet fits maxLength. */
export function buildIcmpError(o: IcmpErrorBuildOptions): Buffer {
  const family = familyOf(o.src, o.dst);
  const hdr = family === 4 ? 20 + (((o.ipOptions?.length ?? 0) + 3) & ~3) : 40;
  const max = o.maxLength ?? (family === 4 ? 576 : 1280);
  const room = Math.max(0, max - hdr - 8);
  const quote = o.quote.length > room ? o.quote.subarray(0, room) : o.quote;
  const l4 = Buffer.alloc(8 + quote.length);
  l4[0] = o.type;
  l4[1] = o.code;
  put32(l4, 4, o.rest ?? 0);
  l4.set(quote, 8);
  return buildIp(o, family === 4 ? Proto.ICMP : Proto.ICMPV6, l4);
}

function isMulticastOrBroadcast(family: number, w: ArrayLike<number>): boolean {
  if (family === 4) return w[0] >>> 28 === 0xe || w[0] >>> 0 === 0xffffffff;
  return w[0] >>> 24 === 0xff;
}

function isUnspecified(family: number, w: ArrayLike<number>): boolean {
  return family === 4 ? w[0] === 0 : (w[0] | w[1] | w[2] | w[3]) === 0;
}

/**
 * The TCP RST that answers the segment in `view`, as Linux's nf_send_reset / nf_send_reset6 build
 * it (nf_reject_ipv4.c, nf_reject_ip_tcphdr_put): addresses and ports swapped; if the segment had
 * ACK, seq = its ack and flags RST; otherwise seq 0, ack = seq + payload + SYN + FIN and flags
 * RST|ACK. Returns null where Linux sends nothing: not a parsed TCP segment, a RST, a later
 * fragment, or a multicast/broadcast destination.
 */
export function buildTcpReset(view: PacketView, ttl = 64): Buffer | null {
  if (view.proto !== Proto.TCP || view.isLaterFragment || view.tcpHeaderLength < 20) return null;
  // Like Linux, scans with odd flags or options still get their RST; a damaged header does not.
  const r = view.invalid;
  if (r !== 0 && r !== InvalidReason.BAD_TCP_FLAGS && r !== InvalidReason.BAD_TCP_OPTIONS) return null;
  const payload = view.ipEnd - view.l4Offset - view.tcpHeaderLength;
  if (payload < 0) return null;
  if (view.tcpFlags & TcpFlag.RST) return null;
  if (isMulticastOrBroadcast(view.family, view.dst)) return null;
  const fam = view.family;
  const hadAck = (view.tcpFlags & TcpFlag.ACK) !== 0;
  const syn = view.tcpFlags & TcpFlag.SYN ? 1 : 0;
  const fin = view.tcpFlags & TcpFlag.FIN ? 1 : 0;
  return buildTcp({
    src: { family: fam, words: view.dst },
    dst: { family: fam, words: view.src },
    ttl,
    dontFragment: true,
    sport: view.dport,
    dport: view.sport,
    seq: hadAck ? view.tcpAck : 0,
    ack: hadAck ? 0 : (view.tcpSeq + payload + syn + fin) >>> 0,
    flags: hadAck ? TcpFlag.RST : TcpFlag.RST | TcpFlag.ACK,
    window: 0,
  });
}

/**
 * ICMP destination unreachable (IPv4 type 3 / ICMPv6 type 1) with `code`, quoting as much of the
 * packet in `view` as fits 576 / 1280 bytes. Returns null where RFC 1122 3.2.2 / RFC 4443 2.4(e)
 * forbid an error: the packet is itself an ICMP error, a later fragment, or sent to or from a
 * multicast, broadcast or unspecified address; also when not even the IP header parsed.
 * `options.mtu` fills the next-hop MTU of IPv4 code 4 (fragmentation needed).
 */
export function buildIcmpUnreachable(
  view: PacketView,
  code: number,
  options: { ttl?: number; mtu?: number } = {},
): Buffer | null {
  const fam = view.family;
  if (fam !== 4 && fam !== 6) return null;
  if (view.ipEnd - view.l3Offset < (fam === 4 ? 20 : 40) || view.l4Offset <= view.l3Offset) return null;
  if (view.isIcmpError || view.isLaterFragment) return null;
  if (isMulticastOrBroadcast(fam, view.dst) || isMulticastOrBroadcast(fam, view.src)) return null;
  if (isUnspecified(fam, view.src)) return null;
  return buildIcmpError({
    src: { family: fam, words: view.dst },
    dst: { family: fam, words: view.src },
    ttl: options.ttl ?? 64,
    type: fam === 4 ? 3 : 1,
    code,
    // RFC 1191: "fragmentation needed" (code 4) carries the next-hop MTU in the low 16 bits.
    rest: options.mtu === undefined ? 0 : options.mtu & 0xffff,
    quote: view.buffer.subarray(view.l3Offset, view.ipEnd),
  });
}

/**
 * Rewrites ports, seq, ack and flags of a TCP template made by buildTcp (IPv4 or IPv6 without
 * extension headers) at `offset`, fixing the checksum incrementally. Allocation-free, for traffic
 * generators that send millions of segments.
 */
export function writeTcpInto(
  buf: Uint8Array,
  offset: number,
  sport: number,
  dport: number,
  seq: number,
  ack: number,
  flags: number,
): void {
  const l4 = offset + ((buf[offset] >> 4) === 4 ? (buf[offset] & 15) << 2 : 40);
  const ck = l4 + 16;
  const oldPorts = ((buf[l4] << 24) | (buf[l4 + 1] << 16) | (buf[l4 + 2] << 8) | buf[l4 + 3]) >>> 0;
  const newPorts = (((sport & 0xffff) << 16) | (dport & 0xffff)) >>> 0;
  updateChecksumAt32(buf, ck, oldPorts, newPorts);
  put32(buf, l4, newPorts);
  const oldSeq = ((buf[l4 + 4] << 24) | (buf[l4 + 5] << 16) | (buf[l4 + 6] << 8) | buf[l4 + 7]) >>> 0;
  updateChecksumAt32(buf, ck, oldSeq, seq >>> 0);
  put32(buf, l4 + 4, seq);
  const oldAck = ((buf[l4 + 8] << 24) | (buf[l4 + 9] << 16) | (buf[l4 + 10] << 8) | buf[l4 + 11]) >>> 0;
  updateChecksumAt32(buf, ck, oldAck, ack >>> 0);
  put32(buf, l4 + 8, ack);
  const oldWord = (buf[l4 + 12] << 8) | buf[l4 + 13];
  const newWord = (oldWord & 0xff00) | (flags & 0xff);
  updateChecksumAt16(buf, ck, oldWord, newWord);
  buf[l4 + 13] = flags & 0xff;
}

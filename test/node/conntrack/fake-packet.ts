// Plain PacketFields objects for conntrack unit tests (the engine tests use real bytes).
import { Proto, TcpFlag, type PacketFields } from '../../../src/node/packet/fields.js';
import { parseAddress } from '../../../src/node/packet/address.js';

export interface FakeSpec {
  src: string;
  dst: string;
  proto?: number;
  sport?: number;
  dport?: number;
  flags?: number;
  seq?: number;
  ack?: number;
  window?: number;
  wscale?: number;
  payload?: number;
  icmpType?: number;
  icmpId?: number;
  inner?: PacketFields;
}

export function fakePacket(s: FakeSpec): PacketFields & { inner?: PacketFields } {
  const a = parseAddress(s.src);
  const b = parseAddress(s.dst);
  const proto = s.proto ?? Proto.TCP;
  const icmp = proto === Proto.ICMP || proto === Proto.ICMPV6;
  const icmpType = s.icmpType ?? 8;
  const isErr = icmp && (proto === Proto.ICMP ? [3, 4, 5, 11, 12].includes(icmpType) : icmpType < 128);
  return {
    invalid: 0,
    family: a.family,
    captureLength: 60,
    ipLength: 40 + (s.payload ?? 0),
    l4Offset: 20,
    proto,
    src: a.words,
    dst: b.words,
    ttl: 64,
    isFragment: false,
    isLaterFragment: false,
    sport: s.sport ?? 0,
    dport: s.dport ?? 0,
    tcpFlags: s.flags ?? TcpFlag.SYN,
    tcpSeq: s.seq ?? 1000,
    tcpAck: s.ack ?? 0,
    tcpWindow: s.window ?? 65535,
    tcpHeaderLength: 20,
    tcpMss: 0,
    tcpWscale: s.wscale ?? -1,
    tcpSackPermitted: false,
    tcpHasTimestamp: false,
    tcpTsVal: 0,
    tcpTsEcr: 0,
    payloadLength: s.payload ?? 0,
    payloadOffset: 40,
    icmpType: icmp ? icmpType : 0,
    icmpCode: 0,
    icmpId: s.icmpId ?? 0,
    icmpSeq: 0,
    isIcmpError: isErr,
    inner: s.inner,
  };
}

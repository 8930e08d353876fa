/**
 * Packet parsing and rewriting: the public surface of src/node/packet.
 *
 * - fields.ts: the contract (PacketFields, Proto, TcpFlag, InvalidReason).
 * - view.ts: PacketView, the allocation-free parser (one per packet path, reused).
 * - checksum.ts: RFC 1071 sums and RFC 1624 incremental updates.
 * - rewrite.ts: NAT's in-place address/port/id rewrites with checksum fix-ups.
 * - build.ts: packet builders for tests, traffic generation and REJECT answers.
 * - address.ts: text <-> words for addresses and prefixes (config, logs).
 *
 * Error codes (the `code` of each thrown error; the hot path never throws):
 *   ADDRESS_INVALID       AddressError: text is not an IPv4/IPv6 address.
 *   PREFIX_INVALID        PrefixError: "/n" out of range for the family.
 *   CIDR_HOST_BITS        HostBitsError: host bits set, only with parseCidr(text, { strict: true }).
 *   PACKET_BUILD_INVALID  BuildError: a builder was asked for an impossible packet.
 */
export * from './fields.js';
export {
  AddressError,
  HostBitsError,
  PrefixError,
  formatAddress,
  parseAddress,
  parseCidr,
  prefixMask,
} from './address.js';
export type { Address, Cidr, Family, ParseCidrOptions } from './address.js';
export { PacketView } from './view.js';
export {
  checksumUpdate16,
  checksumUpdate32,
  computeIpv4HeaderChecksum,
  computeL4ChecksumRaw,
  fixIpv4HeaderChecksum,
  fold,
  internetChecksum,
  l4ChecksumFieldOffset,
  l4Sum,
  pseudoHeaderSum,
  sumWords,
  updateChecksumAt16,
  updateChecksumAt32,
} from './checksum.js';
export {
  computeL4Checksum,
  refreshIpv4HeaderChecksum,
  refreshL4Checksum,
  setDestinationAddress,
  setDestinationPort,
  setIcmpEchoId,
  setSourceAddress,
  setSourcePort,
} from './rewrite.js';
export {
  BuildError,
  buildIcmpEcho,
  buildIcmpError,
  buildIcmpUnreachable,
  buildIp,
  buildTcp,
  buildTcpReset,
  buildUdp,
  familyOf,
  writeTcpInto,
} from './build.js';
export type {
  AddressInput,
  IcmpEchoBuildOptions,
  IcmpErrorBuildOptions,
  IpBuildOptions,
  TcpBuildOptions,
  UdpBuildOptions,
} from './build.js';

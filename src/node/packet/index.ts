/**
 * Packet parsing and rewriting: the public surface of src/node/packet.
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

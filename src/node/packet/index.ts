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

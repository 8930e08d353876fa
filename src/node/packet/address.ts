/**
 * Text <-> numeric IP addresses and prefixes, in the representation of fields.ts: four host-order
 * 32-bit words, IPv4 in word 0 with words 1..3 zero. Used by config loading, the control API and
 * logs: not the hot path, so these functions may allocate.
 */

/** 4 or 6. */
export type Family = 4 | 6;

export interface Address {
  family: Family;
  words: Uint32Array;
}

export interface Cidr {
  family: Family;
  /** The network address, host bits cleared. */
  words: Uint32Array;
  /** Prefix length: 0..32 for IPv4, 0..128 for IPv6. */
  prefix: number;
  /** True when the text had host bits set (e.g. "10.0.0.1/8") and they were cleared. */
  hostBitsMasked: boolean;
}

/** Text that is not an IPv4 or IPv6 address. */
export class AddressError extends Error {
  readonly code = 'ADDRESS_INVALID';
  readonly text: string;
  constructor(text: string, why: string) {
    super(
      `"${text}" is not an IP address: ${why}. Write IPv4 as four decimal bytes (192.0.2.1) ` +
        `or IPv6 as hex groups (2001:db8::1).`,
    );
    this.name = 'AddressError';
    this.text = text;
  }
}

/** A "/prefix" that is not a number in range for the family. */
export class PrefixError extends Error {
  readonly code = 'PREFIX_INVALID';
  readonly text: string;
  constructor(text: string, why: string) {
    super(`"${text}" has a bad prefix length: ${why}. Use /0../32 for IPv4 or /0../128 for IPv6.`);
    this.name = 'PrefixError';
    this.text = text;
  }
}

/** Host bits set in a CIDR, raised only when parseCidr is asked to be strict. */
export class HostBitsError extends Error {
  readonly code = 'CIDR_HOST_BITS';
  readonly text: string;
  constructor(text: string, network: string) {
    super(`"${text}" has host bits set beyond its prefix; did you mean ${network}?`);
    this.name = 'HostBitsError';
    this.text = text;
  }
}

const DEC_BYTE = /^(0|[1-9][0-9]{0,2})$/;
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

/** Parses dotted-quad IPv4; returns the host-order value or -1. */
function parseV4(text: string): number {
  const parts = text.split('.');
  if (parts.length !== 4) return -1;
  let v = 0;
  for (const p of parts) {
    // Leading zeros are refused: inet_aton reads them as octal, most other tools as decimal.
    if (!DEC_BYTE.test(p)) return -1;
    const n = Number(p);
    if (n > 255) return -1;
    v = v * 256 + n;
  }
  return v >>> 0;
}

/** Parses IPv6 text (RFC 4291 section 2.2, including a trailing dotted quad) into 8 groups. */
function parseV6(text: string, orig: string): number[] {
  if (text.includes('%')) throw new AddressError(orig, 'zone identifiers (%eth0) are not accepted here');
  const dbl = text.indexOf('::');
  if (dbl !== text.lastIndexOf('::')) throw new AddressError(orig, '"::" may appear only once');
  const groupsOf = (s: string): number[] => {
    if (s === '') return [];
    const out: number[] = [];
    const parts = s.split(':');
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i];
      if (i === parts.length - 1 && p.includes('.')) {
        const v4 = parseV4(p);
        if (v4 < 0) throw new AddressError(orig, `"${p}" is not a valid embedded IPv4 address`);
        out.push(v4 >>> 16, v4 & 0xffff);
      } else if (HEX_GROUP.test(p)) {
        out.push(parseInt(p, 16));
      } else {
        throw new AddressError(orig, p === '' ? 'empty group' : `"${p}" is not a hex group of 1-4 digits`);
      }
    }
    return out;
  };
  if (dbl < 0) {
    const g = groupsOf(text);
    if (g.length !== 8) throw new AddressError(orig, `expected 8 groups, found ${g.length}`);
    return g;
  }
  const head = groupsOf(text.slice(0, dbl));
  const tail = groupsOf(text.slice(dbl + 2));
  // RFC 4291: "::" stands for one or more groups of zeros, so at most 7 explicit groups.
  if (head.length + tail.length > 7) throw new AddressError(orig, 'too many groups around "::"');
  const zeros = new Array<number>(8 - head.length - tail.length).fill(0);
  return [...head, ...zeros, ...tail];
}

/** Parses "192.0.2.1" or "2001:db8::1". Throws AddressError. */
export function parseAddress(text: string): Address {
  const t = String(text).trim();
  if (t === '') throw new AddressError(text, 'empty');
  const words = new Uint32Array(4);
  if (t.includes(':')) {
    const g = parseV6(t, text);
    for (let i = 0; i < 4; i++) words[i] = ((g[2 * i] << 16) | g[2 * i + 1]) >>> 0;
    return { family: 6, words };
  }
  const v4 = parseV4(t);
  if (v4 < 0) throw new AddressError(text, 'expected four decimal numbers 0-255 separated by dots');
  words[0] = v4;
  return { family: 4, words };
}

/** The netmask of a prefix as four host-order words (IPv4 in word 0). */
export function prefixMask(family: Family, prefix: number): Uint32Array {
  const max = family === 4 ? 32 : 128;
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max) {
    throw new PrefixError(`/${prefix}`, `must be an integer from 0 to ${max}`);
  }
  const m = new Uint32Array(4);
  let left = prefix;
  for (let i = 0; i < (family === 4 ? 1 : 4); i++) {
    const bits = Math.min(32, left);
    m[i] = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
    left -= bits;
  }
  return m;
}

export interface ParseCidrOptions {
  /** Refuse host bits beyond the prefix (HostBitsError) instead of clearing them. Default false. */
  strict?: boolean;
}

/**
 * Parses "10.0.0.0/8", "2001:db8::/32", or a bare address (a host: /32 or /128).
 *
 * Host bits beyond the prefix ("10.0.0.1/8") are cleared and reported in `hostBitsMasked`, as
 * iptables-restore does (it accepts the rule and lists it as 10.0.0.0/8), so a ruleset that loads
 * there loads here; pass { strict: true } to refuse it instead.
 */
export function parseCidr(text: string, options: ParseCidrOptions = {}): Cidr {
  const t = String(text).trim();
  const slash = t.indexOf('/');
  const addrText = slash < 0 ? t : t.slice(0, slash);
  const { family, words } = parseAddress(addrText);
  const max = family === 4 ? 32 : 128;
  let prefix = max;
  if (slash >= 0) {
    const p = t.slice(slash + 1);
    if (!/^[0-9]{1,3}$/.test(p)) throw new PrefixError(text, `"${p}" is not a number`);
    prefix = Number(p);
    if (prefix > max) throw new PrefixError(text, `${prefix} exceeds ${max} for IPv${family}`);
  }
  const mask = prefixMask(family, prefix);
  let hostBitsMasked = false;
  for (let i = 0; i < 4; i++) {
    const masked = (words[i] & mask[i]) >>> 0;
    if (masked !== words[i]) hostBitsMasked = true;
    words[i] = masked;
  }
  if (hostBitsMasked && options.strict) {
    throw new HostBitsError(text, `${formatAddress(family, words)}/${prefix}`);
  }
  return { family, words, prefix, hostBitsMasked };
}

/** Formats IPv4 dotted-quad or IPv6 in RFC 5952 canonical form (lower case, longest zero run as "::"). */
export function formatAddress(family: number, words: ArrayLike<number>): string {
  if (family === 4) {
    const v = words[0] >>> 0;
    return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
  }
  const g: number[] = [];
  for (let i = 0; i < 4; i++) g.push((words[i] >>> 16) & 0xffff, words[i] & 0xffff);
  // RFC 5952 section 5: IPv4-mapped addresses keep the dotted quad.
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    return `::ffff:${formatAddress(4, [words[3]])}`;
  }
  // RFC 5952 section 4.2: compress the longest run of two or more zero groups, the first on a tie.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (a: number[]): string => a.map((x) => x.toString(16)).join(':');
  if (best < 0) return hex(g);
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

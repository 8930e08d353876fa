/**
 * Parsers for the textual values of a ruleset (ports, rates, marks, TCP flags, ICMP types, times,
 * interface names). Each throws ValueSyntaxError with a message that says what to write instead;
 * check.ts attaches the JSON path. Config-time only: these may allocate.
 */
import { Proto, TcpFlag } from '../packet/fields.js';
import { ValueSyntaxError } from './errors.js';

const fail = (message: string): never => {
  throw new ValueSyntaxError(message);
};

function parseIntIn(text: string, lo: number, hi: number, what: string): number {
  const t = text.trim();
  let n = NaN;
  if (/^[0-9]+$/.test(t)) n = Number(t);
  else if (/^0x[0-9a-fA-F]+$/.test(t)) n = parseInt(t.slice(2), 16);
  if (!Number.isInteger(n) || n < lo || n > hi) fail(`${what} "${text}" must be an integer from ${lo} to ${hi}`);
  return n;
}

/**
 * A port, a range "a-b" (or iptables' "a:b"), or a list of those (multiport): returns [lo, hi]
 * pairs. As in xt_multiport, at most 15 entries, so a rule stays a handful of comparisons; use a
 * set for more.
 */
export function parsePorts(value: unknown): number[] {
  const items = Array.isArray(value) ? value : [value];
  if (items.length === 0) fail('a port list must not be empty');
  if (items.length > 15) fail(`${items.length} ports or ranges: at most 15 per rule (as multiport); use an ip+port set`);
  const out: number[] = [];
  for (const item of items) {
    if (typeof item === 'number') {
      if (!Number.isInteger(item) || item < 0 || item > 65535) fail(`port ${item} must be an integer from 0 to 65535`);
      out.push(item, item);
      continue;
    }
    const m = /^\s*([0-9]+)\s*(?:[-:]\s*([0-9]+)\s*)?$/.exec(String(item));
    if (!m) fail(`"${String(item)}" is not a port or range: write 80, "1024-65535" or a list [80, 443]`);
    const lo = parseIntIn(m![1], 0, 65535, 'port');
    const hi = m![2] === undefined ? lo : parseIntIn(m![2], 0, 65535, 'port');
    if (lo > hi) fail(`port range "${String(item)}" is reversed: write the lower port first`);
    out.push(lo, hi);
  }
  return out;
}

/** A packet length or range "a-b", as xt_length's --length (IP total length). */
export function parseLength(value: unknown): [number, number] {
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < 0 || value > 65535) fail(`length ${value} must be an integer from 0 to 65535`);
    return [value, value];
  }
  return parsePortsLike(String(value), 'length');
}

function parsePortsLike(text: string, what: string): [number, number] {
  const m = /^\s*([0-9]+)\s*(?:[-:]\s*([0-9]+)\s*)?$/.exec(text);
  if (!m) fail(`"${text}" is not a ${what} or range: write 64 or "0-128"`);
  const lo = parseIntIn(m![1], 0, 65535, what);
  const hi = m![2] === undefined ? lo : parseIntIn(m![2], 0, 65535, what);
  if (lo > hi) fail(`${what} range "${text}" is reversed: write the lower bound first`);
  return [lo, hi];
}

export interface Rate {
  /** Tokens added per millisecond. */
  perMs: number;
  /** The text as written, for logs. */
  text: string;
}

const RATE_UNITS: Record<string, number> = {
  s: 1000, sec: 1000, second: 1000, seconds: 1000,
  m: 60_000, min: 60_000, minute: 60_000, minutes: 60_000,
  h: 3_600_000, hour: 3_600_000, hours: 3_600_000,
  d: 86_400_000, day: 86_400_000, days: 86_400_000,
};

/** "100/second", "5/minute", "3/hour", "1/day", as iptables' --limit (unit may be abbreviated). */
export function parseRate(text: string): Rate {
  const m = /^\s*([0-9]+)\s*\/\s*([a-z]+)\s*$/.exec(text);
  const unit = m ? RATE_UNITS[m[2]] : undefined;
  if (!m || unit === undefined) fail(`"${text}" is not a rate: write count/unit, e.g. "100/second", "5/minute", "2/hour"`);
  const n = Number(m![1]);
  if (n < 1 || n > 1_000_000_000) fail(`rate "${text}" must count from 1 to 1e9 per unit`);
  return { perMs: n / unit!, text };
}

export interface Mark {
  value: number;
  mask: number;
}

/** A mark "value" or "value/mask" (hex or decimal), as --mark and --set-mark take it. */
export function parseMark(value: unknown, defaultMask = 0xffffffff): Mark {
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) fail(`mark ${value} must be a 32-bit unsigned integer`);
    return { value: value >>> 0, mask: defaultMask >>> 0 };
  }
  const parts = String(value).split('/');
  if (parts.length > 2) fail(`"${String(value)}" is not a mark: write value or value/mask, e.g. "0x10/0xff"`);
  const v = parseIntIn(parts[0], 0, 0xffffffff, 'mark');
  const mask = parts.length === 2 ? parseIntIn(parts[1], 0, 0xffffffff, 'mark mask') : defaultMask;
  return { value: v >>> 0, mask: mask >>> 0 };
}

const FLAG_NAMES: Record<string, number> = { ...TcpFlag, ALL: 0xff, NONE: 0 };

function parseFlagList(text: string): number {
  let bits = 0;
  for (const name of text.split(',')) {
    const bit = FLAG_NAMES[name.trim().toUpperCase()];
    if (bit === undefined) fail(`"${name}" is not a TCP flag: use FIN, SYN, RST, PSH, ACK, URG, ECE, CWR, ALL or NONE`);
    bits |= bit!;
  }
  return bits;
}

/** iptables' `--tcp-flags MASK COMP`: "SYN,RST,ACK,FIN SYN" matches when (flags & mask) == comp. */
export function parseTcpFlags(text: string): Mark {
  const parts = text.trim().split(/\s+/);
  if (parts.length !== 2) fail(`"${text}" is not a flags test: write "MASK COMP", e.g. "SYN,RST,ACK,FIN SYN"`);
  const mask = parseFlagList(parts[0]);
  const comp = parseFlagList(parts[1]);
  if ((comp & ~mask) !== 0) fail(`in "${text}" the compared flags must be a subset of the examined flags`);
  return { value: comp, mask };
}

/** `--syn`: SYN set, RST/ACK/FIN clear (iptables' shorthand for "SYN,RST,ACK,FIN SYN"). */
export const SYN_ONLY: Mark = {
  value: TcpFlag.SYN,
  mask: TcpFlag.SYN | TcpFlag.RST | TcpFlag.ACK | TcpFlag.FIN,
};

const PROTO_NAMES: Record<string, number> = {
  all: 0, icmp: Proto.ICMP, tcp: Proto.TCP, udp: Proto.UDP, icmpv6: Proto.ICMPV6, 'ipv6-icmp': Proto.ICMPV6,
  gre: 47, esp: 50, ah: 51, sctp: 132, udplite: 136,
};

/** A protocol name as /etc/protocols spells it, or a number 0-255 ("all" and 0 mean any). */
export function parseProto(value: unknown): number {
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < 0 || value > 255) fail(`protocol ${value} must be from 0 to 255`);
    return value;
  }
  const p = PROTO_NAMES[String(value).toLowerCase()];
  if (p !== undefined) return p;
  if (/^[0-9]+$/.test(String(value))) return parseIntIn(String(value), 0, 255, 'protocol');
  return fail(`"${String(value)}" is not a protocol: use ${Object.keys(PROTO_NAMES).join(', ')} or a number`);
}

/** Type and code (-1 = any code) of an ICMP match. */
export interface IcmpMatch {
  type: number;
  code: number;
}

// Names as iptables -p icmp --help and ip6tables -p icmpv6 --help list them.
const ICMP4: Record<string, [number, number]> = {
  'echo-reply': [0, -1], pong: [0, -1], 'destination-unreachable': [3, -1], 'network-unreachable': [3, 0],
  'host-unreachable': [3, 1], 'protocol-unreachable': [3, 2], 'port-unreachable': [3, 3],
  'fragmentation-needed': [3, 4], 'source-route-failed': [3, 5], 'network-prohibited': [3, 9],
  'host-prohibited': [3, 10], 'communication-prohibited': [3, 13], 'source-quench': [4, -1],
  redirect: [5, -1], 'echo-request': [8, -1], ping: [8, -1], 'router-advertisement': [9, -1],
  'router-solicitation': [10, -1], 'time-exceeded': [11, -1], 'ttl-zero-during-transit': [11, 0],
  'ttl-zero-during-reassembly': [11, 1], 'parameter-problem': [12, -1], 'timestamp-request': [13, -1],
  'timestamp-reply': [14, -1],
};
const ICMP6: Record<string, [number, number]> = {
  'destination-unreachable': [1, -1], 'no-route': [1, 0], 'communication-prohibited': [1, 1],
  'address-unreachable': [1, 3], 'port-unreachable': [1, 4], 'packet-too-big': [2, -1],
  'time-exceeded': [3, -1], 'ttl-zero-during-transit': [3, 0], 'parameter-problem': [4, -1],
  'echo-request': [128, -1], ping: [128, -1], 'echo-reply': [129, -1], pong: [129, -1],
  'router-solicitation': [133, -1], 'router-advertisement': [134, -1],
  'neighbour-solicitation': [135, -1], 'neighbor-solicitation': [135, -1],
  'neighbour-advertisement': [136, -1], 'neighbor-advertisement': [136, -1], redirect: [137, -1],
};

/** An ICMP type for `proto` (icmp or icmpv6): a name, a number, or "type/code". */
export function parseIcmpType(value: unknown, proto: number): IcmpMatch {
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < 0 || value > 255) fail(`ICMP type ${value} must be from 0 to 255`);
    return { type: value, code: -1 };
  }
  const text = String(value).trim().toLowerCase();
  const table = proto === Proto.ICMPV6 ? ICMP6 : ICMP4;
  const named = table[text];
  if (named) return { type: named[0], code: named[1] };
  const m = /^([0-9]+)(?:\/([0-9]+))?$/.exec(text);
  if (!m) {
    fail(`"${String(value)}" is not an ${proto === Proto.ICMPV6 ? 'ICMPv6' : 'ICMP'} type: use a number, ` +
      `"type/code" or a name such as ${Object.keys(table).slice(0, 4).join(', ')}`);
  }
  return {
    type: parseIntIn(m![1], 0, 255, 'ICMP type'),
    code: m![2] === undefined ? -1 : parseIntIn(m![2], 0, 255, 'ICMP code'),
  };
}

/** "HH:MM" or "HH:MM:SS" (UTC, as xt_time without --kerneltz) to seconds since midnight. */
export function parseTimeOfDay(text: string): number {
  const m = /^([0-9]{1,2}):([0-9]{2})(?::([0-9]{2}))?$/.exec(text.trim());
  if (!m || Number(m[1]) > 23 || Number(m[2]) > 59 || Number(m[3] ?? 0) > 59) {
    fail(`"${text}" is not a time of day: write "HH:MM" or "HH:MM:SS" from 00:00 to 23:59:59 (UTC)`);
  }
  return Number(m![1]) * 3600 + Number(m![2]) * 60 + Number(m![3] ?? 0);
}

// Bit index = JavaScript's getUTCDay(): 0 = Sunday. xt_time numbers Monday 1 .. Sunday 7; 7 maps to 0.
const DAYS: Record<string, number> = {
  sun: 0, sunday: 0, mon: 1, monday: 1, tue: 2, tuesday: 2, wed: 3, wednesday: 3,
  thu: 4, thursday: 4, fri: 5, friday: 5, sat: 6, saturday: 6,
  '1': 1, '2': 2, '3': 3, '4': 4, '5': 5, '6': 6, '7': 0,
};

/** Days of the week ("Mon", "monday", or xt_time's 1 = Monday .. 7 = Sunday) to a 7-bit mask. */
export function parseDays(values: unknown[]): number {
  let mask = 0;
  for (const v of values) {
    const d = DAYS[String(v).trim().toLowerCase()];
    if (d === undefined) fail(`"${String(v)}" is not a day of the week: use Mon, Tue, Wed, Thu, Fri, Sat, Sun`);
    mask |= 1 << d!;
  }
  return mask;
}

export interface IfacePattern {
  name: string;
  /** iptables' "eth+": any interface whose name starts with `name`. */
  wildcard: boolean;
}

/** An interface name, with iptables' trailing "+" wildcard. Linux names are 1-15 bytes (IFNAMSIZ). */
export function parseIface(text: string): IfacePattern {
  const wildcard = text.endsWith('+');
  const name = wildcard ? text.slice(0, -1) : text;
  if (name.length > 15) fail(`interface name "${text}" is longer than 15 characters (Linux IFNAMSIZ)`);
  if (!/^[^\s/:]*$/.test(name) || (!wildcard && name === '')) {
    fail(`"${text}" is not an interface name: no spaces, "/" or ":"; end with "+" for a prefix (eth+)`);
  }
  return { name, wildcard };
}

/** A list given as a YAML list or as a comma-separated string ("ESTABLISHED,RELATED"). */
export function splitList(value: unknown): unknown[] {
  if (Array.isArray(value)) return value;
  if (typeof value === 'string') return value.split(',').map((s) => s.trim());
  return [value];
}

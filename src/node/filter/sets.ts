/**
 * Address sets as numeric hash tables, after ipset's hash:ip, hash:net and hash:ip,port: no string
 * keys, no allocation on lookup. A set is built once per ruleset, sized for its elements, and only
 * read afterwards.
 */
import { parseAddress, parseCidr, prefixMask, type Family } from '../packet/address.js';
import { Proto } from '../packet/fields.js';
import { ValueSyntaxError } from './errors.js';
import { hashKey } from './hash.js';

export const SetType = { IP: 0, NET: 1, IP_PORT: 2 } as const;
export type SetTypeCode = (typeof SetType)[keyof typeof SetType];
export const setTypeByName: Readonly<Record<string, SetTypeCode>> = {
  ip: SetType.IP,
  net: SetType.NET,
  'ip+port': SetType.IP_PORT,
};

const KEY = 6; // tag, four address words, extra (proto << 16 | port)

/** Open addressing, linear probing, fixed capacity (at least twice the element count). */
export class NumericHashSet {
  private readonly keys: Int32Array;
  private readonly mask: number;
  size = 0;

  constructor(expected: number) {
    let cap = 8;
    while (cap < expected * 2) cap *= 2;
    this.keys = new Int32Array(cap * KEY);
    this.mask = cap - 1;
  }

  /** `tag` must be non-zero (0 marks an empty slot). Returns false when already present. */
  add(tag: number, a: number, b: number, c: number, d: number, e: number): boolean {
    if (this.size * 2 >= this.mask + 1) throw new RangeError('NumericHashSet is full: size it for its elements');
    const k = this.keys;
    for (let i = hashKey(tag, a, b, c, d, e) & this.mask; ; i = (i + 1) & this.mask) {
      const o = i * KEY;
      if (k[o] === 0) {
        k[o] = tag; k[o + 1] = a; k[o + 2] = b; k[o + 3] = c; k[o + 4] = d; k[o + 5] = e;
        this.size++;
        return true;
      }
      if (k[o] === tag && k[o + 1] === a && k[o + 2] === b && k[o + 3] === c && k[o + 4] === d && k[o + 5] === e) {
        return false;
      }
    }
  }

  has(tag: number, a: number, b: number, c: number, d: number, e: number): boolean {
    const k = this.keys;
    for (let i = hashKey(tag, a, b, c, d, e) & this.mask; ; i = (i + 1) & this.mask) {
      const o = i * KEY;
      const t = k[o];
      if (t === 0) return false;
      if (t === tag && k[o + 1] === a && k[o + 2] === b && k[o + 3] === c && k[o + 4] === d && k[o + 5] === e) {
        return true;
      }
    }
  }
}

/** One parsed set element. */
export interface SetElement {
  family: Family;
  words: Uint32Array;
  prefix: number;
  proto: number;
  portLo: number;
  portHi: number;
}

/** ip and net sets scan (rather than hash) a family with at most this many elements. */
const SCAN_MAX = 8;
const FULL_MASK = Uint32Array.of(0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff);

/** Port ranges in ip+port elements are expanded, as ipset does; cap the expansion. */
const MAX_PORT_RANGE = 1024;

/**
 * Parses an element in ipset's syntax: "10.0.0.1" (ip), "10.0.0.0/8" (net; a bare address is a
 * host), "192.0.2.10,tcp:80" or "192.0.2.10,80" (ip+port; tcp is the default as in ipset,
 * "udp:53", a range "tcp:8000-8010").
 */
export function parseSetElement(type: SetTypeCode, text: string): SetElement {
  try {
    if (type === SetType.IP) {
      const a = parseAddress(text);
      return { family: a.family, words: a.words, prefix: a.family === 4 ? 32 : 128, proto: 0, portLo: 0, portHi: 0 };
    }
    if (type === SetType.NET) {
      const c = parseCidr(text);
      return { family: c.family, words: c.words, prefix: c.prefix, proto: 0, portLo: 0, portHi: 0 };
    }
    const comma = text.lastIndexOf(',');
    if (comma < 0) throw new ValueSyntaxError(`"${text}" is not an ip+port element: write "192.0.2.10,tcp:80"`);
    const a = parseAddress(text.slice(0, comma));
    const m = /^(?:(tcp|udp|sctp|udplite):)?([0-9]{1,5})(?:-([0-9]{1,5}))?$/.exec(text.slice(comma + 1).trim());
    const lo = m ? Number(m[2]) : -1;
    const hi = m && m[3] !== undefined ? Number(m[3]) : lo;
    if (!m || lo > 65535 || hi > 65535 || lo > hi) {
      throw new ValueSyntaxError(
        `"${text}" has a bad port part: write tcp:80, udp:53, 80 (tcp) or a range tcp:8000-8010`,
      );
    }
    if (hi - lo >= MAX_PORT_RANGE) {
      throw new ValueSyntaxError(`"${text}" spans more than ${MAX_PORT_RANGE} ports: split it or use a port range match`);
    }
    const protoName = m[1] ?? 'tcp';
    const proto = protoName === 'tcp' ? Proto.TCP : protoName === 'udp' ? Proto.UDP : protoName === 'sctp' ? 132 : 136;
    return { family: a.family, words: a.words, prefix: a.family === 4 ? 32 : 128, proto, portLo: lo, portHi: hi };
  } catch (e) {
    if (e instanceof ValueSyntaxError) throw e;
    throw new ValueSyntaxError(e instanceof Error ? e.message : String(e));
  }
}

/** A compiled set: lookups by numeric address (and port), no allocation. */
export class CompiledSet {
  readonly name: string;
  readonly type: SetTypeCode;
  readonly size: number;
  private readonly table: NumericHashSet;
  /** Distinct prefix lengths per family, longest first, and their masks (4 words each): hash:net. */
  private readonly prefixes4: Int32Array;
  private readonly masks4: Int32Array;
  private readonly prefixes6: Int32Array;
  private readonly masks6: Int32Array;
  /**
   * ip and net sets with few elements of a family keep them in a flat list too: 8 words per
   * element (address words as stored, then the prefix mask), and are scanned rather than probed.
   * A scan of a handful of entries costs less than hashing six words once per prefix length (a
   * 6-element martians set has 4 lengths, so 4 probes). Null when the family has too many.
   */
  private readonly scan4: Int32Array | null;
  private readonly scan6: Int32Array | null;

  constructor(name: string, type: SetTypeCode, elements: SetElement[]) {
    this.name = name;
    this.type = type;
    let count = 0;
    for (const e of elements) count += e.portHi - e.portLo + 1;
    this.table = new NumericHashSet(count);
    const p4 = new Set<number>();
    const p6 = new Set<number>();
    for (const e of elements) {
      const w = e.words;
      if (type === SetType.NET) {
        (e.family === 4 ? p4 : p6).add(e.prefix);
        this.table.add(e.family | (e.prefix << 8), w[0] | 0, w[1] | 0, w[2] | 0, w[3] | 0, 0);
      } else {
        for (let port = e.portLo; port <= e.portHi; port++) {
          this.table.add(e.family, w[0] | 0, w[1] | 0, w[2] | 0, w[3] | 0, (e.proto << 16) | port);
        }
      }
    }
    this.size = this.table.size;
    const build = (family: Family, set: Set<number>): [Int32Array, Int32Array] => {
      const list = [...set].sort((a, b) => b - a);
      const masks = new Int32Array(list.length * 4);
      list.forEach((p, i) => masks.set(prefixMask(family, p), i * 4));
      return [Int32Array.from(list), masks];
    };
    [this.prefixes4, this.masks4] = build(4, p4);
    [this.prefixes6, this.masks6] = build(6, p6);
    const scan = (family: Family): Int32Array | null => {
      if (type === SetType.IP_PORT) return null;
      const list = elements.filter((e) => e.family === family);
      if (list.length > SCAN_MAX) return null;
      const out = new Int32Array(list.length * 8);
      list.forEach((e, i) => {
        // An ip set is keyed by the whole address: the mask of a host of either family is all ones
        // on all four words (a v4 packet's words 1..3 are 0, as are the element's).
        const m = type === SetType.NET ? prefixMask(family, e.prefix) : FULL_MASK;
        for (let k = 0; k < 4; k++) {
          out[i * 8 + k] = e.words[k] | 0;
          out[i * 8 + 4 + k] = m[k] | 0;
        }
      });
      return out;
    };
    this.scan4 = scan(4);
    this.scan6 = scan(6);
  }

  /** Address lookup (ip and net sets). */
  hasAddr(family: number, w: Uint32Array): boolean {
    const scan = family === 4 ? this.scan4 : family === 6 ? this.scan6 : null;
    if (scan !== null) {
      const a = w[0] | 0, b = w[1] | 0, c = w[2] | 0, d = w[3] | 0;
      for (let o = 0; o < scan.length; o += 8) {
        if ((a & scan[o + 4]) === scan[o] && (b & scan[o + 5]) === scan[o + 1] && (c & scan[o + 6]) === scan[o + 2] &&
          (d & scan[o + 7]) === scan[o + 3]) {
          return true;
        }
      }
      return false;
    }
    if (this.type === SetType.IP) return this.table.has(family, w[0] | 0, w[1] | 0, w[2] | 0, w[3] | 0, 0);
    // hash:net: one probe per distinct prefix length present, as ipset walks its cidr list.
    const prefixes = family === 4 ? this.prefixes4 : this.prefixes6;
    const masks = family === 4 ? this.masks4 : this.masks6;
    const a = w[0] | 0, b = w[1] | 0, c = w[2] | 0, d = w[3] | 0;
    for (let i = 0; i < prefixes.length; i++) {
      const o = i * 4;
      if (this.table.has(family | (prefixes[i] << 8), a & masks[o], b & masks[o + 1], c & masks[o + 2], d & masks[o + 3], 0)) {
        return true;
      }
    }
    return false;
  }

  /** ip+port lookup: address of one side, protocol and port of the other. */
  hasAddrPort(family: number, w: Uint32Array, proto: number, port: number): boolean {
    return this.table.has(family, w[0] | 0, w[1] | 0, w[2] | 0, w[3] | 0, (proto << 16) | port);
  }
}

/**
 * Lowers a rule's `match:` object into its RuleRecord, checking each value and recording every
 * problem with its path. Reads the document defensively: parts with a wrong shape were already
 * reported by the schema and are skipped here, so one pass reports all errors.
 */
import { parseCidr } from '../packet/address.js';
import { Proto } from '../packet/fields.js';
import { ctStateNames } from '../conntrack/state.js';
import { Builder, Hook, isObject } from './builder.js';
import { ValueSyntaxError } from './errors.js';
import { M, RuleRecord, STAT } from './record.js';
import { CompiledSet, SetType, type SetElement } from './sets.js';
import {
  parseDays, parseIcmpType, parseIface, parseLength, parseMark, parsePorts, parseProto, parseRate,
  parseTcpFlags, parseTimeOfDay, splitList, SYN_ONLY,
} from './values.js';

/** Defaults as the iptables extensions have them. */
const LIMIT_BURST = 5; // xt_limit --limit-burst
const HASHLIMIT_SIZE = 4096;
const HASHLIMIT_EXPIRE_MS = 10_000; // --hashlimit-htable-expire

const NEGATABLE = [
  'ctstate', 'in', 'out', 'src', 'dst', 'proto', 'sport', 'dport', 'tcpFlags', 'syn', 'icmpType',
  'mark', 'connmark', 'set', 'statistic', 'time', 'length',
] as const;

const PORT_PROTOS = new Set([Proto.TCP, Proto.UDP, 132, 136]);

/** Lowers `match` (may be undefined) into `rec`. `hooks` restricts what is allowed (Hook bits). */
export function lowerMatch(b: Builder, match: unknown, path: string, hooks: number, rec: RuleRecord): void {
  if (!isObject(match)) return;
  const not = isObject(match.not) ? match.not : {};
  for (const key of NEGATABLE) {
    if (match[key] !== undefined && not[key] !== undefined) {
      b.error(`${path}/not/${key}`, `"${key}" is given both plainly and under "not": keep one`);
    }
  }
  // Protocol first: port, flag and ICMP matches depend on it.
  if (match.proto !== undefined) {
    const p = b.parse(`${path}/proto`, () => parseProto(match.proto));
    if (p !== undefined && p !== 0) {
      rec.present |= M.PROTO;
      rec.proto = p;
    }
  }
  if (not.proto !== undefined) {
    const p = b.parse(`${path}/not/proto`, () => parseProto(not.proto));
    if (p !== undefined) {
      if (p === 0) b.error(`${path}/not/proto`, '"not all" would match nothing: remove it');
      rec.present |= M.PROTO;
      rec.neg |= M.PROTO;
      rec.proto = p;
    }
  }
  const proto = (rec.neg & M.PROTO) === 0 && (rec.present & M.PROTO) !== 0 ? rec.proto : 0;
  if (proto === Proto.ICMP) setFamily(b, rec, 4, `${path}/proto`);
  if (proto === Proto.ICMPV6) setFamily(b, rec, 6, `${path}/proto`);

  for (const [obj, neg, base] of [[match, false, path], [not, true, `${path}/not`]] as const) {
    for (const key of NEGATABLE) {
      const v = obj[key];
      if (v === undefined || key === 'proto') continue;
      lowerOne(b, key, v, `${base}/${key}`, neg, proto, hooks, rec);
    }
  }
  lowerUnnegatable(b, match, path, hooks, rec);
}

function setFamily(b: Builder, rec: RuleRecord, family: number, path: string): void {
  if (rec.family !== 0 && rec.family !== family) {
    b.error(path, `mixes IPv${rec.family} and IPv${family} in one rule: write one rule per family`);
    return;
  }
  rec.family = family;
  rec.present |= M.FAMILY;
}

function flag(rec: RuleRecord, bit: number, neg: boolean): void {
  rec.present |= bit;
  if (neg) rec.neg |= bit;
}

function needProto(b: Builder, path: string, proto: number, allowed: Set<number>, what: string): boolean {
  if (allowed.has(proto)) return true;
  b.error(path, `${what} needs "proto: ${[...allowed].map(protoName).join('" or "proto: ')}" in the same match ` +
    '(not negated), as iptables requires -p before protocol options');
  return false;
}

const protoName = (p: number): string =>
  p === Proto.TCP ? 'tcp' : p === Proto.UDP ? 'udp' : p === Proto.ICMP ? 'icmp' : p === Proto.ICMPV6 ? 'icmpv6' : String(p);

function notInRaw(b: Builder, path: string, hooks: number, what: string): boolean {
  if ((hooks & Hook.RAW) === 0) return true;
  b.error(path, `${what} is not available in the raw chain (it runs before conntrack); move the rule to forward`);
  return false;
}

function lowerOne(
  b: Builder, key: (typeof NEGATABLE)[number], v: unknown, path: string, neg: boolean, proto: number,
  hooks: number, rec: RuleRecord,
): void {
  switch (key) {
    case 'ctstate': {
      if (!notInRaw(b, path, hooks, 'ctstate')) return;
      let mask = 0;
      splitList(v).forEach((s, i) => {
        const idx = (ctStateNames as readonly string[]).indexOf(String(s).toUpperCase());
        if (idx < 0) {
          b.error(Array.isArray(v) ? `${path}/${i}` : path, `"${String(s)}" is not a conntrack state: use ${ctStateNames.join(', ')}`);
        } else mask |= 1 << idx;
      });
      rec.ctMask = mask;
      flag(rec, M.CTSTATE, neg);
      return;
    }
    case 'in':
    case 'out': {
      if (key === 'out' && (hooks & Hook.RAW) !== 0) {
        b.error(path, 'the output interface is not known yet in the raw chain (as -o in PREROUTING); match it in forward');
        return;
      }
      const list = Array.isArray(v) ? v : [v];
      const pats = list.map((s, i) => b.parse(Array.isArray(v) ? `${path}/${i}` : path, () => parseIface(String(s))));
      if (pats.some((p) => p === undefined)) return;
      const id = b.addIfPattern(pats as NonNullable<(typeof pats)[number]>[]);
      if (key === 'in') rec.inPat = id;
      else rec.outPat = id;
      flag(rec, key === 'in' ? M.IN : M.OUT, neg);
      return;
    }
    case 'src':
    case 'dst':
      lowerAddress(b, key, v, path, neg, rec);
      return;
    case 'sport':
    case 'dport': {
      if (!needProto(b, path, proto, PORT_PROTOS, key)) return;
      const pairs = b.parse(path, () => parsePorts(v));
      if (!pairs) return;
      const off = b.addPorts(pairs);
      if (key === 'sport') { rec.sportOff = off; rec.sportCnt = pairs.length / 2; }
      else { rec.dportOff = off; rec.dportCnt = pairs.length / 2; }
      flag(rec, key === 'sport' ? M.SPORT : M.DPORT, neg);
      return;
    }
    case 'tcpFlags':
    case 'syn': {
      if (!needProto(b, path, proto, new Set([Proto.TCP]), key)) return;
      if (rec.present & M.TCPFLAGS) {
        b.error(path, 'give either "syn" or "tcpFlags", not both');
        return;
      }
      if (key === 'syn' && v === false) {
        // iptables' "! --syn": write it as not: {syn: true}.
        rec.flagMask = SYN_ONLY.mask; rec.flagComp = SYN_ONLY.value;
        flag(rec, M.TCPFLAGS, !neg);
        return;
      }
      const f = key === 'syn' ? SYN_ONLY : b.parse(path, () => parseTcpFlags(String(v)));
      if (!f) return;
      rec.flagMask = f.mask; rec.flagComp = f.value;
      flag(rec, M.TCPFLAGS, neg);
      return;
    }
    case 'icmpType': {
      if (!needProto(b, path, proto, new Set([Proto.ICMP, Proto.ICMPV6]), 'icmpType')) return;
      const t = b.parse(path, () => parseIcmpType(v, proto));
      if (!t) return;
      rec.icmpType = t.type; rec.icmpCode = t.code;
      flag(rec, M.ICMP, neg);
      return;
    }
    case 'mark':
    case 'connmark': {
      if (key === 'connmark' && !notInRaw(b, path, hooks, 'connmark')) return;
      const mk = b.parse(path, () => parseMark(v));
      if (!mk) return;
      if (key === 'mark') { rec.markValue = (mk.value & mk.mask) | 0; rec.markMask = mk.mask | 0; }
      else { rec.cmValue = (mk.value & mk.mask) | 0; rec.cmMask = mk.mask | 0; }
      flag(rec, key === 'mark' ? M.MARK : M.CONNMARK, neg);
      return;
    }
    case 'set': {
      if (!isObject(v) || typeof v.name !== 'string' || !Array.isArray(v.flags)) return;
      const idx = b.setIndex.get(v.name);
      if (idx === undefined) {
        b.error(`${path}/name`, `unknown set "${v.name}": define it under "sets:"`);
        return;
      }
      const set = b.sets[idx];
      const dims = set.type === SetType.IP_PORT ? 2 : 1;
      if (v.flags.length !== dims) {
        b.error(`${path}/flags`, `set "${v.name}" has ${dims} dimension${dims > 1 ? 's' : ''}: give ${dims} flag${dims > 1 ? 's' : ''} (${dims > 1 ? '[dst, dst]' : '[src]'})`);
        return;
      }
      if (dims === 2 && !needProto(b, path, proto, PORT_PROTOS, `ip+port set "${v.name}"`)) return;
      rec.setIdx = idx;
      rec.setSrc0 = v.flags[0] === 'src';
      rec.setSrc1 = v.flags[1] === 'src';
      flag(rec, M.SET, neg);
      return;
    }
    case 'statistic': {
      if (!isObject(v)) return;
      if (v.mode === 'nth') {
        if (typeof v.every !== 'number') { b.error(`${path}/every`, 'nth mode needs "every" (match one packet in every N)'); return; }
        if (v.probability !== undefined) b.error(`${path}/probability`, '"probability" belongs to random mode');
        const packet = typeof v.packet === 'number' ? v.packet : 0;
        if (packet >= v.every) { b.error(`${path}/packet`, `"packet" must be below "every" (0..${v.every - 1})`); return; }
        rec.statMode = STAT.NTH; rec.statEvery = v.every; rec.statPacket = packet; rec.statIdx = b.statCount++;
      } else if (v.mode === 'random') {
        if (typeof v.probability !== 'number') { b.error(`${path}/probability`, 'random mode needs "probability" (0..1)'); return; }
        if (v.every !== undefined || v.packet !== undefined) b.error(path, '"every" and "packet" belong to nth mode');
        rec.statMode = STAT.RANDOM; rec.statProb = v.probability;
      } else return;
      flag(rec, M.STATISTIC, neg);
      return;
    }
    case 'time': {
      if (!isObject(v)) return;
      const start = typeof v.start === 'string' ? b.parse(`${path}/start`, () => parseTimeOfDay(v.start as string)) : 0;
      const stop = typeof v.stop === 'string' ? b.parse(`${path}/stop`, () => parseTimeOfDay(v.stop as string)) : 86399;
      const days = Array.isArray(v.days) ? b.parse(`${path}/days`, () => parseDays(v.days as unknown[])) : 0x7f;
      if (start === undefined || stop === undefined || days === undefined) return;
      rec.timeStart = start; rec.timeStop = stop; rec.timeDays = days;
      flag(rec, M.TIME, neg);
      return;
    }
    case 'length': {
      const r = b.parse(path, () => parseLength(v));
      if (!r) return;
      rec.lenLo = r[0]; rec.lenHi = r[1];
      flag(rec, M.LENGTH, neg);
      return;
    }
    default:
      return;
  }
}

function lowerAddress(b: Builder, key: 'src' | 'dst', v: unknown, path: string, neg: boolean, rec: RuleRecord): void {
  const list = Array.isArray(v) ? v : [v];
  if (list.length === 0) return; // the schema reports the empty list
  const isSrc = key === 'src';
  if (list.length === 1 && typeof list[0] === 'string' && list[0].startsWith('@')) {
    const name = list[0].slice(1);
    const idx = b.setIndex.get(name);
    if (idx === undefined) { b.error(path, `unknown set "${name}": define it under "sets:"`); return; }
    if (b.sets[idx].type === SetType.IP_PORT) {
      b.error(path, `set "${name}" is ip+port: match it with "set: {name: ${name}, flags: [${key}, ${key}]}"`);
      return;
    }
    if (isSrc) rec.srcSet = idx; else rec.dstSet = idx;
    flag(rec, isSrc ? M.SRCSET : M.DSTSET, neg);
    return;
  }
  const cidrs = list.map((s, i) => b.parse(Array.isArray(v) ? `${path}/${i}` : path, () => {
    if (typeof s === 'string' && s.startsWith('@')) throw new ValueSyntaxError('a set reference "@name" must stand alone, not in a list');
    return parseCidr(String(s));
  }));
  if (cidrs.some((c) => c === undefined)) return;
  const ok = cidrs as NonNullable<(typeof cidrs)[number]>[];
  const families = new Set(ok.map((c) => c.family));
  if (families.size === 1) setFamily(b, rec, ok[0].family, path);
  if (ok.length > 1) {
    // A list becomes an anonymous hash:net set: one lookup per distinct prefix, not per entry.
    const elements: SetElement[] = ok.map((c) => ({ ...c, proto: 0, portLo: 0, portHi: 0 }));
    const idx = b.addSet(new CompiledSet(`${path}`, SetType.NET, elements));
    if (isSrc) rec.srcSet = idx; else rec.dstSet = idx;
    flag(rec, isSrc ? M.SRCSET : M.DSTSET, neg);
    return;
  }
  const c = ok[0];
  const mask = maskWords(c.family, c.prefix);
  if (isSrc) {
    rec.src0 = c.words[0] | 0; rec.src1 = c.words[1] | 0; rec.src2 = c.words[2] | 0; rec.src3 = c.words[3] | 0;
    rec.srcM0 = mask[0]; rec.srcM1 = mask[1]; rec.srcM2 = mask[2]; rec.srcM3 = mask[3];
  } else {
    rec.dst0 = c.words[0] | 0; rec.dst1 = c.words[1] | 0; rec.dst2 = c.words[2] | 0; rec.dst3 = c.words[3] | 0;
    rec.dstM0 = mask[0]; rec.dstM1 = mask[1]; rec.dstM2 = mask[2]; rec.dstM3 = mask[3];
  }
  flag(rec, isSrc ? M.SRC : M.DST, neg);
}

function maskWords(family: number, prefix: number): Int32Array {
  const out = new Int32Array(4);
  let left = prefix;
  for (let i = 0; i < (family === 4 ? 1 : 4); i++) {
    const bits = Math.min(32, left);
    out[i] = bits === 0 ? 0 : (0xffffffff << (32 - bits)) | 0;
    left -= bits;
  }
  return out;
}

/** limit, hashlimit, connlimit: no `!` in iptables (hashlimit and connlimit have above/upto). */
function lowerUnnegatable(b: Builder, match: Record<string, unknown>, path: string, hooks: number, rec: RuleRecord): void {
  const { limit, hashlimit, connlimit } = match;
  if (isObject(limit) && typeof limit.rate === 'string') {
    const rate = b.parse(`${path}/limit/rate`, () => parseRate(limit.rate as string));
    if (rate) {
      rec.limitIdx = b.addBucket({ perMs: rate.perMs, burst: typeof limit.burst === 'number' ? limit.burst : LIMIT_BURST });
      rec.present |= M.LIMIT;
    }
  }
  if (isObject(hashlimit) && typeof hashlimit.rate === 'string') {
    const rate = b.parse(`${path}/hashlimit/rate`, () => parseRate(hashlimit.rate as string));
    if (rate) {
      b.hashlimits.push({
        perMs: rate.perMs,
        burst: typeof hashlimit.burst === 'number' ? hashlimit.burst : LIMIT_BURST,
        capacity: typeof hashlimit.size === 'number' ? hashlimit.size : HASHLIMIT_SIZE,
        expireMs: typeof hashlimit.expireMs === 'number' ? hashlimit.expireMs : HASHLIMIT_EXPIRE_MS,
        prefix4: typeof hashlimit.srcPrefix === 'number' ? hashlimit.srcPrefix : 32,
        prefix6: typeof hashlimit.srcPrefix6 === 'number' ? hashlimit.srcPrefix6 : 128,
      });
      rec.hashIdx = b.hashlimits.length - 1;
      rec.present |= M.HASHLIMIT;
      // --hashlimit-above matches the packets over the rate: the complement of upto.
      if (hashlimit.above === true) rec.neg |= M.HASHLIMIT;
    }
  }
  if (isObject(connlimit)) {
    if (!notInRaw(b, `${path}/connlimit`, hooks, 'connlimit')) return;
    const { above, upto } = connlimit;
    if ((above === undefined) === (upto === undefined)) {
      b.error(`${path}/connlimit`, 'give exactly one of "above: N" or "upto: N"');
      return;
    }
    rec.connAbove = above !== undefined;
    rec.connLimit = Number(above ?? upto);
    rec.connPrefix4 = typeof connlimit.srcPrefix === 'number' ? connlimit.srcPrefix : 32;
    rec.connPrefix6 = typeof connlimit.srcPrefix6 === 'number' ? connlimit.srcPrefix6 : 128;
    rec.present |= M.CONNLIMIT;
  }
}


/**
 * The `nat:` section of a ruleset -> NatRules, validated whole: every error is reported with its
 * JSON path (`/nat/snat/0/to`) in the ruleset's own error list, so a bad NAT section refuses the
 * file with the rest of it. Config-time only.
 */
import { parseAddress, parseCidr } from '../packet/address.js';
import { InterfaceMatcher, type InterfaceResolver } from '../filter/ifaces.js';
import { shapeErrors } from '../filter/shape.js';
import { parseIface, parsePorts, parseProto, splitList, type IfacePattern } from '../filter/values.js';
import type { RulesetIssue } from '../filter/errors.js';
import { NatSchema } from './schema.js';

/** Default outside port range for TCP/UDP: the unprivileged ports. */
export const DEFAULT_PORT_LO = 1024;
export const DEFAULT_PORT_HI = 65535;

/** What SNAT and DNAT rules share: matches over the packet as it is when the rule is looked at. */
class NatMatch {
  /** Interface pattern id in NatRules.ifaces, -1 = any. */
  iface = -1;
  /** (network, mask) pairs of host-order IPv4 words; null = any. */
  src: Uint32Array | null = null;
  dst: Uint32Array | null = null;
  /** Protocols matched (1 = yes) by number; null = any. */
  protos: Uint8Array | null = null;
  /** JSON path of the rule, for logs. */
  path = '';
}

export class SnatRule extends NatMatch {
  /** Outside address (host-order IPv4). */
  to = 0;
  portLo = DEFAULT_PORT_LO;
  portHi = DEFAULT_PORT_HI;
}

export class DnatRule extends NatMatch {
  /** (lo, hi) destination port pairs; null = any. */
  dports: Int32Array | null = null;
  /** Inside server address (host-order IPv4). */
  to = 0;
  /** Inside port, -1 = keep the packet's. */
  toPort = -1;
}

/** A compiled NAT section: the rules, checked first to last (the first match decides). */
export class NatRules {
  constructor(
    readonly snat: SnatRule[],
    readonly dnat: DnatRule[],
    readonly ifaces: InterfaceMatcher,
  ) {}
}

function attempt<R>(issues: RulesetIssue[], path: string, fn: () => R): R | undefined {
  try {
    return fn();
  } catch (e) {
    // Value parsers throw errors with a `code` (ValueSyntaxError, AddressError, PrefixError).
    if (e instanceof Error && 'code' in e) {
      issues.push({ path, message: e.message });
      return undefined;
    }
    throw e;
  }
}

function ipv4(issues: RulesetIssue[], path: string, text: string): number | undefined {
  const a = attempt(issues, path, () => parseAddress(text));
  if (a === undefined) return undefined;
  if (a.family !== 4) {
    issues.push({ path, message: `"${text}" is IPv6: NAT maps IPv4 only for now (use an IPv4 address)` });
    return undefined;
  }
  return a.words[0];
}

function cidrs(issues: RulesetIssue[], path: string, value: unknown): Uint32Array | null {
  if (value === undefined) return null;
  const items = splitList(value);
  const out = new Uint32Array(items.length * 2);
  items.forEach((item, i) => {
    const p = Array.isArray(value) ? `${path}/${i}` : path;
    const c = attempt(issues, p, () => parseCidr(String(item)));
    if (c === undefined) return;
    if (c.family !== 4) {
      issues.push({ path: p, message: `"${String(item)}" is IPv6: NAT rules match IPv4 only for now` });
      return;
    }
    const mask = c.prefix === 0 ? 0 : (0xffffffff << (32 - c.prefix)) >>> 0;
    out[i * 2] = c.words[0] & mask;
    out[i * 2 + 1] = mask;
  });
  return out;
}

function protos(issues: RulesetIssue[], path: string, value: unknown): Uint8Array | null {
  if (value === undefined) return null;
  const set = new Uint8Array(256);
  for (const [i, item] of splitList(value).entries()) {
    const p = attempt(issues, Array.isArray(value) ? `${path}/${i}` : path, () => parseProto(item));
    if (p === 0) return null; // "all"
    if (p !== undefined) set[p] = 1;
  }
  return set;
}

function ifacePattern(issues: RulesetIssue[], path: string, value: unknown, patterns: IfacePattern[][]): number {
  if (value === undefined) return -1;
  const alts: IfacePattern[] = [];
  for (const [i, item] of splitList(value).entries()) {
    const p = attempt(issues, Array.isArray(value) ? `${path}/${i}` : path, () => parseIface(String(item)));
    if (p !== undefined) alts.push(p);
  }
  patterns.push(alts);
  return patterns.length - 1;
}

function matchOf<M extends NatMatch>(m: M, issues: RulesetIssue[], path: string, r: Record<string, unknown>): M {
  m.path = path;
  m.src = cidrs(issues, `${path}/src`, r.src);
  m.dst = cidrs(issues, `${path}/dst`, r.dst);
  m.protos = protos(issues, `${path}/proto`, r.proto);
  return m;
}

const listOrNone = (v: unknown): boolean => v === undefined || Array.isArray(v);
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Validates and compiles a `nat:` section (undefined when the ruleset has none: returns null).
 * Appends every problem to `issues`; the result is only meaningful when none were added.
 */
export function compileNat(value: unknown, issues: RulesetIssue[], resolver?: InterfaceResolver): NatRules | null {
  if (value === undefined) return null;
  const shape = shapeErrors(NatSchema, value, '/nat');
  issues.push(...shape);
  if (!isObject(value) || !listOrNone(value.snat) || !listOrNone(value.dnat)) return null;
  // Value checks on every rule whose shape is right, so one pass reports all there is to fix.
  const shapeOk = (path: string) => !shape.some((e) => e.path === path || e.path.startsWith(`${path}/`));
  const patterns: IfacePattern[][] = [];
  const snat: SnatRule[] = [];
  const dnat: DnatRule[] = [];
  const snatDocs = (value.snat ?? []) as Record<string, unknown>[];
  const dnatDocs = (value.dnat ?? []) as Record<string, unknown>[];
  snatDocs.forEach((r, i) => {
    const path = `/nat/snat/${i}`;
    if (!shapeOk(path)) return;
    const rule = matchOf(new SnatRule(), issues, path, r);
    rule.iface = ifacePattern(issues, `${path}/out`, r.out, patterns);
    rule.to = ipv4(issues, `${path}/to`, String(r.to)) ?? 0;
    if (r.ports !== undefined) {
      const pr = attempt(issues, `${path}/ports`, () => parsePorts(r.ports));
      if (pr !== undefined) {
        if (pr[0] === 0) issues.push({ path: `${path}/ports`, message: 'port 0 cannot be an outside port: start the range at 1 or more' });
        rule.portLo = pr[0];
        rule.portHi = pr[1];
      }
    }
    snat.push(rule);
  });
  dnatDocs.forEach((r, i) => {
    const path = `/nat/dnat/${i}`;
    if (!shapeOk(path)) return;
    const rule = matchOf(new DnatRule(), issues, path, r);
    rule.iface = ifacePattern(issues, `${path}/in`, r.in, patterns);
    if (r.dport !== undefined) {
      const pr = attempt(issues, `${path}/dport`, () => parsePorts(r.dport));
      if (pr !== undefined) rule.dports = Int32Array.from(pr);
    }
    const portful = rule.protos !== null && rule.protos.every((v, p) => v === 0 || p === 6 || p === 17);
    if ((r.dport !== undefined || String(r.to).includes(':')) && !portful) {
      issues.push({ path: `${path}/proto`, message: 'a port in dport or to needs proto tcp or udp (as iptables -p)' });
    }
    const m = /^([0-9.]+)(?::([0-9]+))?$/.exec(String(r.to));
    if (!m) {
      issues.push({ path: `${path}/to`, message: `"${String(r.to)}" is not ADDRESS or ADDRESS:PORT (IPv4), e.g. 10.0.0.5:8080` });
    } else {
      rule.to = ipv4(issues, `${path}/to`, m[1]) ?? 0;
      if (m[2] !== undefined) {
        const port = Number(m[2]);
        if (port < 1 || port > 65535) issues.push({ path: `${path}/to`, message: `port ${m[2]} must be from 1 to 65535` });
        rule.toPort = port;
      }
    }
    dnat.push(rule);
  });
  if (shape.length > 0) return null;
  return new NatRules(snat, dnat, new InterfaceMatcher(resolver, patterns));
}

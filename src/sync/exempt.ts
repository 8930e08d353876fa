/**
 * Sync exemptions (config `sync.exempt`): conntrack entries that are not replicated, e.g. the
 * node's own management flows, or short-lived DNS not worth a message each.
 *
 * A rule gives any of: `src` / `dst` (an address or CIDR, matched on the original tuple), `proto`
 * (tcp, udp, icmp, icmpv6 or a protocol number) and, with proto tcp only, `state` (a TCP state
 * name as `ct list` shows it: SYN_SENT, ESTABLISHED...). A rule matches when every field it gives
 * matches; an entry that matches any rule is exempt.
 *
 * The sender asks once per entry, when it is created (sender.ts ctNew), and the answer holds for
 * the entry's life: `state` is the state the entry was created in, SYN_SENT for a connection
 * opened by a SYN, ESTABLISHED for one picked up mid-stream (conntrack.tcpLoose).
 *
 * checkExemptRules finds every problem (each with its rule index and field) so the config can be
 * refused with paths; compileExemptRules turns checked rules into the predicate SyncNode takes,
 * which reads the table's words only (no allocation).
 */
import { tcpStateNames, type ConntrackTable } from '../node/conntrack/index.js';
import { parseCidr, prefixMask, type Cidr } from '../node/packet/index.js';

export interface ExemptRuleSpec {
  /** Original source address or CIDR. */
  src?: string;
  /** Original destination address or CIDR. */
  dst?: string;
  /** tcp, udp, icmp, icmpv6, or a protocol number 0-255. */
  proto?: string | number;
  /** TCP state name (with proto tcp only). */
  state?: string;
}

export interface ExemptIssue {
  /** Index of the rule in the list. */
  index: number;
  /** The field at fault ('' for the rule as a whole). */
  field: keyof ExemptRuleSpec | '';
  message: string;
}

/** compileExemptRules was given rules that checkExemptRules refuses. */
export class ExemptRuleError extends Error {
  readonly code = 'SYNC_EXEMPT_INVALID';
  readonly issues: ExemptIssue[];
  constructor(issues: ExemptIssue[]) {
    super(`sync exemption rules refused: ${issues.map((i) => `rule ${i.index}${i.field ? ` ${i.field}` : ''}: ${i.message}`).join('; ')}`);
    this.name = 'ExemptRuleError';
    this.issues = issues;
  }
}

/** Entry exempt from sync (SyncNodeOptions.exempt). */
export type ExemptPredicate = (table: ConntrackTable, slot: number) => boolean;

const P_ICMP = 1;
const P_TCP = 6;
const P_ICMPV6 = 58;
const protoNumbers: Record<string, number> = { icmp: P_ICMP, tcp: P_TCP, udp: 17, icmpv6: P_ICMPV6 };

interface Net {
  words: Uint32Array;
  mask: Uint32Array;
}

interface CompiledRule {
  /** -1: any. */
  proto: number;
  /** 0: any; 4 or 6 when src or dst is given. */
  family: number;
  src: Net | null;
  dst: Net | null;
  /** -1: any. */
  state: number;
}

function protoNumber(p: string | number): number | null {
  if (typeof p === 'number') return Number.isInteger(p) && p >= 0 && p <= 255 ? p : null;
  if (/^[0-9]{1,3}$/.test(p)) return protoNumber(Number(p));
  return protoNumbers[p] ?? null;
}

/** The rule compiled, or its problems. */
function compileRule(spec: ExemptRuleSpec, index: number, issues: ExemptIssue[]): CompiledRule | null {
  const before = issues.length;
  const rule: CompiledRule = { proto: -1, family: 0, src: null, dst: null, state: -1 };
  const nets: Partial<Record<'src' | 'dst', Cidr>> = {};
  for (const field of ['src', 'dst'] as const) {
    const text = spec[field];
    if (text === undefined) continue;
    try {
      nets[field] = parseCidr(text);
    } catch (e) {
      issues.push({ index, field, message: `${e instanceof Error ? e.message : String(e)}; give an address or a CIDR like 10.0.0.0/8` });
    }
  }
  if (nets.src && nets.dst && nets.src.family !== nets.dst.family) {
    issues.push({ index, field: 'dst', message: `IPv${nets.dst.family} while src is IPv${nets.src.family}: the rule could never match; split it in two` });
  }
  const family = nets.src?.family ?? nets.dst?.family ?? 0;
  for (const field of ['src', 'dst'] as const) {
    const c = nets[field];
    if (c) rule[field] = { words: c.words, mask: prefixMask(c.family, c.prefix) };
  }
  rule.family = family;
  if (spec.proto !== undefined) {
    const p = protoNumber(spec.proto);
    if (p === null) {
      issues.push({ index, field: 'proto', message: `"${spec.proto}" is not a protocol: give tcp, udp, icmp, icmpv6 or a number 0-255` });
    } else if ((p === P_ICMP && family === 6) || (p === P_ICMPV6 && family === 4)) {
      issues.push({ index, field: 'proto', message: `${spec.proto} never carries IPv${family} addresses: use ${p === P_ICMP ? 'icmpv6' : 'icmp'}` });
    } else rule.proto = p;
  }
  if (spec.state !== undefined) {
    const s = (tcpStateNames as readonly string[]).indexOf(spec.state);
    if (s < 0) {
      issues.push({ index, field: 'state', message: `"${spec.state}" is not a TCP state; one of ${tcpStateNames.join(', ')}` });
    } else if (spec.proto === undefined || protoNumber(spec.proto) !== P_TCP) {
      issues.push({ index, field: 'state', message: 'a state applies to TCP entries only: add proto: tcp to this rule' });
    } else rule.state = s;
  }
  if (spec.src === undefined && spec.dst === undefined && spec.proto === undefined && spec.state === undefined) {
    issues.push({ index, field: '', message: 'an empty rule would exempt every entry (nothing would be replicated); give src, dst, proto or state' });
  }
  return issues.length === before ? rule : null;
}

/** Every problem of the rules (an empty list when they can be compiled). */
export function checkExemptRules(specs: readonly ExemptRuleSpec[]): ExemptIssue[] {
  const issues: ExemptIssue[] = [];
  specs.forEach((s, i) => compileRule(s, i, issues));
  return issues;
}

function inNet(w: Uint32Array, off: number, n: Net): boolean {
  const m = n.mask;
  const v = n.words;
  return ((w[off] & m[0]) >>> 0) === v[0] && ((w[off + 1] & m[1]) >>> 0) === v[1]
    && ((w[off + 2] & m[2]) >>> 0) === v[2] && ((w[off + 3] & m[3]) >>> 0) === v[3];
}

/**
 * The predicate for SyncNodeOptions.exempt: true when the entry in `slot` matches a rule.
 * Throws ExemptRuleError when a rule is bad (checkExemptRules first to report them with paths).
 */
export function compileExemptRules(specs: readonly ExemptRuleSpec[]): ExemptPredicate {
  const issues: ExemptIssue[] = [];
  const rules = specs.map((s, i) => compileRule(s, i, issues));
  if (issues.length > 0) throw new ExemptRuleError(issues);
  const compiled = rules as CompiledRule[];
  return (t, slot) => {
    const w = t.tuples;
    const off = t.tupleOffset(slot, 0);
    const meta = w[off + 9];
    const proto = meta & 0xff;
    const family = meta >>> 8;
    for (let i = 0; i < compiled.length; i++) {
      const r = compiled[i];
      if (r.proto >= 0 && r.proto !== proto) continue;
      if (r.family !== 0 && r.family !== family) continue;
      if (r.src !== null && !inNet(w, off, r.src)) continue;
      if (r.dst !== null && !inNet(w, off + 4, r.dst)) continue;
      if (r.state >= 0 && t.tcp.stateOf(slot) !== r.state) continue;
      return true;
    }
    return false;
  };
}

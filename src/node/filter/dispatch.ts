/**
 * Per-class rule lists, built once per ruleset. A packet's family (4, 6), protocol (tcp, udp, icmp,
 * icmpv6, other) and ct state (none in raw, NEW .. UNTRACKED) decide the FAMILY, PROTO and CTSTATE
 * tests of every rule before it is looked at, so each chain gets, per class, the list of the rules
 * that can still match, in order, each with the `present` bits left to test ("residual"). A TCP
 * packet then never visits a `proto: udp` rule, and `ctstate: [ESTABLISHED, RELATED]` costs nothing
 * for an established packet.
 *
 * Skipping is exact: those three tests come first in ruleMatches and have no side effects (counters,
 * tokens and nth counters are touched only after every stateless test passed), so a rule left out
 * of a list is one that would have failed them. The FULL list keeps every rule with its whole
 * `present` mask: TRACE uses it (a traced packet reports every rule it is tested against, as
 * before) and so does a packet outside the classes (family 0 of an unparsable packet).
 */
import { Proto } from '../packet/fields.js';
import { M, type RuleRecord } from './record.js';

/** Class and list-slot counts (a const enum: literals in the per-packet code, as record.ts explains). */
export const enum Lists {
  FAMILIES = 2, // 4, 6
  PROTOS = 5, // tcp, udp, icmp, icmpv6, other
  CTS = 6, // none (raw: -1), NEW, ESTABLISHED, RELATED, INVALID, UNTRACKED
  P_OTHER = 4,
  CLASSES = FAMILIES * PROTOS * CTS,
  /** The unfiltered list of a chain. */
  FULL = CLASSES,
  /** List slots per chain: the classes and FULL. */
  SLOTS = CLASSES + 1,
}
/** Exact protocol number of each protocol class but "other". */
const CLASS_PROTO: readonly number[] = [Proto.TCP, Proto.UDP, Proto.ICMP, Proto.ICMPV6];

/** Protocol number -> protocol class (one byte load per packet instead of a compare chain). */
const PROTO_CLASS = new Uint8Array(256).fill(Lists.P_OTHER);
CLASS_PROTO.forEach((p, i) => (PROTO_CLASS[p] = i));

/**
 * The class of a packet, or FULL when its family or ct state is outside the classes. `proto` is an
 * IP protocol number (0..255); `ctState` a CtState code, -1 in the raw chain.
 */
export function packetClass(family: number, proto: number, ctState: number): number {
  const f = family === 4 ? 0 : family === 6 ? 1 : -1;
  const c = ctState + 1;
  if (f < 0 || c < 0 || c >= Lists.CTS) return Lists.FULL;
  return (c * Lists.FAMILIES + f) * Lists.PROTOS + PROTO_CLASS[proto & 255];
}

/**
 * What is left of rule `r`'s `present` bits for packets of class `cls`, or -1 when no packet of the
 * class can match it. Mirrors the first three tests of ruleMatches.
 */
function residual(r: RuleRecord, cls: number): number {
  let p = r.present;
  const n = r.neg;
  const pc = cls % Lists.PROTOS;
  const family = Math.floor(cls / Lists.PROTOS) % Lists.FAMILIES === 0 ? 4 : 6;
  const ctState = Math.floor(cls / (Lists.PROTOS * Lists.FAMILIES)) - 1;
  if ((p & M.FAMILY) !== 0) {
    if (r.family !== family) return -1;
    p &= ~M.FAMILY;
  }
  if ((p & M.PROTO) !== 0) {
    const negated = (n & M.PROTO) !== 0;
    if (pc !== Lists.P_OTHER) {
      if ((r.proto === CLASS_PROTO[pc]) === negated) return -1;
      p &= ~M.PROTO;
    } else if (CLASS_PROTO.includes(r.proto)) {
      // An "other" packet never has this protocol: the plain match fails, the negated one holds.
      if (!negated) return -1;
      p &= ~M.PROTO;
    }
    // Otherwise the exact protocol is tested per packet.
  }
  if ((p & M.CTSTATE) !== 0) {
    // Same expression as ruleMatches: for -1 (raw), 1 << -1 is bit 31, never in a ct mask.
    if ((((1 << ctState) & r.ctMask) !== 0) === ((n & M.CTSTATE) !== 0)) return -1;
    p &= ~M.CTSTATE;
  }
  return p;
}

/** Flat lists: chain c, class k is entries listStart[c * Lists.SLOTS + k] .. listEnd[c * Lists.SLOTS + k]. */
export interface RuleLists {
  listStart: Int32Array;
  listEnd: Int32Array;
  /** Rule index (into CompiledRuleset.rules) of each entry. */
  listRule: Int32Array;
  /** Present bits still to test for each entry. */
  listPresent: Int32Array;
}

/** Builds the lists of every chain; equal lists (common: most rules ignore ct state) are stored once. */
export function buildRuleLists(rules: RuleRecord[], chainStart: Int32Array, chainEnd: Int32Array): RuleLists {
  const chains = chainStart.length;
  const listStart = new Int32Array(chains * Lists.SLOTS);
  const listEnd = new Int32Array(chains * Lists.SLOTS);
  const ruleIdx: number[] = [];
  const present: number[] = [];
  const seen = new Map<string, number>();
  for (let c = 0; c < chains; c++) {
    for (let k = 0; k < Lists.SLOTS; k++) {
      const ri: number[] = [];
      const rp: number[] = [];
      for (let i = chainStart[c]; i < chainEnd[c]; i++) {
        const p = k === Lists.FULL ? rules[i].present : residual(rules[i], k);
        if (p < 0) continue;
        ri.push(i);
        rp.push(p);
      }
      const key = `${ri.join(',')}/${rp.join(',')}`;
      let start = seen.get(key);
      if (start === undefined) {
        start = ruleIdx.length;
        seen.set(key, start);
        for (let j = 0; j < ri.length; j++) {
          ruleIdx.push(ri[j]);
          present.push(rp[j]);
        }
      }
      listStart[c * Lists.SLOTS + k] = start;
      listEnd[c * Lists.SLOTS + k] = start + ri.length;
    }
  }
  return { listStart, listEnd, listRule: Int32Array.from(ruleIdx), listPresent: Int32Array.from(present) };
}

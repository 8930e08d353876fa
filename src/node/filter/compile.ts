/**
 * Compiles a ruleset document ONCE into a CompiledRuleset: flat rule records laid out chain after
 * chain, numeric sets and tables, and the per-ruleset mutable state (counters, buckets, nth
 * counters, the interface cache). A document is validated (schema, then semantics) first and
 * refused whole with every error; nothing here is used until the whole compile succeeded.
 */
import { Builder, seg } from './builder.js';
import { buildRuleLists } from './dispatch.js';
import { InterfaceMatcher, type InterfaceResolver } from './ifaces.js';
import { lowerRuleset, BASE_CHAINS } from './lower.js';
import { lowerMatch } from './lower-match.js';
import type { LogSpec } from './builder.js';
import { M, RuleRecord, T } from './record.js';
import { HashLimitTable, TokenBuckets } from './ratelimit.js';
import { MatchSchema, RulesetSchema, type MatchDoc, type RulesetDoc } from './schema.js';
import type { CompiledSet } from './sets.js';
import { shapeErrors } from './shape.js';
import { Verdict } from './verdict.js';
import { compileNat, type NatRules } from '../nat/config.js';

/**
 * Connection counts for connlimit, implemented by the conntrack table: the number of tracked
 * (confirmed) connections whose original source address lies in `src`/`prefix`. `src` is the
 * packet's own address array (host-order words, not masked): read it, do not keep it. When the
 * packet itself is NEW the filter adds one for it, as the kernel's nf_conncount counts the new
 * tuple with the existing ones.
 */
export interface ConnCountSource {
  countBySource(family: number, src: Uint32Array, prefix: number): number;
}

export interface CompileOptions {
  /** Kernel ifindex -> interface name; without it, `in`/`out` matches never match. */
  interfaceName?: InterfaceResolver;
  /** Uniform [0, 1) numbers for `statistic: {mode: random}`; Math.random by default. */
  random?: () => number;
  /** Named in error messages (a file path). */
  source?: string;
}

/** Chain indexes of the two base chains. */
export const Chain = { RAW: 0, FORWARD: 1 } as const;

export class CompiledRuleset {
  readonly chainNames: string[];
  /** Verdict of each base chain's policy, -1 for user chains. */
  readonly chainPolicy: Int32Array;
  /** Rules of chain c are rules[chainStart[c] .. chainEnd[c]). */
  readonly chainStart: Int32Array;
  readonly chainEnd: Int32Array;
  readonly rules: RuleRecord[];
  /** Per chain and packet class, the rules that can match and what is left to test (dispatch.ts). */
  readonly listStart: Int32Array;
  readonly listEnd: Int32Array;
  readonly listRule: Int32Array;
  readonly listPresent: Int32Array;
  readonly ruleComments: (string | undefined)[];
  readonly rulePackets: Float64Array;
  readonly ruleBytes: Float64Array;
  /** Base chains: packets decided by the policy; user chains: packets that fell off the end. */
  readonly policyPackets: Float64Array;
  readonly policyBytes: Float64Array;
  readonly portRanges: Int32Array;
  readonly sets: CompiledSet[];
  readonly ifaces: InterfaceMatcher;
  readonly buckets: TokenBuckets;
  readonly hashlimits: HashLimitTable[];
  readonly logs: LogSpec[];
  /** LOG records suppressed by each LOG's rate limit since it last emitted. */
  readonly logSuppressed: Float64Array;
  readonly nth: Int32Array;
  /** Return stack for jumps: (chain, next rule) pairs, sized for the deepest nesting. */
  readonly stack: Int32Array;
  /** Some rule uses connlimit: the Filter must have a ConnCountSource. */
  readonly usesConnlimit: boolean;
  /** Path of the first connlimit rule, for the error when no count source is given. */
  readonly connlimitPath: string;
  readonly random: () => number;
  /** The `nat:` section compiled (src/node/nat), null when the ruleset has none. */
  nat: NatRules | null = null;

  /** Use compileRuleset(); the constructor assumes a lowered, error-free builder. */
  constructor(
    b: Builder,
    chains: { name: string; policy: number; rules: { record: RuleRecord; comment: string | undefined }[] }[],
    depth: number,
    options: CompileOptions,
  ) {
    this.chainNames = chains.map((c) => c.name);
    this.chainPolicy = Int32Array.from(chains.map((c) => c.policy));
    this.chainStart = new Int32Array(chains.length);
    this.chainEnd = new Int32Array(chains.length);
    this.rules = [];
    this.ruleComments = [];
    chains.forEach((c, i) => {
      this.chainStart[i] = this.rules.length;
      for (const r of c.rules) {
        this.rules.push(r.record);
        this.ruleComments.push(r.comment);
      }
      this.chainEnd[i] = this.rules.length;
    });
    const lists = buildRuleLists(this.rules, this.chainStart, this.chainEnd);
    this.listStart = lists.listStart;
    this.listEnd = lists.listEnd;
    this.listRule = lists.listRule;
    this.listPresent = lists.listPresent;
    this.rulePackets = new Float64Array(this.rules.length);
    this.ruleBytes = new Float64Array(this.rules.length);
    this.policyPackets = new Float64Array(chains.length);
    this.policyBytes = new Float64Array(chains.length);
    this.portRanges = Int32Array.from(b.portRanges);
    this.sets = b.sets;
    this.ifaces = new InterfaceMatcher(options.interfaceName, b.ifPatterns);
    this.buckets = new TokenBuckets(b.buckets.length);
    b.buckets.forEach((s, i) => this.buckets.init(i, s.perMs, s.burst));
    this.hashlimits = b.hashlimits.map(
      (h) => new HashLimitTable(h.capacity, h.perMs, h.burst, h.expireMs, h.prefix4, h.prefix6),
    );
    this.logs = b.logs;
    this.logSuppressed = new Float64Array(b.logs.length);
    this.nth = new Int32Array(b.statCount);
    for (const r of this.rules) if (r.statIdx >= 0) this.nth[r.statIdx] = r.statPacket;
    this.stack = new Int32Array((depth + 1) * 2);
    let connlimitPath = '';
    chains.forEach((c) =>
      c.rules.forEach((r, i) => {
        if ((r.record.present & M.CONNLIMIT) !== 0 && connlimitPath === '') {
          connlimitPath = `/chains/${seg(c.name)}/rules/${i}/match/connlimit`;
        }
      }),
    );
    this.connlimitPath = connlimitPath;
    this.usesConnlimit = connlimitPath !== '';
    this.random = options.random ?? Math.random;
  }

  /** Index of a chain by name, or -1. */
  chainIndex(name: string): number {
    return this.chainNames.indexOf(name);
  }
}

/**
 * Validates and compiles a ruleset document (as parseRuleset returns it, or built in code).
 * Throws RulesetError listing every error.
 */
export function compileRuleset(doc: unknown, options: CompileOptions = {}): CompiledRuleset {
  const b = new Builder();
  b.errors.push(...shapeErrors(RulesetSchema, doc));
  const lowered = lowerRuleset(doc, b);
  const natDoc = typeof doc === 'object' && doc !== null ? (doc as { nat?: unknown }).nat : undefined;
  const nat = compileNat(natDoc, b.errors, options.interfaceName);
  b.throwIfErrors(options.source);
  const rs = new CompiledRuleset(b, lowered.chains, lowered.depth, options);
  rs.nat = nat;
  return rs;
}

/**
 * Compiles a match object alone (the TRACE selector) into a one-rule ruleset whose only rule
 * carries it. Named sets are not available to it.
 */
export function compileSelector(match: unknown, options: CompileOptions = {}): CompiledRuleset {
  const b = new Builder();
  b.errors.push(...shapeErrors(MatchSchema, match));
  const rec = new RuleRecord();
  lowerMatch(b, match, '', 0, rec);
  rec.target = T.ACCEPT;
  b.throwIfErrors('trace selector');
  const chains = [
    { name: BASE_CHAINS[0], policy: Verdict.ACCEPT, rules: [{ record: rec, comment: undefined }] },
    { name: BASE_CHAINS[1], policy: Verdict.ACCEPT, rules: [] },
  ];
  return new CompiledRuleset(b, chains, 0, options);
}

export type { MatchDoc, RulesetDoc };

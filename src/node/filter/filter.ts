/**
 * The running filter: holds the current compiled ruleset, swaps it atomically, and evaluates the
 * raw chain (before conntrack) and the forward chain (after it) for each packet.
 */
import type { PacketFields } from '../packet/fields.js';
import { Chain, compileSelector, type CompiledRuleset, type ConnCountSource } from './compile.js';
import { RulesetError } from './errors.js';
import { runChain, ruleMatches, type EvalSinks } from './evaluate.js';
import type { LogSink, TraceSink } from './log.js';
import type { InterfaceResolver } from './ifaces.js';
import { RejectKind, Verdict, type CtInfo, type FilterResult, type PacketMeta } from './verdict.js';

export interface FilterOptions {
  /** Connection counts for connlimit (the conntrack table). Required by rulesets that use it. */
  connCount?: ConnCountSource;
  /** Receives LOG records. Without it, LOG rules only count. */
  logSink?: LogSink;
  /** Receives TRACE events for packets matching the selector given to setTrace. */
  traceSink?: TraceSink;
  /** Interface resolver for the TRACE selector's `in`/`out`. */
  interfaceName?: InterfaceResolver;
}

export interface RuleCounters {
  index: number;
  comment: string | undefined;
  packets: number;
  bytes: number;
}

export interface ChainCounters {
  name: string;
  /** 'accept' / 'drop' for base chains, null for user chains. */
  policy: 'accept' | 'drop' | null;
  /** Packets decided by the policy (base chains) or returned off the end (user chains). */
  policyPackets: number;
  policyBytes: number;
  rules: RuleCounters[];
}

export class Filter {
  #rs: CompiledRuleset;
  #selector: CompiledRuleset | null = null;
  #selectorDoc: unknown = null;
  #traceSeq = 0;
  readonly #sinks: EvalSinks;
  readonly #options: FilterOptions;

  constructor(ruleset: CompiledRuleset, options: FilterOptions = {}) {
    this.#options = options;
    this.#sinks = { log: options.logSink ?? null, trace: options.traceSink ?? null, conn: options.connCount ?? null };
    this.#check(ruleset);
    this.#rs = ruleset;
  }

  /** The ruleset in force. */
  get ruleset(): CompiledRuleset {
    return this.#rs;
  }

  /**
   * Puts `next` in force for the next packet. It was parsed, validated and compiled completely
   * before; if it cannot run here (connlimit without a count source) it is refused and the current
   * ruleset stays. Counters, buckets and the interface cache are those of `next` (fresh).
   */
  replace(next: CompiledRuleset): void {
    this.#check(next);
    this.#rs = next;
  }

  #check(rs: CompiledRuleset): void {
    if (rs.usesConnlimit && this.#sinks.conn === null) {
      throw new RulesetError([{
        path: rs.connlimitPath,
        message: 'connlimit needs connection counts: create the Filter with options.connCount (the conntrack table)',
      }]);
    }
  }

  /**
   * Traces packets matching `selector` (a match object, as in a rule, without named sets) through
   * both chains, reporting each rule passed to options.traceSink; null stops tracing. Throws
   * RulesetError for a bad selector (tracing is left as it was).
   */
  setTrace(selector: unknown): void {
    if (selector === null) {
      this.#selector = null;
      this.#selectorDoc = null;
      return;
    }
    const compiled = compileSelector(selector, { interfaceName: this.#options.interfaceName });
    if (compiled.usesConnlimit && this.#sinks.conn === null) {
      throw new RulesetError([{ path: '/connlimit', message: 'connlimit needs options.connCount' }], 'trace selector');
    }
    this.#selector = compiled;
    this.#selectorDoc = selector;
  }

  /** The selector passed to setTrace, or null. */
  get traceSelector(): unknown {
    return this.#selectorDoc;
  }

  #traceId(pkt: PacketFields, meta: PacketMeta, ctState: number, connmark: number): number {
    const sel = this.#selector;
    if (sel === null || this.#sinks.trace === null) return 0;
    if (!ruleMatches(sel, sel.rules[0], sel.rules[0].present, pkt, meta, ctState, meta.mark, connmark, this.#sinks.conn)) return 0;
    return ++this.#traceSeq;
  }

  /** Raw chain, before conntrack: NOTRACK, early drops, marks. */
  evalRaw(pkt: PacketFields, meta: PacketMeta, out: FilterResult): number {
    reset(out, meta.mark, 0);
    const id = this.#selector === null ? 0 : this.#traceId(pkt, meta, -1, 0);
    const v = runChain(this.#rs, Chain.RAW, pkt, meta, null, out, this.#sinks, id);
    out.markChanged = out.mark !== meta.mark >>> 0;
    return v;
  }

  /** Forward chain, after conntrack, with the packet's ct state and its entry's connmark. */
  evalForward(pkt: PacketFields, meta: PacketMeta, ct: CtInfo, out: FilterResult): number {
    reset(out, meta.mark, ct.connmark);
    const id = this.#selector === null ? 0 : this.#traceId(pkt, meta, ct.state, ct.connmark);
    const v = runChain(this.#rs, Chain.FORWARD, pkt, meta, ct, out, this.#sinks, id);
    out.markChanged = out.mark !== meta.mark >>> 0;
    out.connmarkChanged = out.connmark !== ct.connmark >>> 0;
    return v;
  }

  /** Forgets cached interface names (call on link rename or ifindex reuse). */
  invalidateInterfaces(): void {
    this.#rs.ifaces.invalidate();
    this.#selector?.ifaces.invalidate();
  }

  /** Rule and policy counters of the running ruleset (for metrics and the CLI). */
  counters(): ChainCounters[] {
    const rs = this.#rs;
    return rs.chainNames.map((name, c) => {
      const rules: RuleCounters[] = [];
      for (let i = rs.chainStart[c]; i < rs.chainEnd[c]; i++) {
        rules.push({
          index: i - rs.chainStart[c],
          comment: rs.ruleComments[i],
          packets: rs.rulePackets[i],
          bytes: rs.ruleBytes[i],
        });
      }
      const p = rs.chainPolicy[c];
      return {
        name,
        policy: p < 0 ? null : p === Verdict.DROP ? 'drop' : 'accept',
        policyPackets: rs.policyPackets[c],
        policyBytes: rs.policyBytes[c],
        rules,
      };
    });
  }
}

function reset(out: FilterResult, mark: number, connmark: number): void {
  out.verdict = Verdict.ACCEPT;
  out.rejectKind = RejectKind.NONE;
  out.mark = mark >>> 0;
  out.markChanged = false;
  out.connmark = connmark >>> 0;
  out.connmarkChanged = false;
  out.notrack = false;
  out.helper = 0;
  out.chain = 0;
  out.rule = -1;
}

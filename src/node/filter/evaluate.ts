/**
 * The per-packet path: walks a compiled chain, rule records in order, with jumps on a fixed return
 * stack, and fills the caller's FilterResult. Allocates nothing and builds no closures; LOG records
 * and TRACE events (objects) are built only when a LOG fires or the packet is traced.
 */
import { CtState, type CtStateCode } from '../conntrack/state.js';
import type { PacketFields } from '../packet/fields.js';
import type { CompiledRuleset, ConnCountSource } from './compile.js';
import { Lists, packetClass } from './dispatch.js';
import { buildLogRecord, summarize, type LogSink, type TraceSink } from './log.js';
import { CM, M, STAT, T, targetNames, type RuleRecord } from './record.js';
import { SetType } from './sets.js';
import { RejectKind, Verdict, verdictNames, type CtInfo, type FilterResult, type PacketMeta } from './verdict.js';

const NEW: CtStateCode = CtState.NEW;

/** Groups of match bits (a const enum, so literals in the code below). */
const enum G {
  // After each of these groups, a rule with nothing further returns early, so a typical rule (state,
  // protocol, a port, an address) costs a handful of tests, not one per match kind.
  BASIC = M.FAMILY | M.PROTO | M.CTSTATE,
  L4 = BASIC | M.DPORT | M.SPORT,
  ADDR = L4 | M.SRC | M.DST,
  /** Matches on the transport header, which a later fragment does not have. */
  L4_HEADER = M.DPORT | M.SPORT | M.TCPFLAGS | M.ICMP,
  /** Matches runChain tests inline; a rule with any other bit goes through ruleMatches. */
  FAST = M.TCPFLAGS | M.DPORT | M.SPORT | M.SRC | M.DST | M.SRCSET | M.DSTSET,
}

/** Address `a` in the pre-masked network w/m (IPv4 compares word 0 only). */
function addrIn(
  a: Uint32Array, family: number, w0: number, w1: number, w2: number, w3: number, m0: number, m1: number, m2: number,
  m3: number,
): boolean {
  return (a[0] & m0) === w0 && (family === 4 || ((a[1] & m1) === w1 && (a[2] & m2) === w2 && (a[3] & m3) === w3));
}

function portIn(ranges: Int32Array, off: number, cnt: number, port: number): boolean {
  for (let i = off * 2, end = (off + cnt) * 2; i < end; i += 2) {
    if (port >= ranges[i] && port <= ranges[i + 1]) return true;
  }
  return false;
}

/**
 * Whether rule `r` matches, testing the matches in `p`: `r.present`, or what is left of it once the
 * packet's class decided the family, protocol and ct state tests (dispatch.ts). Each match is tested
 * as `hit === negated -> no match`. Stateless matches come first; the stateful ones (statistic,
 * connlimit, limit, hashlimit) last, so they count and spend tokens only for packets that satisfy
 * the rest of the rule.
 */
export function ruleMatches(
  rs: CompiledRuleset, r: RuleRecord, p: number, pkt: PacketFields, meta: PacketMeta, ctState: number, mark: number,
  connmark: number, conn: ConnCountSource | null,
): boolean {
  if (p === 0) return true;
  const n = r.neg;
  if ((p & M.FAMILY) !== 0 && pkt.family !== r.family) return false;
  if ((p & M.PROTO) !== 0 && (pkt.proto === r.proto) === ((n & M.PROTO) !== 0)) return false;
  if ((p & M.CTSTATE) !== 0 && (((1 << ctState) & r.ctMask) !== 0) === ((n & M.CTSTATE) !== 0)) return false;
  if ((p & ~G.BASIC) === 0) return true;
  // xt_tcpudp, icmp: a fragment other than the first has no transport header and never matches.
  if ((p & G.L4_HEADER) !== 0 && pkt.isLaterFragment) return false;
  if ((p & M.DPORT) !== 0 && portIn(rs.portRanges, r.dportOff, r.dportCnt, pkt.dport) === ((n & M.DPORT) !== 0)) {
    return false;
  }
  if ((p & M.SPORT) !== 0 && portIn(rs.portRanges, r.sportOff, r.sportCnt, pkt.sport) === ((n & M.SPORT) !== 0)) {
    return false;
  }
  if ((p & ~G.L4) === 0) return true;
  if ((p & M.SRC) !== 0) {
    const a = pkt.src;
    const hit =
      (a[0] & r.srcM0) === r.src0 &&
      (r.family === 4 || ((a[1] & r.srcM1) === r.src1 && (a[2] & r.srcM2) === r.src2 && (a[3] & r.srcM3) === r.src3));
    if (hit === ((n & M.SRC) !== 0)) return false;
  }
  if ((p & M.DST) !== 0) {
    const a = pkt.dst;
    const hit =
      (a[0] & r.dstM0) === r.dst0 &&
      (r.family === 4 || ((a[1] & r.dstM1) === r.dst1 && (a[2] & r.dstM2) === r.dst2 && (a[3] & r.dstM3) === r.dst3));
    if (hit === ((n & M.DST) !== 0)) return false;
  }
  if ((p & ~G.ADDR) === 0) return true;
  if ((p & M.SRCSET) !== 0 && rs.sets[r.srcSet].hasAddr(pkt.family, pkt.src) === ((n & M.SRCSET) !== 0)) return false;
  if ((p & M.DSTSET) !== 0 && rs.sets[r.dstSet].hasAddr(pkt.family, pkt.dst) === ((n & M.DSTSET) !== 0)) return false;
  if ((p & M.IN) !== 0 && rs.ifaces.matches(meta.inIf, r.inPat, meta.now) === ((n & M.IN) !== 0)) return false;
  if ((p & M.OUT) !== 0 && rs.ifaces.matches(meta.outIf, r.outPat, meta.now) === ((n & M.OUT) !== 0)) return false;
  if ((p & M.TCPFLAGS) !== 0 && ((pkt.tcpFlags & r.flagMask) === r.flagComp) === ((n & M.TCPFLAGS) !== 0)) return false;
  if ((p & M.ICMP) !== 0) {
    const hit = pkt.icmpType === r.icmpType && (r.icmpCode < 0 || pkt.icmpCode === r.icmpCode);
    if (hit === ((n & M.ICMP) !== 0)) return false;
  }
  if ((p & M.MARK) !== 0 && ((mark & r.markMask) === r.markValue) === ((n & M.MARK) !== 0)) return false;
  if ((p & M.CONNMARK) !== 0 && ((connmark & r.cmMask) === r.cmValue) === ((n & M.CONNMARK) !== 0)) return false;
  if ((p & M.SET) !== 0) {
    const set = rs.sets[r.setIdx];
    let hit: boolean;
    if (set.type === SetType.IP_PORT) {
      // ipset's "src,dst" flags: the address from one side, protocol and port from the other.
      hit = !pkt.isLaterFragment &&
        set.hasAddrPort(pkt.family, r.setSrc0 ? pkt.src : pkt.dst, pkt.proto, r.setSrc1 ? pkt.sport : pkt.dport);
    } else {
      hit = set.hasAddr(pkt.family, r.setSrc0 ? pkt.src : pkt.dst);
    }
    if (hit === ((n & M.SET) !== 0)) return false;
  }
  if ((p & M.LENGTH) !== 0 && (pkt.ipLength >= r.lenLo && pkt.ipLength <= r.lenHi) === ((n & M.LENGTH) !== 0)) {
    return false;
  }
  if ((p & M.TIME) !== 0) {
    const secs = Math.floor(meta.now / 1000) % 86400;
    // 1970-01-01 was a Thursday (day 4 counting from Sunday = 0).
    const day = (Math.floor(meta.now / 86_400_000) + 4) % 7;
    // xt_time: start > stop means the window wraps past midnight; stop is inclusive.
    const inWindow = r.timeStart <= r.timeStop
      ? secs >= r.timeStart && secs <= r.timeStop
      : secs >= r.timeStart || secs <= r.timeStop;
    if ((inWindow && (r.timeDays & (1 << day)) !== 0) === ((n & M.TIME) !== 0)) return false;
  }
  if ((p & M.STATISTIC) !== 0) {
    let hit: boolean;
    if (r.statMode === STAT.NTH) {
      // xt_statistic nth: the counter starts at --packet and the match fires when it wraps to 0.
      const c = rs.nth[r.statIdx] === r.statEvery - 1 ? 0 : rs.nth[r.statIdx] + 1;
      rs.nth[r.statIdx] = c;
      hit = c === 0;
    } else {
      hit = rs.random() < r.statProb;
    }
    if (hit === ((n & M.STATISTIC) !== 0)) return false;
  }
  if ((p & M.CONNLIMIT) !== 0) {
    if (conn === null) return false;
    const prefix = pkt.family === 4 ? r.connPrefix4 : r.connPrefix6;
    const count = conn.countBySource(pkt.family, pkt.src, prefix) + (ctState === NEW ? 1 : 0);
    if (r.connAbove ? count <= r.connLimit : count > r.connLimit) return false;
  }
  if ((p & M.LIMIT) !== 0 && !rs.buckets.take(r.limitIdx, meta.now)) return false;
  if ((p & M.HASHLIMIT) !== 0 &&
    rs.hashlimits[r.hashIdx].take(pkt.family, pkt.src, meta.now) === ((n & M.HASHLIMIT) !== 0)) {
    return false;
  }
  return true;
}

/** Sinks and the trace id of the current packet (0 = not traced). */
export interface EvalSinks {
  log: LogSink | null;
  trace: TraceSink | null;
  conn: ConnCountSource | null;
}

const hookName = (base: number): 'raw' | 'forward' => (base === 0 ? 'raw' : 'forward');

function targetText(rs: CompiledRuleset, r: RuleRecord): string {
  return r.target === T.JUMP ? `JUMP ${rs.chainNames[r.targetArg]}` : targetNames[r.target];
}

/**
 * Runs base chain `base` for one packet. `out` must be initialised by the caller (mark, connmark).
 * `ct` is null in the raw chain. `traceId` > 0 reports each step to sinks.trace (runTraced).
 */
export function runChain(
  rs: CompiledRuleset, base: number, pkt: PacketFields, meta: PacketMeta, ct: CtInfo | null,
  out: FilterResult, sinks: EvalSinks, traceId: number,
): number {
  if (traceId > 0 && sinks.trace !== null) return runTraced(rs, base, pkt, meta, ct, out, sinks, traceId, sinks.trace);
  const rules = rs.rules;
  const stack = rs.stack;
  const listRule = rs.listRule;
  const listPresent = rs.listPresent;
  const listEnd = rs.listEnd;
  const ctState = ct === null ? -1 : ct.state;
  const family = pkt.family;
  const cls = packetClass(family, pkt.proto, ctState);
  // Per-packet values of the inline tests, read once rather than once per rule.
  const ranges = rs.portRanges;
  const sets = rs.sets;
  const laterFragment = pkt.isLaterFragment;
  const flags = pkt.tcpFlags;
  const sport = pkt.sport;
  const dport = pkt.dport;
  const src = pkt.src;
  const dst = pkt.dst;
  let chain = base;
  // j walks the chain's list for the packet's class; i is the rule index of entry j.
  let j = rs.listStart[chain * Lists.SLOTS + cls];
  let end = listEnd[chain * Lists.SLOTS + cls];
  let sp = 0;
  for (;;) {
    if (j >= end) {
      rs.policyPackets[chain] += 1;
      rs.policyBytes[chain] += pkt.ipLength;
      if (sp === 0) return finish(out, chain, -1, rs.chainPolicy[chain], RejectKind.NONE);
      sp -= 2;
      chain = stack[sp];
      j = stack[sp + 1];
      end = listEnd[chain * Lists.SLOTS + cls];
      continue;
    }
    const i = listRule[j];
    const r = rules[i];
    const p = listPresent[j];
    if ((p & ~G.FAST) !== 0) {
      if (!ruleMatches(rs, r, p, pkt, meta, ctState, out.mark, out.connmark, sinks.conn)) {
        j++;
        continue;
      }
    } else if (p !== 0) {
      // The common rule (flags, ports, addresses, address sets) is tested here on the packet's values read once,
      // without a call; cheapest tests first (all are stateless, so the order does not matter).
      const n = r.neg;
      if ((p & G.L4_HEADER) !== 0 && laterFragment) {
        j++;
        continue;
      }
      if ((p & M.TCPFLAGS) !== 0 && ((flags & r.flagMask) === r.flagComp) === ((n & M.TCPFLAGS) !== 0)) {
        j++;
        continue;
      }
      if ((p & M.DPORT) !== 0 && portIn(ranges, r.dportOff, r.dportCnt, dport) === ((n & M.DPORT) !== 0)) {
        j++;
        continue;
      }
      if ((p & M.SPORT) !== 0 && portIn(ranges, r.sportOff, r.sportCnt, sport) === ((n & M.SPORT) !== 0)) {
        j++;
        continue;
      }
      if ((p & M.SRC) !== 0 && addrIn(src, r.family, r.src0, r.src1, r.src2, r.src3, r.srcM0, r.srcM1, r.srcM2,
        r.srcM3) === ((n & M.SRC) !== 0)) {
        j++;
        continue;
      }
      if ((p & M.DST) !== 0 && addrIn(dst, r.family, r.dst0, r.dst1, r.dst2, r.dst3, r.dstM0, r.dstM1, r.dstM2,
        r.dstM3) === ((n & M.DST) !== 0)) {
        j++;
        continue;
      }
      if ((p & M.SRCSET) !== 0 && sets[r.srcSet].hasAddr(family, src) === ((n & M.SRCSET) !== 0)) {
        j++;
        continue;
      }
      if ((p & M.DSTSET) !== 0 && sets[r.dstSet].hasAddr(family, dst) === ((n & M.DSTSET) !== 0)) {
        j++;
        continue;
      }
    }
    rs.rulePackets[i] += 1;
    rs.ruleBytes[i] += pkt.ipLength;
    const target = r.target;
    if (target <= T.REJECT) {
      // ACCEPT, DROP, REJECT: T and Verdict number these differently.
      const v = target === T.ACCEPT ? Verdict.ACCEPT : target === T.DROP ? Verdict.DROP : Verdict.REJECT;
      return finish(out, chain, i - rs.chainStart[chain], v, target === T.REJECT ? r.targetArg : RejectKind.NONE);
    }
    if (target === T.JUMP) {
      // The return point is a list position: the caller's list is of the same class.
      stack[sp] = chain;
      stack[sp + 1] = j + 1;
      sp += 2;
      chain = r.targetArg;
      j = rs.listStart[chain * Lists.SLOTS + cls];
      end = listEnd[chain * Lists.SLOTS + cls];
      continue;
    }
    if (target === T.RETURN) {
      if (sp === 0) {
        // RETURN in a base chain applies its policy (iptables).
        rs.policyPackets[chain] += 1;
        rs.policyBytes[chain] += pkt.ipLength;
        return finish(out, chain, -1, rs.chainPolicy[chain], RejectKind.NONE);
      }
      sp -= 2;
      chain = stack[sp];
      j = stack[sp + 1];
      end = listEnd[chain * Lists.SLOTS + cls];
      continue;
    }
    act(rs, r, i, chain, pkt, meta, ctState, out, sinks.log);
    j++;
  }
}

function finish(out: FilterResult, chain: number, rule: number, verdict: number, reject: number): number {
  out.verdict = verdict;
  out.rejectKind = reject;
  out.chain = chain;
  out.rule = rule;
  return verdict;
}

/** The targets that do not end the walk: LOG, MARK, CONNMARK, NOTRACK, HELPER. */
function act(
  rs: CompiledRuleset, r: RuleRecord, i: number, chain: number, pkt: PacketFields, meta: PacketMeta, ctState: number,
  out: FilterResult, log: LogSink | null,
): void {
  switch (r.target) {
    case T.LOG:
      if (log !== null) emitLog(rs, r, i, chain, pkt, meta, ctState, out.mark, log);
      break;
    case T.MARK:
      out.mark = (((out.mark & r.markAnd) | r.markOr) ^ r.markXor) >>> 0;
      break;
    case T.CONNMARK:
      if (r.cmOp === CM.SET) out.connmark = ((out.connmark & ~r.cmArgMask) | r.cmArgValue) >>> 0;
      else if (r.cmOp === CM.SAVE) out.connmark = ((out.connmark & ~r.cmArgMask) | (out.mark & r.cmArgMask)) >>> 0;
      else out.mark = ((out.mark & ~r.cmArgMask) | (out.connmark & r.cmArgMask)) >>> 0;
      break;
    case T.NOTRACK:
      out.notrack = true;
      break;
    case T.HELPER:
      out.helper = r.targetArg;
      break;
    default:
      break;
  }
}

/**
 * runChain for a traced packet: walks every rule (the FULL lists, each rule with its whole
 * `present`), reporting the packet, each rule tested, each return off a user chain and the verdict.
 */
function runTraced(
  rs: CompiledRuleset, base: number, pkt: PacketFields, meta: PacketMeta, ct: CtInfo | null,
  out: FilterResult, sinks: EvalSinks, traceId: number, tracer: TraceSink,
): number {
  const rules = rs.rules;
  const stack = rs.stack;
  const ctState = ct === null ? -1 : ct.state;
  tracer.trace({ id: traceId, kind: 'packet', hook: hookName(base), chain: rs.chainNames[base], rule: -1,
    matched: false, target: '', packet: summarize(pkt, meta) });
  let chain = base;
  let j = rs.listStart[chain * Lists.SLOTS + Lists.FULL];
  let end = rs.listEnd[chain * Lists.SLOTS + Lists.FULL];
  let sp = 0;
  for (;;) {
    if (j >= end) {
      rs.policyPackets[chain] += 1;
      rs.policyBytes[chain] += pkt.ipLength;
      if (sp === 0) return decide(rs, out, chain, -1, rs.chainPolicy[chain], RejectKind.NONE, tracer, traceId, base);
      tracer.trace({ id: traceId, kind: 'return', hook: hookName(base), chain: rs.chainNames[chain], rule: -1,
        matched: false, target: 'RETURN' });
      sp -= 2;
      chain = stack[sp];
      j = stack[sp + 1];
      end = rs.listEnd[chain * Lists.SLOTS + Lists.FULL];
      continue;
    }
    const i = rs.listRule[j];
    const r = rules[i];
    const matched = ruleMatches(rs, r, rs.listPresent[j], pkt, meta, ctState, out.mark, out.connmark, sinks.conn);
    tracer.trace({ id: traceId, kind: 'rule', hook: hookName(base), chain: rs.chainNames[chain],
      rule: i - rs.chainStart[chain], matched, target: matched ? targetText(rs, r) : '' });
    if (!matched) {
      j++;
      continue;
    }
    rs.rulePackets[i] += 1;
    rs.ruleBytes[i] += pkt.ipLength;
    switch (r.target) {
      case T.ACCEPT:
        return decide(rs, out, chain, i - rs.chainStart[chain], Verdict.ACCEPT, RejectKind.NONE, tracer, traceId, base);
      case T.DROP:
        return decide(rs, out, chain, i - rs.chainStart[chain], Verdict.DROP, RejectKind.NONE, tracer, traceId, base);
      case T.REJECT:
        return decide(rs, out, chain, i - rs.chainStart[chain], Verdict.REJECT, r.targetArg, tracer, traceId, base);
      case T.RETURN:
        if (sp === 0) {
          rs.policyPackets[chain] += 1;
          rs.policyBytes[chain] += pkt.ipLength;
          return decide(rs, out, chain, -1, rs.chainPolicy[chain], RejectKind.NONE, tracer, traceId, base);
        }
        sp -= 2;
        chain = stack[sp];
        j = stack[sp + 1];
        end = rs.listEnd[chain * Lists.SLOTS + Lists.FULL];
        continue;
      case T.JUMP:
        stack[sp] = chain;
        stack[sp + 1] = j + 1;
        sp += 2;
        chain = r.targetArg;
        j = rs.listStart[chain * Lists.SLOTS + Lists.FULL];
        end = rs.listEnd[chain * Lists.SLOTS + Lists.FULL];
        continue;
      default:
        act(rs, r, i, chain, pkt, meta, ctState, out, sinks.log);
        break;
    }
    j++;
  }
}

function decide(
  rs: CompiledRuleset, out: FilterResult, chain: number, rule: number, verdict: number, reject: number,
  tracer: TraceSink, traceId: number, base: number,
): number {
  finish(out, chain, rule, verdict, reject);
  tracer.trace({ id: traceId, kind: 'verdict', hook: hookName(base), chain: rs.chainNames[chain], rule,
    matched: rule >= 0, target: rule < 0 ? `policy ${verdictNames[verdict]}` : verdictNames[verdict],
    verdict: verdictNames[verdict] });
  return verdict;
}

function emitLog(
  rs: CompiledRuleset, r: RuleRecord, i: number, chain: number, pkt: PacketFields, meta: PacketMeta,
  ctState: number, mark: number, sink: LogSink,
): void {
  const li = r.targetArg;
  const spec = rs.logs[li];
  if (!rs.buckets.take(spec.bucket, meta.now)) {
    rs.logSuppressed[li] += 1;
    return;
  }
  const suppressed = rs.logSuppressed[li];
  rs.logSuppressed[li] = 0;
  sink.log(buildLogRecord(pkt, meta, mark, ctState, spec.level, spec.prefix, rs.chainNames[chain],
    i - rs.chainStart[chain], rs.ruleComments[i], suppressed));
}

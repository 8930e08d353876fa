/**
 * The compiled form of a rule: one flat object of numbers per rule, all of one shape, so that the
 * per-packet check is a few integer comparisons on monomorphic property loads (V8 keeps one hidden
 * class). `present` says which matches the rule has; `neg` which of them are negated (`!`).
 */

// The codes here are `const enum`s, not objects: tsc writes their values into the per-packet code
// as literals, where a property load from an imported object costs a module-cell load, a hole
// check and a map check on every test of every rule (measured: ~20% of a new packet's filter time).

/** Bits of RuleRecord.present / RuleRecord.neg, roughly in the order they are tested (cheap first). */
export const enum M {
  FAMILY = 1 << 0,
  PROTO = 1 << 1,
  CTSTATE = 1 << 2,
  DPORT = 1 << 3,
  SPORT = 1 << 4,
  SRC = 1 << 5,
  DST = 1 << 6,
  SRCSET = 1 << 7,
  DSTSET = 1 << 8,
  IN = 1 << 9,
  OUT = 1 << 10,
  TCPFLAGS = 1 << 11,
  ICMP = 1 << 12,
  MARK = 1 << 13,
  CONNMARK = 1 << 14,
  SET = 1 << 15,
  LENGTH = 1 << 16,
  TIME = 1 << 17,
  STATISTIC = 1 << 18,
  CONNLIMIT = 1 << 19,
  LIMIT = 1 << 20,
  HASHLIMIT = 1 << 21,
}

/** Rule targets. LOG, MARK, CONNMARK, NOTRACK and HELPER do not end traversal (as in iptables). */
export const enum T {
  ACCEPT = 0,
  DROP = 1,
  REJECT = 2,
  RETURN = 3,
  JUMP = 4,
  LOG = 5,
  MARK = 6,
  CONNMARK = 7,
  NOTRACK = 8,
  /** Attach a connection helper (targetArg: HelperId) to the new entry: raw chain only. */
  HELPER = 9,
}
export const targetNames = ['ACCEPT', 'DROP', 'REJECT', 'RETURN', 'JUMP', 'LOG', 'MARK', 'CONNMARK', 'NOTRACK', 'HELPER'];

/** CONNMARK target operations (xt_CONNMARK). */
export const enum CM { SET = 0, SAVE = 1, RESTORE = 2 }

/** Statistic modes (xt_statistic). */
export const enum STAT { NTH = 0, RANDOM = 1 }

export class RuleRecord {
  present = 0;
  neg = 0;
  /** 4 or 6 when an address or set fixes the family. */
  family = 0;
  proto = 0;
  /** Bit (1 << CtState) for each accepted state. */
  ctMask = 0;
  // Addresses as signed int32 words, pre-masked, so `(w & m) === v` compares without >>> 0.
  src0 = 0; src1 = 0; src2 = 0; src3 = 0;
  srcM0 = 0; srcM1 = 0; srcM2 = 0; srcM3 = 0;
  dst0 = 0; dst1 = 0; dst2 = 0; dst3 = 0;
  dstM0 = 0; dstM1 = 0; dstM2 = 0; dstM3 = 0;
  /** Set indexes (CompiledRuleset.sets) for src/dst lists and "@set" references. */
  srcSet = -1;
  dstSet = -1;
  /** Interface pattern ids (InterfaceMatcher). */
  inPat = -1;
  outPat = -1;
  /** [lo, hi] pairs in CompiledRuleset.portRanges: offset and number of pairs. */
  sportOff = 0; sportCnt = 0;
  dportOff = 0; dportCnt = 0;
  flagMask = 0; flagComp = 0;
  icmpType = 0;
  /** -1 = any code. */
  icmpCode = -1;
  markValue = 0; markMask = 0;
  cmValue = 0; cmMask = 0;
  /** Named set match: set index, and whether dimension 0 / 1 reads the source (else destination). */
  setIdx = -1;
  setSrc0 = false;
  setSrc1 = false;
  lenLo = 0; lenHi = 0;
  /** Seconds since midnight UTC, inclusive; start > stop wraps past midnight (xt_time). */
  timeStart = 0; timeStop = 0;
  /** 7-bit mask, bit 0 = Sunday. */
  timeDays = 0x7f;
  statMode = 0;
  statEvery = 0;
  statPacket = 0;
  statProb = 0;
  /** Index into the nth counters. */
  statIdx = -1;
  connAbove = true;
  connLimit = 0;
  connPrefix4 = 32;
  connPrefix6 = 128;
  /** Token bucket index (RateState) for `limit`. */
  limitIdx = -1;
  /** HashLimit table index for `hashlimit`. */
  hashIdx = -1;

  target = 0;
  /** REJECT: RejectKind; JUMP: chain index; LOG: log spec index. */
  targetArg = 0;
  // MARK: mark = ((mark & markAnd) | markOr) ^ markXor.
  markAnd = -1; markOr = 0; markXor = 0;
  cmOp = 0;
  cmArgValue = 0;
  cmArgMask = 0;
}

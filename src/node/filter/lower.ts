/**
 * Semantic checks and lowering of a whole ruleset document: sets, chains, the jump graph, targets.
 * Produces flat rule records and the tables they index, or every error found (with its path).
 */
import { Builder, Hook, isObject, seg } from './builder.js';
import { lowerMatch } from './lower-match.js';
import { CM, M, RuleRecord, T } from './record.js';
import { CompiledSet, parseSetElement, setTypeByName, type SetElement } from './sets.js';
import { parseMark, parseRate } from './values.js';
import { rejectKindByName, RejectKind, Verdict } from './verdict.js';
import { Proto } from '../packet/fields.js';
import { helperIdByName, helperNames, helperProto } from '../conntrack/helpers/ids.js';

/** Base chains, always at these indexes. */
export const RAW = 0;
export const FORWARD = 1;
export const BASE_CHAINS = ['raw', 'forward'] as const;

/** nftables refuses jumps nested deeper than 16 (NFT_JUMP_STACK_SIZE); so do we. */
export const MAX_JUMP_DEPTH = 16;

/** LOG's own rate limit when the rule gives none: enough to see a problem, not to flood. */
const LOG_RATE_PER_MS = 10 / 1000;
const LOG_BURST = 20;

const NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,27}$/;

export interface LoweredRule {
  record: RuleRecord;
  comment: string | undefined;
}

export interface LoweredChain {
  name: string;
  /** Verdict of a base chain's policy; -1 for a user chain. */
  policy: number;
  rules: LoweredRule[];
}

export interface Lowered {
  builder: Builder;
  chains: LoweredChain[];
  /** Deepest jump nesting, to size the return stack. */
  depth: number;
}

/** Lowers a document that passed the schema (or not: the walk is defensive). Errors are in builder. */
export function lowerRuleset(doc: unknown, b: Builder = new Builder()): Lowered {
  const root = isObject(doc) ? doc : {};
  lowerSets(b, root.sets);
  const chainDocs = isObject(root.chains) ? root.chains : {};
  if (!isObject(chainDocs.forward)) {
    b.error('/chains', 'no "forward" chain: define chains.forward with a policy (accept or drop)');
  }
  const names = [...BASE_CHAINS, ...Object.keys(chainDocs).filter((n) => !(BASE_CHAINS as readonly string[]).includes(n))];
  const index = new Map(names.map((n, i) => [n, i]));
  for (const n of names.slice(BASE_CHAINS.length)) {
    if (!NAME.test(n)) {
      b.error(`/chains/${seg(n)}`, `chain name "${n}" must start with a letter or "_" and use letters, digits, "_", "-", "." (at most 28)`);
    }
  }
  const { hooks, depth } = analyseJumps(b, chainDocs, names, index);
  const chains = names.map((name, ci): LoweredChain => {
    const c = isObject(chainDocs[name]) ? chainDocs[name] : {};
    const path = `/chains/${seg(name)}`;
    let policy = -1;
    if (ci < BASE_CHAINS.length) {
      policy = typeof c.policy === 'string' && c.policy.toLowerCase() === 'drop' ? Verdict.DROP : Verdict.ACCEPT;
    } else if (c.policy !== undefined) {
      b.error(`${path}/policy`, 'only base chains (raw, forward) have a policy; a user chain returns to its caller');
    }
    const rules = Array.isArray(c.rules) ? c.rules : [];
    return {
      name,
      policy,
      rules: rules.map((r, i) => lowerRule(b, r, `${path}/rules/${i}`, hooks[ci], index)),
    };
  });
  return { builder: b, chains, depth };
}

function lowerSets(b: Builder, sets: unknown): void {
  if (!isObject(sets)) return;
  for (const [name, s] of Object.entries(sets)) {
    const path = `/sets/${seg(name)}`;
    if (!NAME.test(name)) b.error(path, `set name "${name}" must start with a letter or "_" and use letters, digits, "_", "-", "."`);
    if (!isObject(s) || typeof s.type !== 'string' || !Array.isArray(s.elements)) continue;
    const type = setTypeByName[s.type];
    if (type === undefined) continue;
    const elements: SetElement[] = [];
    s.elements.forEach((e, i) => {
      if (typeof e !== 'string') return;
      const el = b.parse(`${path}/elements/${i}`, () => parseSetElement(type, e));
      if (el) elements.push(el);
    });
    b.setIndex.set(name, b.addSet(new CompiledSet(name, type, elements)));
  }
}

function jumpTarget(rule: unknown): string | undefined {
  if (!isObject(rule) || !isObject(rule.target)) return undefined;
  return typeof rule.target.jump === 'string' ? rule.target.jump : undefined;
}

/**
 * Checks jump targets, refuses loops (iptables-restore refuses them too: "Too many levels of
 * links"), and works out which hooks reach each chain, so hook-specific checks apply to user chains.
 */
function analyseJumps(
  b: Builder, chainDocs: Record<string, unknown>, names: string[], index: Map<string, number>,
): { hooks: number[]; depth: number } {
  const edges: number[][] = names.map(() => []);
  names.forEach((name, ci) => {
    const c = chainDocs[name];
    const rules = isObject(c) && Array.isArray(c.rules) ? c.rules : [];
    rules.forEach((r, i) => {
      const to = jumpTarget(r);
      if (to === undefined) return;
      const path = `/chains/${seg(name)}/rules/${i}/target/jump`;
      const ti = index.get(to);
      if (ti === undefined || (ti < BASE_CHAINS.length && !isObject(chainDocs[to]))) {
        b.error(path, `jump to unknown chain "${to}": define it under "chains:"`);
      } else if (ti < BASE_CHAINS.length) {
        b.error(path, `cannot jump to base chain "${to}": jump to a user chain`);
      } else edges[ci].push(ti);
    });
  });
  const hooks = names.map(() => 0);
  // 0 = unvisited, 1 = on the current path, 2 = done. depthOf = longest jump chain below.
  const stateOf = names.map(() => 0);
  const depthOf = names.map(() => 0);
  const visit = (ci: number, path: number[]): number => {
    if (stateOf[ci] === 2) return depthOf[ci];
    if (stateOf[ci] === 1) {
      const cycle = [...path.slice(path.indexOf(ci)), ci].map((i) => names[i]).join(' -> ');
      b.error(`/chains/${seg(names[ci])}`, `jump loop: ${cycle}; a chain must not reach itself`);
      return 0;
    }
    stateOf[ci] = 1;
    let d = 0;
    for (const to of edges[ci]) d = Math.max(d, 1 + visit(to, [...path, ci]));
    stateOf[ci] = 2;
    depthOf[ci] = d;
    return d;
  };
  let depth = 0;
  for (let ci = 0; ci < names.length; ci++) {
    const d = visit(ci, []);
    if (ci < BASE_CHAINS.length) depth = Math.max(depth, d);
  }
  if (depth > MAX_JUMP_DEPTH) b.error('/chains', `jumps nest ${depth} deep; at most ${MAX_JUMP_DEPTH} (as nftables)`);
  const mark = (ci: number, hook: number): void => {
    if (hooks[ci] & hook) return;
    hooks[ci] |= hook;
    for (const to of edges[ci]) mark(to, hook);
  };
  mark(0, Hook.RAW);
  mark(1, Hook.FORWARD);
  return { hooks, depth: Math.min(depth, MAX_JUMP_DEPTH) };
}

function lowerRule(b: Builder, rule: unknown, path: string, hooks: number, index: Map<string, number>): LoweredRule {
  const rec = new RuleRecord();
  if (!isObject(rule)) return { record: rec, comment: undefined };
  lowerMatch(b, rule.match, `${path}/match`, hooks, rec);
  lowerTarget(b, rule.target, `${path}/target`, hooks, rec, index);
  return { record: rec, comment: typeof rule.comment === 'string' ? rule.comment : undefined };
}

function lowerTarget(
  b: Builder, t: unknown, path: string, hooks: number, rec: RuleRecord, index: Map<string, number>,
): void {
  const inRaw = (hooks & Hook.RAW) !== 0;
  const onlyForward = (what: string): boolean => {
    if (!inRaw) return true;
    b.error(path, `${what} is not allowed in the raw chain (nor in chains it jumps to); use it in forward`);
    return false;
  };
  const isTcp = (rec.present & M.PROTO) !== 0 && (rec.neg & M.PROTO) === 0 && rec.proto === Proto.TCP;
  if (typeof t === 'string') {
    switch (t) {
      case 'ACCEPT': rec.target = T.ACCEPT; return;
      case 'DROP': rec.target = T.DROP; return;
      case 'RETURN': rec.target = T.RETURN; return;
      case 'REJECT':
        // ipt_REJECT's default answer is icmp-port-unreachable.
        if (onlyForward('REJECT')) { rec.target = T.REJECT; rec.targetArg = RejectKind.PORT_UNREACHABLE; }
        return;
      case 'NOTRACK':
        if ((hooks & Hook.FORWARD) !== 0) {
          b.error(path, 'NOTRACK only works in the raw chain (before conntrack has seen the packet)');
          return;
        }
        rec.target = T.NOTRACK;
        return;
      default:
        return;
    }
  }
  if (!isObject(t)) return;
  if (typeof t.reject === 'string') {
    const kind = rejectKindByName[t.reject];
    if (kind === undefined) {
      b.error(`${path}/reject`, `"${t.reject}" is not a reject answer: use ${Object.keys(rejectKindByName).join(', ')}`);
      return;
    }
    if (kind === RejectKind.TCP_RESET && !isTcp) {
      b.error(`${path}/reject`, 'tcp-reset needs "proto: tcp" in the match (as ipt_REJECT refuses it otherwise)');
      return;
    }
    if (onlyForward('REJECT')) { rec.target = T.REJECT; rec.targetArg = kind; }
  } else if (isObject(t.log)) {
    const log = t.log;
    const rate = typeof log.rate === 'string' ? b.parse(`${path}/log/rate`, () => parseRate(log.rate as string)) : undefined;
    const bucket = b.addBucket({
      perMs: rate ? rate.perMs : LOG_RATE_PER_MS,
      burst: typeof log.burst === 'number' ? log.burst : LOG_BURST,
    });
    b.logs.push({
      prefix: typeof log.prefix === 'string' ? log.prefix : '',
      level: typeof log.level === 'string' ? log.level : 'warning',
      bucket,
    });
    rec.target = T.LOG;
    rec.targetArg = b.logs.length - 1;
  } else if (isObject(t.mark)) {
    lowerMarkTarget(b, t.mark, `${path}/mark`, rec);
  } else if (isObject(t.connmark)) {
    if (onlyForward('CONNMARK')) lowerConnmarkTarget(b, t.connmark, `${path}/connmark`, rec);
  } else if (typeof t.helper === 'string') {
    lowerHelperTarget(b, t.helper, `${path}/helper`, hooks, rec);
  } else if (typeof t.jump === 'string') {
    const ci = index.get(t.jump);
    if (ci !== undefined) { rec.target = T.JUMP; rec.targetArg = ci; }
  }
}

/** xt_CT --helper: the helper a new entry gets; raw chain only, and the helper's protocol in the match. */
function lowerHelperTarget(b: Builder, name: string, path: string, hooks: number, rec: RuleRecord): void {
  const id = helperIdByName(name);
  if (id < 0) {
    b.error(path, `"${name}" is not a connection helper: use ${helperNames.slice(1).join(', ')}`);
    return;
  }
  if ((hooks & Hook.FORWARD) !== 0) {
    b.error(path, 'a helper is attached in the raw chain (before conntrack creates the entry), as iptables\' CT target in the raw table');
    return;
  }
  const proto = helperProto[id];
  if ((rec.present & M.PROTO) === 0 || (rec.neg & M.PROTO) !== 0 || rec.proto !== proto) {
    b.error(path, `the ${name} helper reads ${proto === Proto.TCP ? 'TCP' : 'UDP'}: the rule needs "proto: ${proto === Proto.TCP ? 'tcp' : 'udp'}" in its match`);
    return;
  }
  rec.target = T.HELPER;
  rec.targetArg = id;
}

/** xt_MARK: set v/m = (mark & ~m) | v (iptables' --set-mark), or and/or/xor a value. */
function lowerMarkTarget(b: Builder, m: Record<string, unknown>, path: string, rec: RuleRecord): void {
  const [op, raw] = Object.entries(m)[0] ?? [];
  if (raw === undefined) return;
  const v = b.parse(`${path}/${op}`, () => parseMark(raw));
  if (!v) return;
  rec.target = T.MARK;
  if (op === 'set') { rec.markAnd = ~v.mask; rec.markOr = v.value & v.mask; rec.markXor = 0; }
  else if (op === 'or') { rec.markAnd = -1; rec.markOr = v.value | 0; rec.markXor = 0; }
  else if (op === 'and') { rec.markAnd = v.value | 0; rec.markOr = 0; rec.markXor = 0; }
  else { rec.markAnd = -1; rec.markOr = 0; rec.markXor = v.value | 0; }
}

/** xt_CONNMARK: --set-mark v/m, --save-mark [--mask m], --restore-mark [--mask m]. */
function lowerConnmarkTarget(b: Builder, m: Record<string, unknown>, path: string, rec: RuleRecord): void {
  const [op, raw] = Object.entries(m)[0] ?? [];
  if (raw === undefined) return;
  const v = raw === true ? { value: 0, mask: 0xffffffff } : b.parse(`${path}/${op}`, () => parseMark(raw));
  if (!v) return;
  rec.target = T.CONNMARK;
  rec.cmOp = op === 'set' ? CM.SET : op === 'save' ? CM.SAVE : CM.RESTORE;
  // For save/restore a bare number is the mask of bits to copy.
  rec.cmArgMask = op === 'set' || raw === true ? v.mask | 0 : v.value | 0;
  rec.cmArgValue = op === 'set' ? v.value & v.mask : 0;
}

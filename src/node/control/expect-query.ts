/**
 * `twinwall expect list`: the expectations connection helpers hold (conntrack -L expect): what
 * connection each lets in as RELATED, for how long, and for which master entry.
 */
import type { Engine } from '../engine/index.js';
import { helperNames, CT_HELPER_MASK, CT_HELPER_SHIFT } from '../conntrack/helpers/index.js';
import { protoName } from '../conntrack/index.js';
import { TUPLE_WORDS } from '../conntrack/tuple.js';
import { formatAddress } from '../packet/address.js';

export interface ExpectEntry {
  /** The master entry's id (`ct get`). */
  master: number;
  helper: string;
  proto: string;
  family: number;
  src: string;
  dst: string;
  /** null: any port. */
  sport: number | null;
  dport: number | null;
  /** Seconds left. */
  timeout: number;
  /** NAT of the expected connection (its master's): the port it is sent on to, when rewritten. */
  natPort: number | null;
}

export function listExpectations(e: Engine, now: number): ExpectEntry[] {
  const t = e.conntrack.table;
  const ex = e.conntrack.expectations;
  const tuple = new Uint32Array(TUPLE_WORDS);
  const mask = new Uint32Array(TUPLE_WORDS);
  const out: ExpectEntry[] = [];
  ex.forEach(now, (idx, master, msLeft) => {
    ex.tupleOf(idx, tuple, mask);
    const family = tuple[9] >>> 8;
    const saved = ex.savedPortOf(idx);
    out.push({
      master: t.id[master],
      helper: helperNames[(t.statusOf(master) & CT_HELPER_MASK) >>> CT_HELPER_SHIFT] ?? 'none',
      proto: protoName(tuple[9] & 0xff),
      family,
      src: formatAddress(family, tuple.subarray(0, 4)),
      dst: formatAddress(family, tuple.subarray(4, 8)),
      sport: (mask[8] >>> 16) === 0 ? null : tuple[8] >>> 16,
      dport: (mask[8] & 0xffff) === 0 ? null : tuple[8] & 0xffff,
      timeout: Math.ceil(msLeft / 1000),
      natPort: saved >= 0 ? saved : null,
    });
  });
  return out;
}

/** One line per expectation, conntrack -L expect style. */
export function formatExpectations(list: readonly ExpectEntry[]): string {
  return list
    .map((x) => `${x.timeout} proto=${x.proto} src=${x.src} dst=${x.dst} sport=${x.sport ?? '*'} dport=${x.dport ?? '*'} master=${x.master} helper=${x.helper}${x.natPort !== null ? ` nat-dport=${x.natPort}` : ''}\n`)
    .join('');
}

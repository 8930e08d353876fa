/**
 * `ct diff`: compare two nodes' tables as entry records (from `ct save` or exportEntry), keyed by
 * original tuple. What must match for a takeover to lose nothing: the reply tuple (NAT mapping),
 * the status bits that mean something to the flow (seen reply, assured, NAT, expected), the mark,
 * the label and the TCP state. Counters, timeouts and window data legitimately trail by up to a
 * refresh interval and are not compared.
 */
import { ENTRY_RECORD_WORDS } from '../node/conntrack/index.js';
import { RECORD_STATUS_BITS, ER_LABEL, ER_MARK, ER_REPLY, ER_STATUS, ER_TCP } from '../node/conntrack/entry-record.js';

const KEY_WORDS = 10;
/** Status bits compared (REPLICATED is where the entry lives, not what it is). */
const COMPARED_STATUS = RECORD_STATUS_BITS;

export interface DiffResult {
  /** Entries in `a` that `b` lacks (original tuple words as a key string, and the record). */
  missing: Uint32Array[];
  /** Entries in `b` that `a` lacks. */
  extra: Uint32Array[];
  /** Entries in both that differ: [a's, b's, the fields that differ]. */
  differing: [Uint32Array, Uint32Array, string[]][];
}

function key(r: Uint32Array): string {
  return Array.from(r.subarray(0, KEY_WORDS)).join(',');
}

/** The fields of two records of the same flow that differ. */
export function recordDifferences(a: Uint32Array, b: Uint32Array): string[] {
  const d: string[] = [];
  for (let i = 0; i < KEY_WORDS; i++) {
    if (a[ER_REPLY + i] !== b[ER_REPLY + i]) {
      d.push('reply tuple (NAT mapping)');
      break;
    }
  }
  if ((a[ER_STATUS] & COMPARED_STATUS) !== (b[ER_STATUS] & COMPARED_STATUS)) d.push('status');
  if (a[ER_MARK] !== b[ER_MARK]) d.push('mark');
  if (a[ER_LABEL] !== b[ER_LABEL]) d.push('label');
  if ((a[ER_TCP] & 0xff) !== (b[ER_TCP] & 0xff)) d.push('tcp state');
  return d;
}

export function diffRecords(a: readonly Uint32Array[], b: readonly Uint32Array[]): DiffResult {
  const bk = new Map<string, Uint32Array>();
  for (const r of b) bk.set(key(r), r);
  const res: DiffResult = { missing: [], extra: [], differing: [] };
  for (const r of a) {
    const k = key(r);
    const other = bk.get(k);
    if (other === undefined) {
      res.missing.push(r);
      continue;
    }
    bk.delete(k);
    const d = recordDifferences(r, other);
    if (d.length > 0) res.differing.push([r, other, d]);
  }
  res.extra.push(...bk.values());
  return res;
}

/** Every entry of a table as records (at `now`). */
export function tableRecords(t: { forEach(fn: (slot: number) => void): void; exportEntry(slot: number, now: number, out: Uint32Array, off: number): void }, now: number): Uint32Array[] {
  const out: Uint32Array[] = [];
  t.forEach((slot) => {
    const r = new Uint32Array(ENTRY_RECORD_WORDS);
    t.exportEntry(slot, now, r, 0);
    out.push(r);
  });
  return out;
}

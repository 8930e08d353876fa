/**
 * `twinwall ct diff --peer-socket PATH`: this node's table against the peer's, as sync should keep
 * them. Both are read with GET /ct/save, their records decoded and compared by original tuple
 * (src/sync/diff.ts: reply tuple, flow status bits, mark, label and TCP state; counters, timeouts
 * and window data may trail by a refresh and are not compared). Entries print as `ct list` lines.
 * The two tables are read a moment apart: on a busy pair, flows created in that moment may show
 * (run it again: a real divergence stays).
 */
import { ENTRY_RECORD_BYTES, ENTRY_RECORD_WORDS, recordFromBytes } from '../../node/conntrack/index.js';
import { SAVE_FORMAT, type ControlClient, type SavedEntry, type SavedTable } from '../../node/control/index.js';
import { diffRecords } from '../../sync/index.js';
import { CliExit, EXIT_REFUSED } from './io.js';

/** ct diff's exit code when the tables differ (0 when they are equal). */
export const EXIT_TABLES_DIFFER = 1;

/** An entry as ct diff shows it: the saved entry without its record. */
export type DiffEntry = Omit<SavedEntry, 'record'>;

export interface TableDiff {
  equal: boolean;
  here: { socket: string; entries: number };
  peer: { socket: string; entries: number };
  /** On this node, not on the peer. */
  missing: DiffEntry[];
  /** On the peer, not on this node. */
  extra: DiffEntry[];
  /** On both, different in `fields`. */
  differing: { here: DiffEntry; peer: DiffEntry; fields: string[] }[];
}

/** The records of a saved table, each mapped back to its entry. */
function decode(t: SavedTable, socket: string): Map<Uint32Array, DiffEntry> {
  if (t.format !== SAVE_FORMAT) {
    throw new CliExit(EXIT_REFUSED, `the node on ${socket} saves its table as ${String(t.format)}, not ${SAVE_FORMAT}: run the same twinwall version on both nodes`);
  }
  const out = new Map<Uint32Array, DiffEntry>();
  t.entries.forEach((e, i) => {
    const bytes = Buffer.from(e.record, 'base64');
    if (bytes.length !== ENTRY_RECORD_BYTES) {
      throw new CliExit(EXIT_REFUSED, `the node on ${socket} sent a bad record at /entries/${i}/record: not the base64 of a ${ENTRY_RECORD_BYTES}-byte record`);
    }
    const words = new Uint32Array(ENTRY_RECORD_WORDS);
    recordFromBytes(bytes, 0, words, 0);
    const { record: _record, ...entry } = e;
    out.set(words, entry);
  });
  return out;
}

export async function diffTables(here: ControlClient, peer: ControlClient): Promise<TableDiff> {
  const [a, b] = await Promise.all([here.call<SavedTable>('GET', '/ct/save'), peer.call<SavedTable>('GET', '/ct/save')]);
  const ea = decode(a, here.socketPath);
  const eb = decode(b, peer.socketPath);
  const d = diffRecords([...ea.keys()], [...eb.keys()]);
  const entry = (m: Map<Uint32Array, DiffEntry>, r: Uint32Array): DiffEntry => m.get(r) as DiffEntry;
  return {
    equal: d.missing.length === 0 && d.extra.length === 0 && d.differing.length === 0,
    here: { socket: here.socketPath, entries: ea.size },
    peer: { socket: peer.socketPath, entries: eb.size },
    missing: d.missing.map((r) => entry(ea, r)),
    extra: d.extra.map((r) => entry(eb, r)),
    differing: d.differing.map(([ra, rb, fields]) => ({ here: entry(ea, ra), peer: entry(eb, rb), fields })),
  };
}

const line = (e: DiffEntry): string => `  ${e.line} id=${e.id}`;

export function summary(d: TableDiff): string {
  if (d.equal) return `tables equal: ${d.here.entries} entries on this node and on the peer`;
  return `tables differ: ${d.missing.length} missing on the peer, ${d.extra.length} extra on the peer, ${d.differing.length} differing ` +
    `(${d.here.entries} entries on this node, ${d.peer.entries} on the peer)`;
}

export function formatDiff(d: TableDiff): string {
  const out: string[] = [];
  if (d.missing.length > 0) out.push(`missing on the peer (${d.missing.length}), on this node only:`, ...d.missing.map(line));
  if (d.extra.length > 0) out.push(`extra on the peer (${d.extra.length}), not on this node:`, ...d.extra.map(line));
  if (d.differing.length > 0) {
    out.push(`differing (${d.differing.length}):`);
    for (const x of d.differing) out.push(`${line(x.here)}`, `${line(x.peer)}  (peer)`, `    differ in: ${x.fields.join(', ')}`);
  }
  out.push(summary(d));
  return `${out.join('\n')}\n`;
}

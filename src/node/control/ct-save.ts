/**
 * `ct save` / `ct restore`: the table as JSON, one object per entry with the readable fields of
 * `ct list` and the whole entry as a base64 record (entry-record.ts), which is what restore reads.
 * A restore checks every record first and changes nothing when one is bad; then it imports them,
 * overwriting entries with the same tuples.
 */
import {
  ENTRY_RECORD_BYTES, ENTRY_RECORD_WORDS, ImportResult, checkEntryRecord, entryInfo, formatEntry, recordFromBytes,
  recordToBytes, type ConntrackTable, type EntryInfo,
} from '../conntrack/index.js';
import { ApiError, type ApiIssue } from './errors.js';
import type { CtRestoreBodyDoc } from './schemas.js';

export const SAVE_FORMAT = 'twinwall-ct-save/2';
/** A million entries saved take ~700 MB of JSON; restore reads up to this much. */
export const RESTORE_MAX_BODY = 1024 * 1024 * 1024;
/** Errors listed in a refused restore (the count says how many there were). */
const MAX_LISTED = 50;

export interface SavedEntry extends EntryInfo {
  line: string;
  record: string;
}

export interface SavedTable {
  format: string;
  savedAt: number;
  entries: SavedEntry[];
}

export interface RestoreReport {
  restored: number;
  created: number;
  replaced: number;
  /** Entries not restored because the table was full. */
  tableFull: number;
}

export function saveTable(t: ConntrackTable, now: number): SavedTable {
  const words = new Uint32Array(ENTRY_RECORD_WORDS);
  const bytes = Buffer.alloc(ENTRY_RECORD_BYTES);
  const entries: SavedEntry[] = [];
  t.forEach((slot) => {
    t.exportEntry(slot, now, words, 0);
    recordToBytes(words, 0, bytes, 0);
    entries.push({ ...entryInfo(t, slot, now), line: formatEntry(t, slot, now), record: bytes.toString('base64') });
  });
  return { format: SAVE_FORMAT, savedAt: now, entries };
}

export function restoreTable(t: ConntrackTable, now: number, doc: CtRestoreBodyDoc): RestoreReport {
  if (doc.format !== SAVE_FORMAT) {
    const why = doc.format === 'twinwall-ct-save/1'
      ? 'a twinwall-ct-save/1 file has no window data and cannot be restored; save the table again with this version'
      : `unknown format "${doc.format}"; expected ${SAVE_FORMAT}`;
    throw new ApiError(422, 'CT_RESTORE_FORMAT', `restore refused: ${why}; the table is unchanged`, [{ path: '/body/format', message: why }]);
  }
  const n = doc.entries.length;
  const words = new Uint32Array(n * ENTRY_RECORD_WORDS);
  const errors: ApiIssue[] = [];
  let bad = 0;
  for (let i = 0; i < n; i++) {
    const text = doc.entries[i].record;
    const bytes = Buffer.from(text, 'base64');
    let why: string | null;
    if (bytes.length !== ENTRY_RECORD_BYTES || bytes.toString('base64') !== text) {
      why = `not the base64 of a ${ENTRY_RECORD_BYTES}-byte record`;
    } else {
      recordFromBytes(bytes, 0, words, i * ENTRY_RECORD_WORDS);
      why = checkEntryRecord(words, i * ENTRY_RECORD_WORDS);
    }
    if (why !== null) {
      bad++;
      if (errors.length < MAX_LISTED) errors.push({ path: `/body/entries/${i}/record`, message: why });
    }
  }
  if (bad > 0) {
    throw new ApiError(422, 'CT_RESTORE_INVALID',
      `restore refused: ${bad} of ${n} entries cannot be restored${bad > MAX_LISTED ? ` (the first ${MAX_LISTED} listed)` : ''}; the table is unchanged`, errors);
  }
  const report: RestoreReport = { restored: 0, created: 0, replaced: 0, tableFull: 0 };
  for (let i = 0; i < n; i++) {
    const r = t.importEntry(words, i * ENTRY_RECORD_WORDS, now);
    if (r === ImportResult.CREATED) report.created++;
    else if (r === ImportResult.UPDATED) report.replaced++;
    else report.tableFull++;
  }
  report.restored = report.created + report.replaced;
  return report;
}

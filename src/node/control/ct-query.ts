/**
 * Conntrack table queries for the control API (conntrack -L / -G / -D): list with filters, find by
 * id, delete. Walks the table; not for the packet path.
 */
import { DestroyReason, entryInfo, formatEntry, protoName, type ConntrackTable, type EntryInfo } from '../conntrack/index.js';
import { parseAddress, parseCidr, prefixMask, type Cidr } from '../packet/index.js';
import { ApiError, type ApiIssue } from './errors.js';
import type { CtListQueryDoc } from './schemas.js';

export interface CtFilter {
  proto?: string;
  src?: Cidr;
  dst?: Cidr;
  sport?: number;
  dport?: number;
  port?: number;
}

/** An entry as the API returns it: the structured fields plus its `conntrack -L` line. */
export type CtEntry = EntryInfo & { line: string };

/** Query strings -> filter; ApiError 400 with every bad value. */
export function ctFilter(q: CtListQueryDoc): CtFilter {
  const errors: ApiIssue[] = [];
  const f: CtFilter = {};
  if (q.proto !== undefined) f.proto = /^[0-9]+$/.test(q.proto) ? protoName(Number(q.proto)) : q.proto;
  for (const key of ['src', 'dst'] as const) {
    const v = q[key];
    if (v === undefined) continue;
    try {
      f[key] = parseCidr(v);
    } catch (e) {
      errors.push({ path: `/query/${key}`, message: e instanceof Error ? e.message : String(e) });
    }
  }
  for (const key of ['sport', 'dport', 'port'] as const) {
    const v = q[key];
    if (v === undefined) continue;
    const n = Number(v);
    if (n > 65535) errors.push({ path: `/query/${key}`, message: `port ${n} is above 65535` });
    else f[key] = n;
  }
  if (errors.length) throw new ApiError(400, 'REQUEST_INVALID', 'request refused: bad conntrack filter', errors);
  return f;
}

function inCidr(c: Cidr, family: number, text: string): boolean {
  if (c.family !== family) return false;
  const a = parseAddress(text).words;
  const m = prefixMask(c.family, c.prefix);
  for (let i = 0; i < 4; i++) if (((a[i] & m[i]) >>> 0) !== c.words[i]) return false;
  return true;
}

function matches(f: CtFilter, e: EntryInfo): boolean {
  const o = e.original;
  if (f.proto !== undefined && e.proto !== f.proto) return false;
  if (f.src && !inCidr(f.src, o.family, o.src)) return false;
  if (f.dst && !inCidr(f.dst, o.family, o.dst)) return false;
  if (f.sport !== undefined && o.sport !== f.sport) return false;
  if (f.dport !== undefined && o.dport !== f.dport) return false;
  if (f.port !== undefined && o.sport !== f.port && o.dport !== f.port) return false;
  return true;
}

export function listEntries(t: ConntrackTable, now: number, f: CtFilter = {}): CtEntry[] {
  const out: CtEntry[] = [];
  t.forEach((slot) => {
    const info = entryInfo(t, slot, now);
    if (matches(f, info)) out.push({ ...info, line: formatEntry(t, slot, now) });
  });
  return out;
}

/** The slot of the confirmed entry with this id, or -1. */
export function findSlot(t: ConntrackTable, id: number): number {
  let found = -1;
  t.forEach((slot) => {
    if (found < 0 && t.id[slot] === id) found = slot;
  });
  return found;
}

export function getEntry(t: ConntrackTable, now: number, id: number): CtEntry {
  const slot = findSlot(t, id);
  if (slot < 0) throw notFound(id);
  return { ...entryInfo(t, slot, now), line: formatEntry(t, slot, now) };
}

export function deleteEntry(t: ConntrackTable, id: number): void {
  const slot = findSlot(t, id);
  if (slot < 0) throw notFound(id);
  t.destroy(slot, DestroyReason.DELETED);
}

function notFound(id: number): ApiError {
  return new ApiError(404, 'CT_ENTRY_NOT_FOUND', `no conntrack entry with id ${id} (it may have expired); list them with \`twinwall ct list\``);
}

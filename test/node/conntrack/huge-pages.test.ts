/**
 * A preallocated conntrack table asks for 2 MiB pages (native/mem) for its records and index
 * before it writes them: the process's anonymous huge pages grow by about their size. Without
 * preallocation nothing is asked. Checked against the real kernel (its "madvise" or "always"
 * transparent huge page mode; a kernel set to "never" ignores the advice, so then only the
 * advice's result is checked).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConntrackTable, REC_WORDS } from '../../../src/node/conntrack/index.js';

function anonHugeKb(): number {
  const m = /AnonHugePages:\s+(\d+) kB/.exec(readFileSync('/proc/self/smaps_rollup', 'utf8'));
  return m ? Number(m[1]) : 0;
}

const thpMode = /\[(\w+)\]/.exec(readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8'))?.[1] ?? 'never';

describe('conntrack table on huge pages', () => {
  it('a preallocated table takes its records and index from 2 MiB pages', () => {
    const before = anonHugeKb();
    const t = new ConntrackTable({ maxEntries: 200_000, initialCapacity: 200_000, prefault: true });
    expect(t.hugePagesErrno).toBe(0);
    if (thpMode === 'never') return;
    const recordsKb = (200_000 * REC_WORDS * 4) / 1024;
    // Records (~37 MiB) and index (~4 MiB), less the unaligned ends of each buffer.
    expect(anonHugeKb() - before).toBeGreaterThan(recordsKb * 0.8);
    expect(t.count).toBe(0);
  });

  it('a table that is not preallocated asks for nothing', () => {
    const t = new ConntrackTable({ maxEntries: 200_000, initialCapacity: 200_000 });
    expect(t.hugePagesErrno).toBe(-1);
  });
});

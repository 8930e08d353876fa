import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { setThreadRealtime } from '../../src/failover/advert-pacer.js';

/** The calling thread's scheduling policy and real-time priority (/proc/thread-self/stat fields 41, 40). */
function policy(): { policy: number; rtPriority: number } {
  const stat = readFileSync('/proc/thread-self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields after the command: state is field 3, so field n is f[n - 3].
  return { policy: Number(f[41 - 3]), rtPriority: Number(f[40 - 3]) };
}

const root = process.getuid?.() === 0;

describe('setThreadRealtime', () => {
  it.skipIf(!root)('puts the calling thread in SCHED_RR at the priority, and back to normal scheduling with 0', () => {
    try {
      expect(setThreadRealtime(5)).toBe(0);
      expect(policy()).toEqual({ policy: 2, rtPriority: 5 });
    } finally {
      expect(setThreadRealtime(0)).toBe(0);
    }
    expect(policy()).toEqual({ policy: 0, rtPriority: 0 });
  });

  it('refuses a priority outside 0-99 with a range error', () => {
    expect(() => setThreadRealtime(100)).toThrow(/0-99/);
    expect(() => setThreadRealtime(-1)).toThrow(/0-99/);
  });
});

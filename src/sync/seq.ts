/**
 * 32-bit sequence numbers compared across wraparound (serial number arithmetic, RFC 1982), as
 * conntrackd's before()/after(): a is before b when b - a, taken mod 2^32, is in (0, 2^31).
 */

/** (b - a) mod 2^32 as a signed 32-bit distance: positive when b is after a. */
export function seqDiff(a: number, b: number): number {
  return (b - a) | 0;
}

export function seqBefore(a: number, b: number): boolean {
  return ((b - a) | 0) > 0;
}

export function seqAfter(a: number, b: number): boolean {
  return ((a - b) | 0) > 0;
}

export function seqNext(a: number): number {
  return (a + 1) >>> 0;
}

export function seqAdd(a: number, n: number): number {
  return (a + n) >>> 0;
}

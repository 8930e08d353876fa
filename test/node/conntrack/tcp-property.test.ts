/**
 * Property tests: whatever segments arrive, in any order and with any fields, the tracker never
 * throws, returns a known verdict and leaves the entry in a valid state.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TcpState } from '../../../src/node/conntrack/state.js';
import {
  B_ENTRY_FLAGS,
  B_TD_SCALE,
  TCP_RECORD_WORDS,
  TcpEntryFlag,
  TcpStateStore,
  TcpTracker,
  TcpVerdict,
  type TcpSegment,
} from '../../../src/node/conntrack/tcp.js';
import { Flow, PSHACK } from './tcp-flow.js';

const u32 = fc.integer({ min: 0, max: 0xffffffff });

const segment: fc.Arbitrary<TcpSegment> = fc.record({
  tcpFlags: fc.oneof(
    fc.integer({ min: 0, max: 0xff }),
    fc.constantFrom(0x02, 0x12, 0x10, 0x18, 0x11, 0x04, 0x14),
  ),
  tcpSeq: u32,
  tcpAck: u32,
  tcpWindow: fc.integer({ min: 0, max: 0xffff }),
  tcpWscale: fc.integer({ min: -1, max: 20 }),
  tcpSackPermitted: fc.boolean(),
  payloadLength: fc.integer({ min: 0, max: 9000 }),
});

const step = fc.record({ dir: fc.constantFrom(0 as const, 1 as const), seg: segment });

const VERDICTS: number[] = Object.values(TcpVerdict);

describe('TCP tracker properties', () => {
  it('random segment sequences never throw and leave valid state codes', () => {
    fc.assert(
      fc.property(
        fc.array(step, { minLength: 1, maxLength: 60 }),
        fc.boolean(),
        fc.boolean(),
        fc.boolean(),
        (steps, liberal, loose, tolerant) => {
          const t = new TcpTracker({ liberal, loose });
          const store = new TcpStateStore(2);
          let live = false;
          for (const { dir, seg } of steps) {
            if (!live) {
              live = t.newEntry(store, 1, seg);
              if (!live) continue;
              if (tolerant) t.setTolerant(store, 1);
              expect(VERDICTS).toContain(t.track(store, 1, 0, seg, 0));
              continue;
            }
            const v = t.track(store, 1, dir, seg, 0);
            expect(VERDICTS).toContain(v);
            expect(store.stateOf(1)).toBeGreaterThanOrEqual(TcpState.NONE);
            expect(store.stateOf(1)).toBeLessThanOrEqual(TcpState.SYN_SENT2);
            expect(store.byteOf(1, B_TD_SCALE)).toBeLessThanOrEqual(14);
            expect(store.byteOf(1, B_TD_SCALE + 1)).toBeLessThanOrEqual(14);
            expect(t.lastTimeout === -1 || (t.lastTimeout >= 0 && Number.isFinite(t.lastTimeout))).toBe(true);
            if (v === TcpVerdict.RESTART || t.lastDestroy) live = false;
          }
          // Slot 0 is never touched: its whole record is still zero.
          expect(store.u32.subarray(0, TCP_RECORD_WORDS).every((w) => w === 0)).toBe(true);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('a tolerant entry never rejects a non-RST segment of a live flow, whatever the stale data', () => {
    fc.assert(
      fc.property(u32, u32, fc.array(fc.tuple(fc.constantFrom(0 as const, 1 as const), fc.integer({ min: 0, max: 3000 })), { maxLength: 30 }), (isnC, isnS, sends) => {
        const store = new TcpStateStore(1);
        const f = new Flow(isnC, isnS, {}, store, 0);
        f.handshake();
        // Stale data: pretend the replicated windows are from long ago, far off the live flow.
        f.nxt[0] = (f.nxt[0] + 0x30000000) >>> 0;
        f.nxt[1] = (f.nxt[1] + 0x50000000) >>> 0;
        f.tracker.setTolerant(store, 0);
        for (const [dir, len] of sends) {
          expect(f.send(dir, PSHACK, { len })).not.toBe(TcpVerdict.INVALID);
        }
        if (sends.length > 0 && (store.byteOf(0, B_ENTRY_FLAGS) & TcpEntryFlag.TOLERANT) === 0) {
          // Once resynced, injection is refused again.
          expect(f.send(0, PSHACK, { len: 1, tcpSeq: (f.nxt[0] + 0x60000000) >>> 0 })).toBe(TcpVerdict.INVALID);
        }
      }),
      { numRuns: 300 },
    );
  });
});

/**
 * The fast path of TcpTracker.track (established, assured, in-window ACK or data) must do exactly
 * what the full path (trackFull) does: same verdict, same store bytes, same result fields, after
 * every packet. Random sequences are built to hit the window bounds exactly, to wrap sequence
 * numbers, to repeat segments (retransmission counting) and to leave the fast path's conditions
 * (FIN, RST, SYN, tolerant entries, picked-up flows, zero windows, odd timeouts).
 */
import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { TcpFlag } from '../../../src/node/packet/fields.js';
import {
  MAX_ACK_WINDOW_CONST,
  TcpDetail,
  TcpStateStore,
  TcpTracker,
  TcpVerdict,
  TCP_BASE_WORDS,
  TCP_STRIDE_WORDS,
  W_TD_END,
  W_TD_MAXEND,
  W_TD_MAXWIN,
  type TcpSegment,
  type TcpTrackerOptions,
} from '../../../src/node/conntrack/tcp.js';
import { Flow, PSHACK } from './tcp-flow.js';

const SLOT = 1;
const { ACK, PSH, SYN, FIN, RST, URG } = TcpFlag;

/** Where a step's seq (or ack) is taken from; resolved against the live entry when the step runs. */
const SEQ_NXT = 0;
const SEQ_MAXEND = 1; // sender's td_maxend: bound I
const SEQ_LOWER = 2; // sender's td_end - receiver's td_maxwin: bound II (on end)
const SEQ_RANDOM = 3;
const ACK_NXT = 0;
const ACK_REND = 1; // receiver's td_end: bound III
const ACK_LOWER = 2; // receiver's td_end - max(sender's td_maxwin, 66000): bound IV
const ACK_RANDOM = 3;

interface Step {
  dir: 0 | 1;
  /** Repeat the previous segment of this direction as it was (a retransmission). */
  repeat: boolean;
  flags: number;
  seqBase: number;
  seqDelta: number;
  ackBase: number;
  ackDelta: number;
  len: number;
  win: number;
  random: number;
  setTolerant: boolean;
}

const delta = fc.oneof(
  { weight: 8, arbitrary: fc.constant(0) },
  { weight: 4, arbitrary: fc.integer({ min: -3, max: 3 }) },
  { weight: 2, arbitrary: fc.integer({ min: -70000, max: 70000 }) },
  { weight: 1, arbitrary: fc.integer({ min: -0x80000000, max: 0x7fffffff }) },
  // Half the sequence space away: where before/after flip.
  { weight: 1, arbitrary: fc.constantFrom(-0x80000000, -0x7fffffff, 0x7fffffff) },
);

const step: fc.Arbitrary<Step> = fc.record({
  dir: fc.constantFrom(0 as const, 1 as const),
  repeat: fc.integer({ min: 0, max: 9 }).map((n) => n < 2),
  flags: fc.oneof(
    { weight: 40, arbitrary: fc.constantFrom(ACK, ACK | PSH, ACK | URG, ACK | 0xc0) },
    { weight: 2, arbitrary: fc.constantFrom(FIN | ACK, RST, RST | ACK, SYN, SYN | ACK, PSH, 0) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xff }) },
  ),
  seqBase: fc.oneof(
    { weight: 10, arbitrary: fc.constant(SEQ_NXT) },
    { weight: 3, arbitrary: fc.constantFrom(SEQ_MAXEND, SEQ_LOWER, SEQ_RANDOM) },
  ),
  seqDelta: delta,
  ackBase: fc.oneof(
    { weight: 10, arbitrary: fc.constant(ACK_NXT) },
    { weight: 3, arbitrary: fc.constantFrom(ACK_REND, ACK_LOWER, ACK_RANDOM) },
  ),
  ackDelta: delta,
  len: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 1460 }), fc.integer({ min: 0, max: 70000 })),
  win: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffff }), fc.constant(0xffff)),
  random: fc.integer({ min: 0, max: 0xffffffff }),
  setTolerant: fc.integer({ min: 0, max: 39 }).map((n) => n === 0),
});

const options: fc.Arbitrary<TcpTrackerOptions> = fc.record({
  liberal: fc.boolean(),
  loose: fc.boolean(),
  maxRetrans: fc.integer({ min: 0, max: 4 }),
  // Sometimes ESTABLISHED shorter than the caps, so that each cap's "only if shorter" test matters.
  timeouts: fc.oneof(
    fc.constant({}),
    fc.record({
      established: fc.integer({ min: 0, max: 1000 }),
      retrans: fc.integer({ min: 0, max: 1000 }),
      unacknowledged: fc.integer({ min: 0, max: 1000 }),
    }),
  ),
});

function blank(): TcpSegment {
  return { tcpFlags: 0, tcpSeq: 0, tcpAck: 0, tcpWindow: 0, tcpWscale: -1, tcpSackPermitted: false, payloadLength: 0 };
}

function results(t: TcpTracker): unknown[] {
  return [
    t.lastTimeout,
    t.lastTimeoutCap,
    t.lastReason,
    t.lastDetail,
    t.lastAssured,
    t.lastStateChanged,
    t.lastState,
    t.lastDestroy,
  ];
}

function sameResults(a: TcpTracker, b: TcpTracker): boolean {
  const x = results(a);
  const y = results(b);
  return x.every((v, i) => v === y[i]);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

describe('TCP tracker fast path', () => {
  it('leaves the same store bytes and result fields as the full path, packet after packet', () => {
    let fastHits = 0;
    let packets = 0;
    fc.assert(
      fc.property(
        options,
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.constantFrom(-1, 0, 7, 14),
        fc.boolean(),
        fc.array(step, { minLength: 1, maxLength: 80, size: 'max' }),
        (opts, isnC, isnS, wscale, pickup, steps) => {
          const fast = new TcpTracker(opts);
          const full = new TcpTracker(opts);
          const fastStore = new TcpStateStore(2);
          const fullStore = new TcpStateStore(2);
          const spy = vi.spyOn(fast, 'trackFull');
          const nxt = [isnC >>> 0, isnS >>> 0];
          const last: [TcpSegment, TcpSegment] = [blank(), blank()];
          const run = (dir: 0 | 1, s: TcpSegment): number => {
            const before = spy.mock.calls.length;
            const v = fast.track(fastStore, SLOT, dir, s, 0);
            const w = full.trackFull(fullStore, SLOT, dir, s, 0);
            // expect() on every packet is slow; compare by hand and let expect report a mismatch.
            if (w !== v || !sameBytes(fastStore.u8, fullStore.u8) || !sameResults(fast, full)) {
              expect({ v, bytes: Array.from(fastStore.u8), results: results(fast) }).toEqual({
                v: w,
                bytes: Array.from(fullStore.u8),
                results: results(full),
              });
            }
            packets++;
            if (spy.mock.calls.length === before) fastHits++;
            // Follow the sender only on a clean accept that moves it forward, so that a stray
            // segment (random, ignored, let through liberally) does not derail the rest of the run.
            if (v === TcpVerdict.ACCEPT && full.lastDetail === TcpDetail.NONE) {
              const f = s.tcpFlags;
              const end = (s.tcpSeq + s.payloadLength + ((f & SYN) !== 0 ? 1 : 0) + ((f & FIN) !== 0 ? 1 : 0)) >>> 0;
              if (((nxt[dir] - end) | 0) < 0) nxt[dir] = end;
            }
            return v;
          };

          // Open: a handshake (window scale on both SYNs or none), or a mid-stream pickup.
          const open: TcpSegment = {
            ...blank(),
            tcpFlags: pickup ? ACK : SYN,
            tcpSeq: nxt[0],
            tcpAck: pickup ? nxt[1] : 0,
            tcpWindow: 0xffff,
            tcpWscale: wscale,
            tcpSackPermitted: true,
          };
          const created = fast.newEntry(fastStore, SLOT, open);
          expect(full.newEntry(fullStore, SLOT, open)).toBe(created);
          if (!created) return;
          run(0, open);
          if (!pickup) {
            const synAck = { ...open, tcpFlags: SYN | ACK, tcpSeq: nxt[1], tcpAck: nxt[0] };
            run(1, synAck);
            run(0, { ...blank(), tcpFlags: ACK, tcpSeq: nxt[0], tcpAck: nxt[1], tcpWindow: 0xffff });
          }

          const u32 = fullStore.u32;
          const b = SLOT * TCP_STRIDE_WORDS + TCP_BASE_WORDS;
          for (const st of steps) {
            if (st.setTolerant) {
              fast.setTolerant(fastStore, SLOT);
              full.setTolerant(fullStore, SLOT);
            }
            const d = st.dir;
            const s = d === 0 ? b : b + 1;
            const r = d === 0 ? b + 1 : b;
            let seg: TcpSegment;
            if (st.repeat) {
              seg = { ...last[d] };
            } else {
              let seq: number;
              if (st.seqBase === SEQ_NXT) seq = nxt[d];
              else if (st.seqBase === SEQ_MAXEND) seq = u32[s + W_TD_MAXEND];
              else if (st.seqBase === SEQ_LOWER) seq = u32[s + W_TD_END] - u32[r + W_TD_MAXWIN] - st.len;
              else seq = st.random;
              let ack: number;
              if (st.ackBase === ACK_NXT) ack = nxt[d ^ 1];
              else if (st.ackBase === ACK_REND) ack = u32[r + W_TD_END];
              else if (st.ackBase === ACK_LOWER) ack = u32[r + W_TD_END] - Math.max(u32[s + W_TD_MAXWIN], MAX_ACK_WINDOW_CONST);
              else ack = st.random ^ 0x5a5a5a5a;
              seg = {
                ...blank(),
                tcpFlags: st.flags,
                tcpSeq: (seq + st.seqDelta) >>> 0,
                tcpAck: (ack + st.ackDelta) >>> 0,
                tcpWindow: st.win,
                payloadLength: st.len,
              };
            }
            last[d] = seg;
            const v = run(d, seg);
            if (v === TcpVerdict.RESTART || full.lastDestroy) return;
          }
        },
      ),
      { numRuns: 2000 },
    );
    // The generator must exercise the fast path, not only the fallbacks.
    expect(fastHits).toBeGreaterThan(packets / 10);
  });

  it('takes the fast path for in-window data and ACKs of an established flow', () => {
    const f = new Flow(0xfffff000, 0x7ffffff0);
    f.handshake();
    const spy = vi.spyOn(f.tracker, 'trackFull');
    for (let i = 0; i < 20; i++) {
      // Sequence numbers wrap past 2^32 on the way.
      expect(f.send(0, PSHACK, { len: 1000 })).toBe(TcpVerdict.ACCEPT);
      expect(f.send(1, ACK)).toBe(TcpVerdict.ACCEPT);
    }
    expect(spy).not.toHaveBeenCalled();
    // A FIN leaves it.
    expect(f.send(0, FIN | ACK)).toBe(TcpVerdict.ACCEPT);
    expect(spy).toHaveBeenCalledTimes(1);
  });

  it('falls back to the full path out of window', () => {
    const f = new Flow();
    f.handshake();
    const spy = vi.spyOn(f.tracker, 'trackFull');
    expect(f.send(0, PSHACK, { len: 10, tcpSeq: (f.nxt[0] + 0x40000000) >>> 0 })).toBe(TcpVerdict.INVALID);
    expect(spy).toHaveBeenCalledTimes(1);
  });
});

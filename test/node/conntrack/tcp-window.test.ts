/**
 * Window tracking: scaling, wraparound, liberal mode, loose pickup and tolerant takeover.
 */
import { describe, expect, it } from 'vitest';
import { InvalidReason } from '../../../src/node/packet/fields.js';
import { TcpState } from '../../../src/node/conntrack/state.js';
import {
  B_TD_SCALE,
  DEFAULT_TCP_TIMEOUTS,
  TCP_EXPORT_WORDS,
  TcpDetail,
  TcpStateStore,
  TcpTracker,
  TcpVerdict,
  seqAfter,
  seqBefore,
} from '../../../src/node/conntrack/tcp.js';
import { ACK, Flow, PSHACK, RST, seg } from './tcp-flow.js';

const T = DEFAULT_TCP_TIMEOUTS;
const { ACCEPT, INVALID, IGNORE } = TcpVerdict;
const MSS = 1448;

/** Stream `count` full segments from dir without any ACK in between; returns the verdicts. */
function burst(f: Flow, dir: 0 | 1, count: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < count; i++) out.push(f.send(dir, PSHACK, { len: MSS }));
  return out;
}

describe('sequence arithmetic', () => {
  it('compares modulo 2^32', () => {
    expect(seqBefore(0xfffffff0, 0x10)).toBe(true);
    expect(seqAfter(0x10, 0xfffffff0)).toBe(true);
    expect(seqBefore(5, 5)).toBe(false);
    expect(seqAfter(5, 5)).toBe(false);
  });
});

describe('window scaling (RFC 7323)', () => {
  it('accepts a 4 MB burst each way when both SYNs carry wscale 7', () => {
    const f = new Flow();
    expect(f.handshake({ tcpWscale: 7 }, { tcpWscale: 7 })).toEqual([ACCEPT, ACCEPT, ACCEPT]);
    expect([f.byte(B_TD_SCALE), f.byte(B_TD_SCALE + 1)]).toEqual([7, 7]);
    // The server opens its scaled window: 65535 << 7, about 8 MB.
    expect(f.send(1, ACK)).toBe(ACCEPT);
    expect(burst(f, 0, 2900).every((v) => v === ACCEPT)).toBe(true); // 4.2 MB in flight
    expect(f.send(1, ACK)).toBe(ACCEPT);
    expect(burst(f, 1, 2900).every((v) => v === ACCEPT)).toBe(true);
    expect(f.send(0, ACK)).toBe(ACCEPT);
    expect(f.state).toBe(TcpState.ESTABLISHED);
    expect(f.tracker.lastTimeout).toBe(T.established);
  });

  it('does not scale when only the client offered it: more than a 64 KB window in flight is invalid', () => {
    const f = new Flow();
    f.handshake({ tcpWscale: 7 }, {});
    expect([f.byte(B_TD_SCALE), f.byte(B_TD_SCALE + 1)]).toEqual([0, 0]);
    f.send(1, ACK);
    const verdicts = burst(f, 0, 200);
    const firstRefused = verdicts.findIndex((v) => v !== ACCEPT);
    // 65535 / 1448 = 45 segments fit; the kernel then ignores up to one window of overshoot
    // and rejects the rest.
    expect(firstRefused).toBeGreaterThanOrEqual(45);
    expect(firstRefused).toBeLessThanOrEqual(46);
    expect(verdicts.includes(INVALID)).toBe(true);
    expect(f.send(0, PSHACK, { len: MSS, tcpSeq: f.nxt[0] + 4_000_000 })).toBe(INVALID);
  });

  it('caps a window scale above 14 at 14', () => {
    const f = new Flow();
    f.handshake({ tcpWscale: 20 }, { tcpWscale: 15 });
    expect([f.byte(B_TD_SCALE), f.byte(B_TD_SCALE + 1)]).toEqual([14, 14]);
  });
});

describe('sequence wraparound at 2^32', () => {
  it('tracks a transfer whose sequence numbers wrap, both ways', () => {
    const f = new Flow(0xffffffff - 50_000, 0xffffffff - 10);
    f.handshake();
    for (let i = 0; i < 100; i++) {
      expect(f.send(0, PSHACK, { len: 1000 })).toBe(ACCEPT);
      expect(f.send(1, PSHACK, { len: 1000 })).toBe(ACCEPT);
    }
    expect(f.nxt[0]).toBeLessThan(100_000); // wrapped
    expect(f.nxt[1]).toBeLessThan(100_000);
    expect(f.send(0, ACK)).toBe(ACCEPT);
    expect(f.state).toBe(TcpState.ESTABLISHED);
    // Still strict after the wrap.
    expect(f.send(0, PSHACK, { len: 10, tcpSeq: f.nxt[0] + 0x40000000 })).toBe(INVALID);
    expect(f.send(1, RST, { tcpSeq: f.nxt[1] - 100 })).toBe(INVALID);
  });
});

describe('liberal mode (nf_conntrack_tcp_be_liberal)', () => {
  it('accepts out-of-window data but still rejects a RST below the acknowledged sequence', () => {
    const f = new Flow(1000, 500000, { liberal: true });
    f.handshake();
    f.send(0, PSHACK, { len: 100 });
    f.send(1, ACK);
    expect(f.send(0, PSHACK, { len: 100, tcpSeq: f.nxt[0] + 10_000_000 })).toBe(ACCEPT);
    expect(f.tracker.lastDetail).toBe(TcpDetail.LIBERAL);
    expect(f.send(0, RST, { tcpSeq: f.nxt[0] - 50 })).toBe(INVALID);
    expect(f.state).toBe(TcpState.ESTABLISHED);
  });
});

describe('loose pickup (nf_conntrack_tcp_loose)', () => {
  it('picks up an established connection from an ACK, caps its timeout until answered, then assures', () => {
    const t = new TcpTracker();
    const store = new TcpStateStore(2);
    const first = seg(PSHACK, 5000, 9000, { payloadLength: 100 });
    expect(t.newEntry(store, 1, first)).toBe(true);
    expect(t.track(store, 1, 0, first, 0)).toBe(ACCEPT);
    expect(store.stateOf(1)).toBe(TcpState.ESTABLISHED);
    expect(t.lastTimeout).toBe(T.unacknowledged);
    expect(t.track(store, 1, 1, seg(ACK, 9000, 5100), 0)).toBe(ACCEPT);
    expect(t.lastAssured).toBe(false);
    expect(t.track(store, 1, 0, seg(PSHACK, 5100, 9000, { payloadLength: 10 }), 0)).toBe(ACCEPT);
    expect(t.lastAssured).toBe(true);
    // Window scale unknown after a pickup: the kernel is liberal about this connection's windows.
    expect(t.track(store, 1, 0, seg(PSHACK, 5110 + 3_000_000, 9000, { payloadLength: 10 }), 0)).toBe(ACCEPT);
  });

  it('refuses a mid-stream ACK when loose is off', () => {
    const t = new TcpTracker({ loose: false });
    const store = new TcpStateStore(1);
    expect(t.newEntry(store, 0, seg(ACK, 5000, 9000))).toBe(false);
    expect(t.lastReason).toBe(InvalidReason.TCP_STATE);
    // A SYN still opens.
    expect(t.newEntry(store, 0, seg(0x02, 5000, 0))).toBe(true);
  });
});

describe('tolerant mode (takeover with stale window data)', () => {
  /** An active node's flow that moved on 2 MB after a snapshot was replicated. */
  function staleStandby(): { active: Flow; standby: Flow } {
    const active = new Flow(1000, 500000);
    active.handshake();
    active.send(0, PSHACK, { len: 500 });
    active.send(1, ACK);
    const words = new Uint32Array(TCP_EXPORT_WORDS);
    active.store.exportEntry(0, words, 0);
    for (let i = 0; i < 150; i++) {
      active.send(0, PSHACK, { len: 14_000 });
      active.send(1, ACK);
      active.send(1, PSHACK, { len: 100 });
    }
    const standbyStore = new TcpStateStore(4);
    standbyStore.importEntry(2, words, 0);
    const standby = new Flow(active.nxt[0], active.nxt[1], {}, standbyStore, 2);
    return { active, standby };
  }

  it('without tolerance, the stale windows reject the live flow', () => {
    const { standby } = staleStandby();
    expect(standby.send(0, PSHACK, { len: 1000 })).toBe(INVALID);
  });

  it('accepts the live flow on stale windows, re-learns, then clears itself and is strict again', () => {
    const { standby } = staleStandby();
    const t = standby.tracker;
    t.setTolerant(standby.store, 2);
    expect(t.isTolerant(standby.store, 2)).toBe(true);
    expect(standby.send(0, PSHACK, { len: 1000 })).toBe(ACCEPT);
    expect(t.lastDetail).toBe(TcpDetail.TOLERANT_RELEARN);
    expect(t.lastTimeout).toBeGreaterThan(0);
    expect(standby.send(1, ACK)).toBe(ACCEPT);
    expect(t.isTolerant(standby.store, 2)).toBe(true); // the original direction has not confirmed yet
    expect(standby.send(0, PSHACK, { len: 1000 })).toBe(ACCEPT);
    expect(t.isTolerant(standby.store, 2)).toBe(false);
    for (let i = 0; i < 20; i++) {
      expect(standby.send(0, PSHACK, { len: 1000 })).toBe(ACCEPT);
      expect(standby.send(1, PSHACK, { len: 300 })).toBe(ACCEPT);
    }
    expect(standby.state).toBe(TcpState.ESTABLISHED);
    // Strict again: injection is refused.
    expect(standby.send(0, PSHACK, { len: 10, tcpSeq: standby.nxt[0] + 50_000_000 })).toBe(INVALID);
  });

  it('never rejects while tolerant, but an out-of-window RST does not close the entry', () => {
    const { standby } = staleStandby();
    const t = standby.tracker;
    t.setTolerant(standby.store, 2);
    expect(standby.send(1, RST, { tcpSeq: standby.nxt[1] + 1_500_000_000 })).toBe(IGNORE);
    expect(t.lastDetail).toBe(TcpDetail.TOLERANT_RST);
    expect(standby.state).toBe(TcpState.ESTABLISHED);
    // Whatever the live flow sends first is accepted.
    expect(standby.send(1, PSHACK, { len: 100 })).toBe(ACCEPT);
    expect(standby.send(0, PSHACK, { len: 100 })).toBe(ACCEPT);
    // And a real RST after resync closes it.
    expect(standby.send(0, ACK)).toBe(ACCEPT);
    expect(standby.send(1, ACK)).toBe(ACCEPT);
    expect(t.isTolerant(standby.store, 2)).toBe(false);
    expect(standby.send(1, RST)).toBe(ACCEPT);
    expect(standby.state).toBe(TcpState.CLOSE);
  });

  it('clears at once when the replicated windows were fresh', () => {
    const f = new Flow();
    f.handshake();
    f.tracker.setTolerant(f.store, 0);
    expect(f.send(0, PSHACK, { len: 10 })).toBe(ACCEPT);
    expect(f.send(1, ACK)).toBe(ACCEPT);
    expect(f.tracker.isTolerant(f.store, 0)).toBe(false);
  });
});

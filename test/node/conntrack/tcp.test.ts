/**
 * Real TCP sequences through the tracker, each checked against what Linux's conntrack does with
 * them (state reached, verdict, timeout, ASSURED).
 */
import { describe, expect, it } from 'vitest';
import { InvalidReason } from '../../../src/node/packet/fields.js';
import { TcpState } from '../../../src/node/conntrack/state.js';
import {
  B_RETRANS,
  B_TD_SCALE,
  DEFAULT_TCP_TIMEOUTS,
  TcpDetail,
  TcpTracker,
  TcpVerdict,
  TcpStateStore,
  W_TD_END,
} from '../../../src/node/conntrack/tcp.js';
import { ACK, FIN, Flow, PSHACK, RST, SYN, SYNACK, seg } from './tcp-flow.js';

const T = DEFAULT_TCP_TIMEOUTS;
const { ACCEPT, INVALID, IGNORE, RESTART } = TcpVerdict;

function established(): Flow {
  const f = new Flow();
  expect(f.handshake()).toEqual([ACCEPT, ACCEPT, ACCEPT]);
  return f;
}

describe('TCP tracker: opening', () => {
  it('follows the three-way handshake SYN_SENT -> SYN_RECV -> ESTABLISHED and assures on the third packet', () => {
    const f = new Flow();
    expect(f.open()).toBe(ACCEPT);
    expect(f.state).toBe(TcpState.SYN_SENT);
    expect(f.tracker.lastTimeout).toBe(T.synSent);
    expect(f.tracker.lastStateChanged).toBe(true);

    expect(f.send(1, SYNACK)).toBe(ACCEPT);
    expect(f.state).toBe(TcpState.SYN_RECV);
    expect(f.tracker.lastTimeout).toBe(T.synRecv);
    expect(f.tracker.lastAssured).toBe(false);

    expect(f.send(0, ACK)).toBe(ACCEPT);
    expect(f.state).toBe(TcpState.ESTABLISHED);
    expect(f.tracker.lastTimeout).toBe(T.established);
    expect(f.tracker.lastAssured).toBe(true);
    expect(f.tracker.isAssured(f.store, f.slot)).toBe(true);

    // Assured is an event: reported once.
    expect(f.send(0, PSHACK, { len: 100 })).toBe(ACCEPT);
    expect(f.tracker.lastAssured).toBe(false);
  });

  it('refuses to create an entry from SYN/ACK, FIN, RST or no flags (TCP_STATE)', () => {
    const t = new TcpTracker();
    const store = new TcpStateStore(1);
    for (const flags of [SYNACK, FIN, RST, 0]) {
      expect(t.newEntry(store, 0, seg(flags, 1, 1))).toBe(false);
      expect(t.lastReason).toBe(InvalidReason.TCP_STATE);
    }
  });

  it('rejects an ACK from the client before any SYN/ACK (SYN_SENT -> INVALID)', () => {
    const f = new Flow();
    f.open();
    expect(f.send(0, ACK)).toBe(INVALID);
    expect(f.tracker.lastReason).toBe(InvalidReason.TCP_STATE);
    expect(f.state).toBe(TcpState.SYN_SENT);
  });

  it('accepts a retransmitted SYN without refreshing the timeout', () => {
    const f = new Flow();
    f.open();
    const again = seg(SYN, 1000, 0);
    expect(f.tracker.track(f.store, 0, 0, again, 1000)).toBe(ACCEPT);
    expect(f.state).toBe(TcpState.SYN_SENT);
    expect(f.tracker.lastTimeout).toBe(-1);
  });

  it('re-learns the client from a SYN with a new ISN (RFC 793 reinit) and completes with it', () => {
    const f = new Flow(1000, 9000);
    f.open();
    f.nxt[0] = 777777; // client restarted with a larger ISN
    expect(f.send(0, SYN, { tcpAck: 0 })).toBe(ACCEPT);
    expect(f.word(W_TD_END)).toBe(777778);
    expect(f.send(1, SYNACK)).toBe(ACCEPT);
    expect(f.send(0, ACK)).toBe(ACCEPT);
    expect(f.state).toBe(TcpState.ESTABLISHED);
  });

  it('ignores a retransmitted SYN/ACK (SYN_RECV: IGNORE) and then establishes', () => {
    const f = new Flow();
    f.open();
    expect(f.send(1, SYNACK)).toBe(ACCEPT);
    const retrans = seg(SYNACK, 500000, 1001);
    expect(f.tracker.track(f.store, 0, 1, retrans, 0)).toBe(IGNORE);
    expect(f.tracker.lastDetail).toBe(TcpDetail.IGNORED_STATE);
    expect(f.state).toBe(TcpState.SYN_RECV);
    expect(f.send(0, ACK)).toBe(ACCEPT);
    expect(f.state).toBe(TcpState.ESTABLISHED);
  });

  it('rejects a SYN/ACK that acknowledges something the client never sent', () => {
    const f = new Flow();
    f.open();
    expect(f.send(1, SYNACK, { tcpAck: 123456789 })).toBe(INVALID);
    expect(f.tracker.lastReason).toBe(InvalidReason.TCP_WINDOW);
    expect(f.tracker.lastDetail).toBe(TcpDetail.ACK_OVER_UPPER);
    expect(f.state).toBe(TcpState.SYN_SENT);
  });

  it('tracks a simultaneous open: SYN both ways (SYN_SENT2), SYN/ACK, then ESTABLISHED', () => {
    const f = new Flow(1000, 7000);
    f.open();
    expect(f.send(1, SYN, { tcpAck: 0 })).toBe(ACCEPT);
    expect(f.state).toBe(TcpState.SYN_SENT2);
    expect(f.send(0, SYNACK)).toBe(ACCEPT);
    expect(f.state).toBe(TcpState.SYN_RECV);
    // The server's own SYN/ACK is a SYN/ACK in SYN_RECV from the reply side: ignored.
    const serverSynAck = seg(SYNACK, 7000, 1001);
    expect(f.tracker.track(f.store, 0, 1, serverSynAck, 0)).toBe(IGNORE);
    // The reply's ACK completes it (the kernel's SIMULTANEOUS_OPEN mark).
    expect(f.send(1, ACK)).toBe(ACCEPT);
    expect(f.state).toBe(TcpState.ESTABLISHED);
  });

  it('closes on the client RST that answers a challenge ACK to its SYN (stale server connection)', () => {
    const f = new Flow(1000, 500000);
    f.open();
    // The server still holds an old connection on this tuple: RFC 5961 4.2 challenge ACK.
    expect(f.tracker.track(f.store, 0, 1, seg(ACK, 31337, 88888), 0)).toBe(IGNORE);
    expect(f.state).toBe(TcpState.SYN_SENT);
    // The client's stack resets with seq = the challenge ACK's ack; the entry closes.
    expect(f.tracker.track(f.store, 0, 0, seg(RST, 88888, 0), 0)).toBe(ACCEPT);
    expect(f.state).toBe(TcpState.CLOSE);
  });

  it('kills the entry when the only answer to a SYN is a RST (connection refused)', () => {
    const f = new Flow();
    f.open();
    expect(f.send(1, RST | ACK, { tcpSeq: 0 })).toBe(ACCEPT);
    expect(f.tracker.lastDestroy).toBe(true);
    expect(f.tracker.lastTimeout).toBe(0);
    expect(f.state).toBe(TcpState.CLOSE);
  });
});

describe('TCP tracker: established flows', () => {
  it('accepts data both ways; unacknowledged data caps the timeout at 300 s until acked', () => {
    const f = established();
    expect(f.send(0, PSHACK, { len: 1000 })).toBe(ACCEPT);
    expect(f.tracker.lastTimeout).toBe(T.unacknowledged);
    expect(f.send(1, PSHACK, { len: 5000 })).toBe(ACCEPT);
    expect(f.tracker.lastTimeout).toBe(T.unacknowledged); // server's 5000 bytes not acked yet
    expect(f.send(0, ACK)).toBe(ACCEPT);
    expect(f.tracker.lastTimeout).toBe(T.established);
    expect(f.state).toBe(TcpState.ESTABLISHED);
  });

  it('shortens the timeout after maxRetrans identical retransmissions', () => {
    const f = established();
    f.send(0, PSHACK, { len: 100 });
    const s = f.build(0, PSHACK, { len: 100, tcpSeq: f.nxt[0] - 100 });
    for (let i = 0; i < 3; i++) f.tracker.track(f.store, 0, 0, s, 0);
    expect(f.byte(B_RETRANS)).toBe(3);
    expect(f.tracker.lastTimeout).toBe(T.retrans);
  });

  it('caps the timeout at 300 s while the receiver advertises a zero window', () => {
    const f = established();
    f.win[1] = 0;
    expect(f.send(1, ACK)).toBe(ACCEPT);
    expect(f.tracker.lastTimeout).toBe(T.retrans);
    f.win[1] = 65535;
    expect(f.send(1, ACK)).toBe(ACCEPT);
    expect(f.tracker.lastTimeout).toBe(T.established);
  });

  it('rejects data beyond the receiver window (SEQ over upper bound: INVALID TCP_WINDOW)', () => {
    const f = established();
    expect(f.send(0, PSHACK, { len: 100, tcpSeq: f.nxt[0] + 10_000_000 })).toBe(INVALID);
    expect(f.tracker.lastReason).toBe(InvalidReason.TCP_WINDOW);
    expect(f.tracker.lastDetail).toBe(TcpDetail.SEQ_OVER_UPPER);
    expect(f.state).toBe(TcpState.ESTABLISHED);
    // The flow itself carries on.
    expect(f.send(0, PSHACK, { len: 100 })).toBe(ACCEPT);
  });

  it('rejects an ACK for data the other side never sent', () => {
    const f = established();
    expect(f.send(0, ACK, { tcpAck: f.nxt[1] + 100_000 })).toBe(INVALID);
    expect(f.tracker.lastDetail).toBe(TcpDetail.ACK_OVER_UPPER);
  });

  it('ignores (accepts without learning) a retransmission of long-acknowledged data', () => {
    const f = established();
    const start = f.nxt[0];
    for (let i = 0; i < 200; i++) {
      f.send(0, PSHACK, { len: 1000 });
      f.send(1, ACK);
    }
    expect(f.send(0, PSHACK, { len: 1000, tcpSeq: start })).toBe(IGNORE);
    expect(f.tracker.lastDetail).toBe(TcpDetail.SEQ_UNDER_LOWER);
    expect(f.tracker.lastTimeout).toBe(-1);
  });

  it('rejects a blind RST with a sequence outside the window', () => {
    const f = established();
    f.send(0, PSHACK, { len: 500 });
    f.send(1, ACK);
    expect(f.send(1, RST, { tcpSeq: f.nxt[1] + 3_000_000_000 })).toBe(INVALID);
    expect(f.send(0, RST, { tcpSeq: f.nxt[0] + 50_000_000 })).toBe(INVALID);
    expect(f.tracker.lastReason).toBe(InvalidReason.TCP_WINDOW);
    expect(f.state).toBe(TcpState.ESTABLISHED);
  });

  it('rejects a RST below what the peer acknowledged (RFC 5961 blind reset)', () => {
    const f = established();
    f.send(0, PSHACK, { len: 500 });
    f.send(1, ACK);
    expect(f.send(0, RST, { tcpSeq: f.nxt[0] - 400 })).toBe(INVALID);
    expect(f.tracker.lastDetail).toBe(TcpDetail.RST_SEQ);
    expect(f.state).toBe(TcpState.ESTABLISHED);
  });

  it('keeps ESTABLISHED on an in-window RST that is not exact, closes on the exact one', () => {
    const f = established();
    f.send(0, PSHACK, { len: 500 });
    f.send(1, ACK);
    f.send(1, PSHACK, { len: 10 }); // last segment from the server: an ACK, not the RST's neighbour
    // In window but 100 bytes ahead: the endpoint sends a challenge ACK; we keep the state.
    expect(f.send(0, RST, { tcpSeq: f.nxt[0] + 100 })).toBe(ACCEPT);
    expect(f.state).toBe(TcpState.ESTABLISHED);
    // The exact RST (seq = what the server acknowledged) closes.
    expect(f.send(0, RST)).toBe(ACCEPT);
    expect(f.state).toBe(TcpState.CLOSE);
    expect(f.tracker.lastTimeout).toBe(T.close);
  });

  it('ignores a blind SYN on an established flow and keeps forwarding the real one', () => {
    const f = established();
    f.send(0, PSHACK, { len: 100 });
    f.send(1, ACK);
    expect(f.tracker.track(f.store, 0, 0, seg(SYN, 424242, 0), 0)).toBe(IGNORE);
    expect(f.state).toBe(TcpState.ESTABLISHED);
    // The server's RFC 5961 challenge ACK is an ordinary in-window ACK.
    expect(f.send(1, ACK)).toBe(ACCEPT);
    // A forged SYN/ACK not acknowledging that SYN is ignored too, and changes nothing.
    expect(f.tracker.track(f.store, 0, 1, seg(SYNACK, 99, 1), 0)).toBe(IGNORE);
    expect(f.state).toBe(TcpState.ESTABLISHED);
    expect(f.send(0, PSHACK, { len: 100 })).toBe(ACCEPT);
    expect(f.send(1, PSHACK, { len: 100 })).toBe(ACCEPT);
  });

  it('resyncs when the server answers an ignored SYN with a SYN/ACK (firewall was out of sync)', () => {
    const f = established();
    // Both ends dropped the old connection; the client reuses the tuple.
    expect(f.tracker.track(f.store, 0, 0, seg(SYN, 8_000_000, 0, { tcpWscale: 2 }), 0)).toBe(IGNORE);
    expect(f.tracker.track(f.store, 0, 1, seg(SYNACK, 9_000_000, 8_000_001, { tcpWscale: 3 }), 0)).toBe(ACCEPT);
    expect(f.state).toBe(TcpState.SYN_RECV);
    expect(f.tracker.track(f.store, 0, 0, seg(ACK, 8_000_001, 9_000_001), 0)).toBe(ACCEPT);
    expect(f.state).toBe(TcpState.ESTABLISHED);
    expect(f.byte(B_TD_SCALE)).toBe(2);
    expect(f.byte(B_TD_SCALE + 1)).toBe(3);
  });

  it('rejects a SYN from the server on an established flow', () => {
    const f = established();
    expect(f.send(1, SYN, { tcpAck: 0 })).toBe(INVALID);
    expect(f.tracker.lastReason).toBe(InvalidReason.TCP_STATE);
  });

  it('rejects segments with no flags (null scan)', () => {
    const f = established();
    expect(f.send(0, 0)).toBe(INVALID);
  });
});

describe('TCP tracker: closing', () => {
  it('follows FIN/ACK teardown to TIME_WAIT with the kernel timeouts', () => {
    const f = established();
    f.send(0, PSHACK, { len: 100 });
    f.send(1, ACK);
    expect(f.send(0, FIN)).toBe(ACCEPT);
    expect(f.state).toBe(TcpState.FIN_WAIT);
    expect(f.tracker.lastTimeout).toBe(T.finWait); // 120 s: already below the 300 s unacknowledged cap
    expect(f.send(1, ACK)).toBe(ACCEPT);
    expect(f.state).toBe(TcpState.CLOSE_WAIT);
    expect(f.tracker.lastTimeout).toBe(T.closeWait);
    expect(f.send(1, FIN)).toBe(ACCEPT);
    expect(f.state).toBe(TcpState.LAST_ACK);
    expect(f.send(0, ACK)).toBe(ACCEPT);
    expect(f.state).toBe(TcpState.TIME_WAIT);
    expect(f.tracker.lastTimeout).toBe(T.timeWait);
    // Retransmitted last ACK: stays.
    expect(f.send(0, ACK)).toBe(ACCEPT);
    expect(f.state).toBe(TcpState.TIME_WAIT);
  });

  it('asks for a restart when a new SYN reuses a TIME_WAIT tuple (RFC 1122 reopen)', () => {
    const f = established();
    f.send(0, FIN);
    f.send(1, FIN);
    f.send(0, ACK);
    expect(f.state).toBe(TcpState.TIME_WAIT);
    expect(f.tracker.track(f.store, 0, 0, seg(SYN, 5_000_000, 0), 0)).toBe(RESTART);
    expect(f.state).toBe(TcpState.TIME_WAIT); // the caller destroys it
  });

  it('does not take an RFC 5961 challenge ACK in LAST_ACK for the last ACK', () => {
    const f = established();
    f.send(0, FIN);
    f.send(1, ACK);
    f.send(1, FIN);
    expect(f.state).toBe(TcpState.LAST_ACK);
    expect(f.tracker.track(f.store, 0, 0, seg(SYN, 77_000_000, 0), 0)).toBe(IGNORE);
    // The server answers the SYN with a challenge ACK.
    expect(f.tracker.track(f.store, 0, 1, f.build(1, ACK, { tcpSeq: f.nxt[1] - 1 }), 0)).toBe(IGNORE);
    expect(f.tracker.lastDetail).toBe(TcpDetail.CHALLENGE_ACK);
    expect(f.state).toBe(TcpState.LAST_ACK);
    // The real last ACK still closes.
    expect(f.send(0, ACK)).toBe(ACCEPT);
    expect(f.state).toBe(TcpState.TIME_WAIT);
  });

  it('closes on a RST from either side; the client may then reopen, the server may not', () => {
    const f = established();
    f.send(0, PSHACK, { len: 10 });
    f.send(1, ACK);
    expect(f.send(0, RST)).toBe(ACCEPT);
    expect(f.state).toBe(TcpState.CLOSE);
    expect(f.tracker.lastTimeout).toBe(T.close);
    // Further segments of the dead connection keep it CLOSE.
    expect(f.send(1, ACK)).toBe(ACCEPT);
    expect(f.state).toBe(TcpState.CLOSE);
    // The client that reset starts over: restart...
    const g = established();
    g.send(0, RST);
    expect(g.tracker.track(g.store, 0, 0, seg(SYN, 123, 0), 0)).toBe(RESTART);
    // ...but a SYN from the server into CLOSE is invalid.
    expect(g.tracker.track(g.store, 0, 1, seg(SYN, 123, 0), 0)).toBe(INVALID);
  });

  it('ignores a SYN into CLOSE when the other side sent the RST', () => {
    const f = established();
    f.send(1, RST);
    expect(f.state).toBe(TcpState.CLOSE);
    expect(f.tracker.track(f.store, 0, 0, seg(SYN, 123, 0), 0)).toBe(IGNORE);
  });

  it('shortens the timeout of an assured entry when FINs cross out of window', () => {
    const f = established();
    expect(f.send(0, FIN, { tcpSeq: f.nxt[0] + 90_000_000 })).toBe(INVALID);
    expect(f.tracker.lastTimeoutCap).toBe(false);
    expect(f.send(1, FIN, { tcpSeq: f.nxt[1] + 90_000_000 })).toBe(INVALID);
    expect(f.tracker.lastTimeoutCap).toBe(true);
    expect(f.tracker.lastTimeout).toBe(T.unacknowledged);
  });
});

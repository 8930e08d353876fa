import { describe, expect, it } from 'vitest';
import { TcpState } from '../../../src/node/conntrack/state.js';
import {
  DEFAULT_TCP_CONFIG,
  DEFAULT_TCP_TIMEOUTS,
  TCP_BYTES_PER_ENTRY,
  TCP_EXPORT_WORDS,
  TcpCapacityError,
  TcpConfigError,
  TcpImportError,
  TcpStateStore,
  TcpTracker,
  TcpVerdict,
} from '../../../src/node/conntrack/tcp.js';
import { ACK, Flow, PSHACK } from './tcp-flow.js';

function busyFlow(store: TcpStateStore, slot: number): Flow {
  const f = new Flow(0xfffff000, 77, {}, store, slot);
  f.handshake({ tcpWscale: 5, tcpSackPermitted: true }, { tcpWscale: 9 });
  f.send(0, PSHACK, { len: 1234 });
  f.send(1, ACK);
  f.send(1, PSHACK, { len: 99 });
  return f;
}

function exported(store: TcpStateStore, slot: number): number[] {
  const w = new Uint32Array(TCP_EXPORT_WORDS);
  store.exportEntry(slot, w, 0);
  return [...w];
}

describe('TcpStateStore', () => {
  it('stays compact: the TCP part of an entry fits easily in the 256-byte entry budget', () => {
    const store = new TcpStateStore(1000);
    const arrays = Object.values(store).filter((v): v is ArrayBufferView => ArrayBuffer.isView(v));
    const bytes = arrays.reduce((n, a) => n + a.byteLength, 0);
    expect(bytes / 1000).toBe(TCP_BYTES_PER_ENTRY);
    expect(TCP_BYTES_PER_ENTRY).toBeLessThanOrEqual(64);
  });

  it('round-trips a live entry through export/import, and the copy keeps tracking identically', () => {
    const a = new TcpStateStore(4);
    const f = busyFlow(a, 1);
    const words = new Uint32Array(TCP_EXPORT_WORDS + 3);
    a.exportEntry(1, words, 3);
    const b = new TcpStateStore(8);
    b.importEntry(6, words, 3);
    expect(exported(b, 6)).toEqual(exported(a, 1));
    expect(b.state[6]).toBe(TcpState.ESTABLISHED);
    // Same next segment, same verdict and state on both.
    const g = new Flow(f.nxt[0], f.nxt[1], {}, b, 6);
    expect(g.send(0, PSHACK, { len: 10 })).toBe(f.send(0, PSHACK, { len: 10 }));
    expect(exported(b, 6)).toEqual(exported(a, 1));
  });

  it('copies, grows and clears entries', () => {
    const s = new TcpStateStore(2);
    busyFlow(s, 1);
    const before = exported(s, 1);
    s.copyEntry(1, 0);
    expect(exported(s, 0)).toEqual(before);
    s.grow(1000);
    expect(s.capacity).toBe(1000);
    expect(exported(s, 1)).toEqual(before);
    expect(s.tdEnd.length).toBe(2000);
    s.clear(1);
    expect(exported(s, 1).every((w) => w === 0)).toBe(true);
    expect(exported(s, 0)).toEqual(before);
  });

  it('refuses impossible capacities and shrinking with a typed error', () => {
    expect(() => new TcpStateStore(-1)).toThrow(TcpCapacityError);
    expect(() => new TcpStateStore(1.5)).toThrow(TcpCapacityError);
    const s = new TcpStateStore(10);
    try {
      s.grow(5);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(TcpCapacityError);
      expect((e as TcpCapacityError).code).toBe('TCP_STORE_CAPACITY');
      expect((e as Error).message).toMatch(/never shrinks/);
    }
  });

  it('refuses corrupt or truncated sync words and leaves the slot untouched', () => {
    const s = new TcpStateStore(2);
    busyFlow(s, 0);
    const before = exported(s, 0);
    const bad = new Uint32Array(TCP_EXPORT_WORDS);
    bad[0] = 42; // no such state
    expect(() => s.importEntry(0, bad, 0)).toThrow(TcpImportError);
    bad[0] = TcpState.ESTABLISHED;
    bad[1] = 15; // window scale above 14
    expect(() => s.importEntry(0, bad, 0)).toThrow(TcpImportError);
    bad[1] = 0;
    bad[3] = 0x10000; // window wider than 16 bits
    expect(() => s.importEntry(0, bad, 0)).toThrow(TcpImportError);
    expect(() => s.importEntry(0, new Uint32Array(TCP_EXPORT_WORDS - 1), 0)).toThrow(/truncated/);
    expect(exported(s, 0)).toEqual(before);
  });
});

describe('TcpTracker config', () => {
  it('has the Linux defaults', () => {
    const s = 1000;
    expect(DEFAULT_TCP_TIMEOUTS).toEqual({
      synSent: 120 * s,
      synRecv: 60 * s,
      established: 5 * 24 * 3600 * s,
      finWait: 120 * s,
      closeWait: 60 * s,
      lastAck: 30 * s,
      timeWait: 120 * s,
      close: 10 * s,
      synSent2: 120 * s,
      retrans: 300 * s,
      unacknowledged: 300 * s,
    });
    expect(DEFAULT_TCP_CONFIG.maxRetrans).toBe(3);
    expect(DEFAULT_TCP_CONFIG.liberal).toBe(false);
    expect(DEFAULT_TCP_CONFIG.loose).toBe(true);
  });

  it('applies partial overrides', () => {
    const t = new TcpTracker({ timeouts: { established: 3_600_000 } });
    expect(t.timeoutOf(TcpState.ESTABLISHED)).toBe(3_600_000);
    expect(t.timeoutOf(TcpState.SYN_SENT)).toBe(120_000);
    const f = new Flow(1, 2, { timeouts: { established: 3_600_000 } });
    f.handshake();
    expect(f.tracker.lastTimeout).toBe(3_600_000);
  });

  it('refuses bad values with the option path and a hint', () => {
    try {
      new TcpTracker({ timeouts: { close: -5 } });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(TcpConfigError);
      expect((e as TcpConfigError).code).toBe('TCP_CONFIG_INVALID');
      expect((e as TcpConfigError).path).toBe('timeouts.close');
      expect((e as Error).message).toMatch(/default is 10000/);
    }
    expect(() => new TcpTracker({ maxRetrans: 1000 })).toThrow(TcpConfigError);
    expect(() => new TcpTracker({ timeouts: { synSent: Number.NaN } })).toThrow(/timeouts.synSent/);
  });

  it('tracks many entries side by side in one store', () => {
    const store = new TcpStateStore(64);
    const flows = Array.from({ length: 64 }, (_, i) => new Flow(i * 1_000_000, 7 + i, {}, store, i));
    for (const f of flows) expect(f.handshake()).toEqual([TcpVerdict.ACCEPT, TcpVerdict.ACCEPT, TcpVerdict.ACCEPT]);
    flows[3].send(0, PSHACK, { len: 5, tcpSeq: flows[3].nxt[0] + 90_000_000 });
    for (const f of flows) expect(f.state).toBe(TcpState.ESTABLISHED);
  });
});

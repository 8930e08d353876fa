import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TcpState } from '../../../src/node/conntrack/state.js';
import {
  B_ENTRY_FLAGS,
  B_LAST_DIR,
  B_LAST_FLAGS,
  B_LAST_INDEX,
  B_LAST_WSCALE,
  B_RETRANS,
  B_STATE,
  B_TD_FLAGS,
  B_TD_SCALE,
  DEFAULT_TCP_CONFIG,
  DEFAULT_TCP_TIMEOUTS,
  TCP_BYTES_PER_ENTRY,
  TCP_EXPORT_WORDS,
  TCP_BASE_BYTES,
  TCP_BASE_WORDS,
  TCP_RECORD_BYTES,
  TCP_RECORD_WORDS,
  TCP_STRIDE_BYTES,
  TCP_STRIDE_WORDS,
  TcpCapacityError,
  TcpConfigError,
  TcpImportError,
  TcpStateStore,
  tcpExportWordsOk,
  TcpTracker,
  TcpVerdict,
  W_LAST_ACK,
  W_LAST_END,
  W_LAST_SEQ,
  W_LAST_WIN,
  W_TD_END,
  W_TD_MAXACK,
  W_TD_MAXEND,
  W_TD_MAXWIN,
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
  it('tcpExportWordsOk and importEntry take exactly the words whose fields are within their limits (property)', () => {
    const store = new TcpStateStore(1);
    // The checked words from their fields, each ranging a little past its limit (state, flags,
    // direction, flag class; scales; the top byte of word 2; the last window), the rest anything.
    const head = fc.tuple(fc.nat(11), fc.nat(255), fc.nat(2), fc.nat(6), fc.nat(15), fc.nat(15), fc.nat(255), fc.nat(1), fc.nat(0x10001));
    let taken = 0;
    let refused = 0;
    fc.assert(
      fc.property(head, fc.array(fc.nat({ max: 0xffffffff }), { minLength: 11, maxLength: 11 }), ([state, flags, dir, index, so, sr, any, top, win], rest) => {
        const w = new Uint32Array(15);
        w[0] = (state | (flags << 8) | (dir << 16) | (index << 24)) >>> 0;
        w[1] = (so | (any << 8) | (sr << 16) | (any << 24)) >>> 0;
        w[2] = ((top << 24) | any) >>> 0;
        w[3] = win;
        w.set(rest, 4);
        // The limits, from the fields (RFC 7323's largest shift 14; the tracker's states and
        // flag classes; a 16-bit window): not from the code under test.
        const ok = state <= TcpState.SYN_SENT2 && dir <= 1 && index <= 5 && so <= 14 && sr <= 14 && top === 0 && win <= 0xffff;
        expect(tcpExportWordsOk(w, 0)).toBe(ok);
        let threw = false;
        try {
          store.importEntry(0, w, 0);
        } catch (e) {
          expect(e).toBeInstanceOf(TcpImportError);
          threw = true;
        }
        expect(threw).toBe(!ok);
        if (threw) refused++;
        else taken++;
      }),
      { numRuns: 3000 },
    );
    expect(taken).toBeGreaterThan(300);
    expect(refused).toBeGreaterThan(300);
    expect(tcpExportWordsOk(new Uint32Array(14), 0)).toBe(false);
    expect(() => store.importEntry(0, new Uint32Array(14), 0)).toThrow(/truncated/);
  });

  it('is one 64-byte record per entry, at the end of each 192-byte conntrack entry record, seen as words and bytes', () => {
    const store = new TcpStateStore(1000);
    expect(TCP_BYTES_PER_ENTRY).toBe(64);
    expect(TCP_RECORD_BYTES).toBe(64);
    expect(TCP_RECORD_WORDS * 4).toBe(TCP_RECORD_BYTES);
    expect(TCP_BASE_WORDS + TCP_RECORD_WORDS).toBe(TCP_STRIDE_WORDS);
    expect(store.buffer.byteLength).toBe(1000 * TCP_STRIDE_BYTES);
    expect(store.u32.buffer).toBe(store.buffer);
    expect(store.u8.buffer).toBe(store.buffer);
    expect(store.u32.length).toBe(1000 * TCP_STRIDE_WORDS);
  });

  it('lives in a buffer its owner gives it, and refuses one too small', () => {
    const buf = new ArrayBuffer(10 * TCP_STRIDE_BYTES);
    const store = new TcpStateStore(10, buf);
    expect(store.u32.buffer).toBe(buf);
    busyFlow(store, 3);
    expect(new Uint8Array(buf, 0, TCP_BASE_BYTES).every((b) => b === 0)).toBe(true);
    expect(() => new TcpStateStore(11, buf)).toThrow(TcpCapacityError);
    const bigger = new ArrayBuffer(20 * TCP_STRIDE_BYTES);
    new Uint8Array(bigger).set(new Uint8Array(buf));
    const before = exported(store, 3);
    store.grow(20, bigger);
    expect(store.u32.buffer).toBe(bigger);
    expect(exported(store, 3)).toEqual(before);
  });

  it('lays the fields out without overlap inside the record', () => {
    // Every byte a field occupies, word fields as 4 bytes each.
    const used = new Map<number, string>();
    const take = (name: string, from: number, size: number): void => {
      for (let i = from; i < from + size; i++) {
        expect(used.get(i), `${name} overlaps ${used.get(i)} at byte ${i}`).toBeUndefined();
        expect(i).toBeLessThan(TCP_RECORD_BYTES);
        used.set(i, name);
      }
    };
    for (const dir of [0, 1]) {
      take(`W_TD_END+${dir}`, (W_TD_END + dir) * 4, 4);
      take(`W_TD_MAXEND+${dir}`, (W_TD_MAXEND + dir) * 4, 4);
      take(`W_TD_MAXWIN+${dir}`, (W_TD_MAXWIN + dir) * 4, 4);
      take(`W_TD_MAXACK+${dir}`, (W_TD_MAXACK + dir) * 4, 4);
      take(`B_TD_SCALE+${dir}`, B_TD_SCALE + dir, 1);
      take(`B_TD_FLAGS+${dir}`, B_TD_FLAGS + dir, 1);
    }
    for (const [name, w] of Object.entries({ W_LAST_SEQ, W_LAST_ACK, W_LAST_END, W_LAST_WIN })) take(name, w * 4, 4);
    for (const [name, b] of Object.entries({ B_STATE, B_ENTRY_FLAGS, B_LAST_DIR, B_LAST_INDEX, B_RETRANS, B_LAST_WSCALE, B_LAST_FLAGS })) {
      take(name, b, 1);
    }
    expect(used.size).toBe(12 * 4 + 11);
  });

  it('keeps each slot in its own record: writing every byte of one leaves its neighbours alone', () => {
    const s = new TcpStateStore(3);
    const at = TCP_STRIDE_BYTES + TCP_BASE_BYTES;
    for (let i = 0; i < TCP_RECORD_BYTES; i++) s.u8[at + i] = 0xff;
    expect(s.u8.subarray(0, at).every((b) => b === 0)).toBe(true);
    expect(s.u8.subarray(at + TCP_RECORD_BYTES).every((b) => b === 0)).toBe(true);
    s.clear(1);
    expect(s.u8.every((b) => b === 0)).toBe(true);
  });

  it('maps every field to its export word and back', () => {
    const s = new TcpStateStore(3);
    const b = 1 * TCP_STRIDE_WORDS + TCP_BASE_WORDS;
    const p = 1 * TCP_STRIDE_BYTES + TCP_BASE_BYTES;
    for (let dir = 0; dir < 2; dir++) {
      s.u32[b + W_TD_END + dir] = 0x11110000 + dir;
      s.u32[b + W_TD_MAXEND + dir] = 0x22220000 + dir;
      s.u32[b + W_TD_MAXWIN + dir] = 0x33330000 + dir;
      s.u32[b + W_TD_MAXACK + dir] = 0x44440000 + dir;
      s.u8[p + B_TD_SCALE + dir] = 13 + dir;
      s.u8[p + B_TD_FLAGS + dir] = 0x21 + dir;
    }
    s.u32[b + W_LAST_SEQ] = 0xa0000001;
    s.u32[b + W_LAST_ACK] = 0xa0000002;
    s.u32[b + W_LAST_END] = 0xa0000003;
    s.u32[b + W_LAST_WIN] = 0xfffe;
    s.u8[p + B_STATE] = TcpState.TIME_WAIT;
    s.u8[p + B_ENTRY_FLAGS] = 0x1f;
    s.u8[p + B_LAST_DIR] = 1;
    s.u8[p + B_LAST_INDEX] = 5;
    s.u8[p + B_RETRANS] = 254;
    s.u8[p + B_LAST_WSCALE] = 12;
    s.u8[p + B_LAST_FLAGS] = 0xc3;
    expect(exported(s, 1)).toEqual([
      TcpState.TIME_WAIT | (0x1f << 8) | (1 << 16) | (5 << 24),
      (13 | (0x21 << 8) | (14 << 16) | (0x22 << 24)) >>> 0,
      254 | (12 << 8) | (0xc3 << 16),
      0xfffe,
      0x11110000, 0x22220000, 0x33330000, 0x44440000,
      0x11110001, 0x22220001, 0x33330001, 0x44440001,
      0xa0000001, 0xa0000002, 0xa0000003,
    ]);
    expect(s.stateOf(1)).toBe(TcpState.TIME_WAIT);
    expect(s.wordOf(1, W_TD_MAXACK + 1)).toBe(0x44440001);
    expect(s.byteOf(1, B_TD_FLAGS + 1)).toBe(0x22);
    // Import into a slot holding garbage: the record comes out equal, spare bytes zero.
    const b2 = 2 * TCP_STRIDE_WORDS + TCP_BASE_WORDS;
    s.u8.fill(0xee, b2 * 4, (b2 + TCP_RECORD_WORDS) * 4);
    const w = new Uint32Array(TCP_EXPORT_WORDS);
    s.exportEntry(1, w, 0);
    s.importEntry(2, w, 0);
    expect([...s.u32.subarray(b2, b2 + TCP_RECORD_WORDS)]).toEqual([...s.u32.subarray(b, b + TCP_RECORD_WORDS)]);
  });

  it('round-trips a live entry through export/import, and the copy keeps tracking identically', () => {
    const a = new TcpStateStore(4);
    const f = busyFlow(a, 1);
    const words = new Uint32Array(TCP_EXPORT_WORDS + 3);
    a.exportEntry(1, words, 3);
    const b = new TcpStateStore(8);
    b.importEntry(6, words, 3);
    expect(exported(b, 6)).toEqual(exported(a, 1));
    expect(b.stateOf(6)).toBe(TcpState.ESTABLISHED);
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
    expect(s.u32.length).toBe(1000 * TCP_STRIDE_WORDS);
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

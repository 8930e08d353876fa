/**
 * TCP tracker benchmark: ns per segment of TcpTracker.track alone on established flows, random
 * in-window ACK and data segments (60% data), for 1k flows (records in cache) and 100k flows
 * (6.4 MB of records: about one cache miss per segment). Also the full path (trackFull) on the
 * same traffic, to show what the fast path saves. Prints figures; not a test.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/tcp.js
 *
 * The traffic is generated once as a trace and replayed from a snapshot of the store taken after
 * the handshakes, so every pass sees the same segments in window; the replay loop's own cost
 * (reading the trace into the segment object) is measured alone and reported beside.
 */
import { TcpFlag } from '../src/node/packet/fields.js';
import { TcpStateStore, TcpTracker, TcpVerdict, type TcpSegment } from '../src/node/conntrack/tcp.js';

const { SYN, ACK, PSH } = TcpFlag;
const SEGMENTS = 1_000_000;
const PASSES = 7;

let rng = 0x2545f491;
function rand(): number {
  rng ^= rng << 13;
  rng ^= rng >>> 17;
  rng ^= rng << 5;
  return rng >>> 0;
}

/** One segment object, rewritten per packet as the engine's parser rewrites its view. */
const seg: TcpSegment = { tcpFlags: 0, tcpSeq: 0, tcpAck: 0, tcpWindow: 0, tcpWscale: -1, tcpSackPermitted: false, payloadLength: 0 };

interface Trace {
  slot: Uint32Array;
  dir: Uint8Array;
  seq: Uint32Array;
  ack: Uint32Array;
  len: Uint16Array;
  flags: Uint8Array;
  win: Uint16Array;
}

/** Handshake every flow (window scale 7 both ways), then build the trace from the flows' sequence numbers. */
function setup(flows: number): { tracker: TcpTracker; store: TcpStateStore; snapshot: Uint32Array; trace: Trace } {
  const tracker = new TcpTracker();
  const store = new TcpStateStore(flows);
  const nxt = new Uint32Array(flows * 2);
  const send = (slot: number, dir: number, flags: number): void => {
    const syn = (flags & SYN) !== 0;
    seg.tcpFlags = flags;
    seg.tcpSeq = nxt[slot * 2 + dir];
    seg.tcpAck = (flags & ACK) !== 0 ? nxt[slot * 2 + (dir ^ 1)] : 0;
    seg.tcpWindow = syn ? 65535 : 512;
    seg.tcpWscale = syn ? 7 : -1;
    seg.tcpSackPermitted = syn;
    seg.payloadLength = 0;
    if (dir === 0 && flags === SYN && !tracker.newEntry(store, slot, seg)) throw new Error('newEntry refused a SYN');
    if (tracker.track(store, slot, dir, seg, 0) !== TcpVerdict.ACCEPT) throw new Error(`handshake refused (flags ${flags})`);
    if (syn) nxt[slot * 2 + dir] = (nxt[slot * 2 + dir] + 1) >>> 0;
  };
  for (let s = 0; s < flows; s++) {
    nxt[s * 2] = rand();
    nxt[s * 2 + 1] = rand();
    send(s, 0, SYN);
    send(s, 1, SYN | ACK);
    send(s, 0, ACK);
  }
  const trace: Trace = {
    slot: new Uint32Array(SEGMENTS),
    dir: new Uint8Array(SEGMENTS),
    seq: new Uint32Array(SEGMENTS),
    ack: new Uint32Array(SEGMENTS),
    len: new Uint16Array(SEGMENTS),
    flags: new Uint8Array(SEGMENTS),
    win: new Uint16Array(SEGMENTS),
  };
  for (let i = 0; i < SEGMENTS; i++) {
    const s = rand() % flows;
    const d = rand() & 1;
    const data = rand() % 10 < 6;
    const len = data ? 1 + (rand() % 1460) : 0;
    trace.slot[i] = s;
    trace.dir[i] = d;
    trace.seq[i] = nxt[s * 2 + d];
    trace.ack[i] = nxt[s * 2 + (d ^ 1)];
    trace.len[i] = len;
    trace.flags[i] = data ? PSH | ACK : ACK;
    trace.win[i] = 500 + (rand() % 24);
    nxt[s * 2 + d] = (nxt[s * 2 + d] + len) >>> 0;
  }
  return { tracker, store, snapshot: store.u32.slice(), trace };
}

type Pass = (tracker: TcpTracker, store: TcpStateStore, tr: Trace) => number;

// One loop per mode, each with a single call site, so that the modes do not share type feedback.
/** Replay through track(); returns the segments accepted. */
function passTrack(tracker: TcpTracker, store: TcpStateStore, tr: Trace): number {
  let accepted = 0;
  for (let i = 0; i < SEGMENTS; i++) {
    seg.tcpFlags = tr.flags[i];
    seg.tcpSeq = tr.seq[i];
    seg.tcpAck = tr.ack[i];
    seg.tcpWindow = tr.win[i];
    seg.payloadLength = tr.len[i];
    if (tracker.track(store, tr.slot[i], tr.dir[i], seg, 0) === TcpVerdict.ACCEPT) accepted++;
  }
  return accepted;
}

/** Replay through trackFull() (no fast path). */
function passFull(tracker: TcpTracker, store: TcpStateStore, tr: Trace): number {
  let accepted = 0;
  for (let i = 0; i < SEGMENTS; i++) {
    seg.tcpFlags = tr.flags[i];
    seg.tcpSeq = tr.seq[i];
    seg.tcpAck = tr.ack[i];
    seg.tcpWindow = tr.win[i];
    seg.payloadLength = tr.len[i];
    if (tracker.trackFull(store, tr.slot[i], tr.dir[i], seg, 0) === TcpVerdict.ACCEPT) accepted++;
  }
  return accepted;
}

/** The replay alone: the same loads and stores, no tracker. */
function passLoop(_tracker: TcpTracker, _store: TcpStateStore, tr: Trace): number {
  let accepted = 0;
  for (let i = 0; i < SEGMENTS; i++) {
    seg.tcpFlags = tr.flags[i];
    seg.tcpSeq = tr.seq[i];
    seg.tcpAck = tr.ack[i];
    seg.tcpWindow = tr.win[i];
    seg.payloadLength = tr.len[i];
    if (tr.slot[i] + tr.dir[i] + seg.tcpSeq !== -1) accepted++;
  }
  return accepted;
}

/**
 * Best of PASSES replays from the snapshot, in ns per segment (the machine may be shared: the
 * minimum is the least disturbed). Throws unless every segment is accepted.
 */
function best(run: Pass, tracker: TcpTracker, store: TcpStateStore, snapshot: Uint32Array, tr: Trace): number {
  let min = Infinity;
  for (let p = 0; p < PASSES; p++) {
    store.u32.set(snapshot);
    const start = process.hrtime.bigint();
    const accepted = run(tracker, store, tr);
    min = Math.min(min, Number(process.hrtime.bigint() - start) / SEGMENTS);
    if (accepted !== SEGMENTS) throw new Error(`only ${accepted} of ${SEGMENTS} segments accepted`);
  }
  return min;
}

console.log(`twinwall TCP tracker benchmark, node ${process.version}, ${SEGMENTS} segments per pass, best of ${PASSES}`);
for (const flows of [1000, 100_000]) {
  const { tracker, store, snapshot, trace } = setup(flows);
  const loop = best(passLoop, tracker, store, snapshot, trace);
  const fast = best(passTrack, tracker, store, snapshot, trace);
  const full = best(passFull, tracker, store, snapshot, trace);
  console.log(
    `flows=${String(flows).padStart(7)}  track ${fast.toFixed(1).padStart(6)} ns/segment  ` +
      `(full path ${full.toFixed(1)} ns, replay loop alone ${loop.toFixed(1)} ns)`,
  );
}

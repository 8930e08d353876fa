/**
 * The NFQUEUE binding alone in a lab namespace (test/lab/binding.test.ts), driven one request per
 * stdin line. Run compiled inside the namespace:
 *
 *   ip netns exec NS node dist/test/lab/agents/nfq-queue.js QUEUE
 *
 * Requests: `open MODE` binds the queue with a handler that, per packet of UDP payload "a<n>"
 * (n decimal): accept (every packet), drop-odd (drops odd n), rewrite (the payload's first byte
 * to 'b', UDP checksum cleared), mark (accept with mark 42), replace (a new, longer datagram built
 * at the packet's emit offset), bad-bytes (asks to send bytes beyond the arena); `stats` (the binding's counters and the batches it saw); `close`;
 * `proc` (the kernel's queue list).
 */
import { readFileSync } from 'node:fs';
import { badRequest, serveLines } from './serve-lines.js';
import {
  BoundQueue, D_LENGTH, D_OFFSET, DESC_INTS, NF_ACCEPT, NF_DROP, V_FLAGS, V_LENGTH, V_MARK, V_OFFSET, V_VERDICT, VERD_INTS, VF_BYTES, VF_MARK,
} from '../../../src/node/dataplane/binding.js';

const queueNum = Number(process.argv[2]);
let q: BoundQueue | null = null;
let mode = 'accept';
const batchSizes: number[] = [];

function onBatch(n: number): void {
  const b = q as BoundQueue;
  batchSizes.push(n);
  for (let i = 0; i < n; i++) {
    const off = b.desc[i * DESC_INTS + D_OFFSET];
    const len = b.desc[i * DESC_INTS + D_LENGTH];
    const w = i * VERD_INTS;
    const ihl = (b.arena[off] & 0x0f) * 4;
    const data = off + ihl + 8;
    const num = Number(b.arena.toString('latin1', data + 1, off + len));
    b.verdicts[w + V_VERDICT] = NF_ACCEPT;
    b.verdicts[w + V_FLAGS] = 0;
    switch (mode) {
      case 'drop-odd':
        if (num % 2 === 1) b.verdicts[w + V_VERDICT] = NF_DROP;
        break;
      case 'rewrite':
        b.arena[data] = 0x62; // 'b'
        b.arena[off + ihl + 6] = 0;
        b.arena[off + ihl + 7] = 0;
        b.verdicts[w + V_FLAGS] = VF_BYTES;
        b.verdicts[w + V_OFFSET] = off;
        b.verdicts[w + V_LENGTH] = len;
        break;
      case 'mark':
        b.verdicts[w + V_FLAGS] = VF_MARK;
        b.verdicts[w + V_MARK] = 42;
        break;
      case 'replace': {
        // The same IPv4 + UDP headers with the payload "replaced-<n>": lengths and checksums fixed.
        const body = Buffer.from(`replaced-${num}`, 'latin1');
        const eo = b.emitOffset(i);
        b.arena.copy(b.arena, eo, off, off + ihl + 8);
        body.copy(b.arena, eo + ihl + 8);
        const total = ihl + 8 + body.length;
        b.arena.writeUInt16BE(total, eo + 2);
        b.arena.writeUInt16BE(0, eo + 10);
        b.arena.writeUInt16BE(ipChecksum(b.arena, eo, ihl), eo + 10);
        b.arena.writeUInt16BE(8 + body.length, eo + ihl + 4);
        b.arena.writeUInt16BE(0, eo + ihl + 6);
        b.verdicts[w + V_FLAGS] = VF_BYTES;
        b.verdicts[w + V_OFFSET] = eo;
        b.verdicts[w + V_LENGTH] = total;
        break;
      }
      case 'bad-bytes':
        // Bytes outside the arena: the binding must refuse to send them and drop the packet.
        b.verdicts[w + V_FLAGS] = VF_BYTES;
        b.verdicts[w + V_OFFSET] = b.arena.length - 10;
        b.verdicts[w + V_LENGTH] = 100;
        break;
      default:
        break;
    }
  }
}

function ipChecksum(buf: Buffer, off: number, len: number): number {
  let sum = 0;
  for (let i = 0; i < len; i += 2) sum += buf.readUInt16BE(off + i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

serveLines(async (cmd, arg) => {
  switch (cmd) {
    case 'open':
      mode = arg;
      batchSizes.length = 0;
      q = new BoundQueue({ queueNum, socketBuffer: 4 << 20, failOpen: false }, onBatch);
      return {};
    case 'stats':
      return { counters: q?.counters() ?? null, batches: batchSizes.length, largest: Math.max(0, ...batchSizes) };
    case 'close':
      q?.close();
      return {};
    case 'proc':
      return { queues: readFileSync('/proc/net/netfilter/nfnetlink_queue', 'utf8').trim().split('\n').filter(Boolean).map((l) => Number(l.trim().split(/\s+/)[0])) };
    default:
      throw badRequest(cmd, 'open MODE, stats, close or proc');
  }
}, async () => {
  q?.close();
});

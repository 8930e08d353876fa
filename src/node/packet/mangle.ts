/**
 * Payload rewriting that changes a packet's length (a NAT helper replacing an address in an FTP
 * command): a new datagram with bytes [start, end) of the payload replaced, its IPv4 total
 * length and header checksum (or IPv6 payload length), UDP length, and transport checksum made
 * right. A rare path (control messages): it allocates.
 */
import { Proto } from './fields.js';
import { computeL4ChecksumRaw, fixIpv4HeaderChecksum } from './checksum.js';
import type { PacketView } from './view.js';

export class MangleError extends Error {
  readonly code = 'TW_ERR_MANGLE';
}

/** Payload bytes [start, end) (offsets in the packet's buffer) to be replaced by `text`. */
export interface PayloadEdit {
  start: number;
  end: number;
  text: Uint8Array;
}

/**
 * The packet from its IP header on with each edit's payload range replaced (edits in order, not
 * overlapping). Throws MangleError for a fragment, another protocol than TCP or UDP, a range
 * outside the payload, or a result too large for the IP length field.
 */
export function replacePayloadRanges(v: PacketView, edits: readonly PayloadEdit[]): Buffer {
  const b = v.buffer;
  const p0 = v.payloadOffset;
  const p1 = p0 + v.payloadLength;
  if (v.isFragment) throw new MangleError('cannot rewrite the payload of a fragment');
  if (v.proto !== Proto.TCP && v.proto !== Proto.UDP) throw new MangleError(`cannot rewrite the payload of protocol ${v.proto}`);
  let grow = 0;
  let at = p0;
  for (const e of edits) {
    if (e.start < at || e.end > p1 || e.start > e.end) throw new MangleError(`range [${e.start}, ${e.end}) is not inside the payload [${p0}, ${p1}) after the edits before it`);
    grow += e.text.length - (e.end - e.start);
    at = e.end;
  }
  const l3 = v.l3Offset;
  const out = Buffer.allocUnsafe(p1 - l3 + grow);
  let o = 0;
  let from = l3;
  for (const e of edits) {
    out.set(b.subarray(from, e.start), o);
    o += e.start - from;
    out.set(e.text, o);
    o += e.text.length;
    from = e.end;
  }
  out.set(b.subarray(from, p1), o);
  const len = out.length;
  if (v.family === 4) {
    if (len > 0xffff) throw new MangleError(`the rewritten packet would be ${len} bytes`);
    out[2] = len >>> 8;
    out[3] = len & 0xff;
    fixIpv4HeaderChecksum(out, 0);
  } else {
    const pl = len - 40;
    if (pl > 0xffff) throw new MangleError(`the rewritten packet would be ${len} bytes`);
    out[4] = pl >>> 8;
    out[5] = pl & 0xff;
  }
  const l4 = v.l4Offset - l3;
  if (v.proto === Proto.UDP) {
    const ul = len - l4;
    out[l4 + 4] = ul >>> 8;
    out[l4 + 5] = ul & 0xff;
  }
  const sumAt = l4 + (v.proto === Proto.TCP ? 16 : 6);
  const c = computeL4ChecksumRaw(out, 0, v.family, v.proto, l4, len);
  out[sumAt] = c >>> 8;
  out[sumAt + 1] = c & 0xff;
  return out;
}

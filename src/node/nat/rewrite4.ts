/**
 * The common case of a NAT rewrite in one pass: an IPv4 TCP or UDP packet (not a quote, not a
 * fragment tail) gets a new address and port on one side, the IP header checksum and the
 * transport checksum each updated once (RFC 1624, eqn. 3) for both changes. packet/rewrite.ts
 * does the same field by field for every other case; this saves its per-field checks and the
 * second update of the transport checksum on every packet of a NAT flow.
 */
import type { PacketView } from '../packet/view.js';

// Module-local protocol numbers (as the engine's hot paths: imported bindings cost a load).
const TCP = 6;
const UDP = 17;

/** True when rewrite4 applies to this packet. */
export function canRewrite4(v: PacketView): boolean {
  return v.family === 4 && (v.proto === TCP || v.proto === UDP) && !v.isLaterFragment && !v.isIcmpError && !v.isQuoted;
}

/**
 * Set the source (side 0) or destination (side 1) address and port of a packet for which
 * canRewrite4 is true, fixing both checksums; updates the view's fields. False when nothing changed.
 */
export function rewrite4(v: PacketView, side: number, addr: number, port: number): boolean {
  const b = v.buffer;
  const l3 = v.l3Offset;
  const l4 = v.l4Offset;
  const oldA = side === 0 ? v.src[0] : v.dst[0];
  const oldP = side === 0 ? v.sport : v.dport;
  addr >>>= 0;
  if (oldA === addr && oldP === port) return false;
  const at = l3 + (side === 0 ? 12 : 16);
  b[at] = addr >>> 24;
  b[at + 1] = (addr >>> 16) & 0xff;
  b[at + 2] = (addr >>> 8) & 0xff;
  b[at + 3] = addr & 0xff;
  const pat = l4 + (side === 0 ? 0 : 2);
  b[pat] = port >>> 8;
  b[pat + 1] = port & 0xff;
  // ~m + m' for the address words.
  const na = ~oldA;
  const da = ((na >>> 16) & 0xffff) + (na & 0xffff) + (addr >>> 16) + (addr & 0xffff);
  let s = (~((b[l3 + 10] << 8) | b[l3 + 11]) & 0xffff) + da;
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  s = ~s & 0xffff;
  b[l3 + 10] = s >>> 8;
  b[l3 + 11] = s & 0xff;
  const ck = l4 + (v.proto === TCP ? 16 : 6);
  const old = (b[ck] << 8) | b[ck + 1];
  // UDP/IPv4 checksum 0 means "none" (RFC 768) and stays so.
  if (!(v.proto === UDP && old === 0)) {
    let t = (~old & 0xffff) + da + (~oldP & 0xffff) + port;
    t = (t & 0xffff) + (t >>> 16);
    t = (t & 0xffff) + (t >>> 16);
    t = ~t & 0xffff;
    // A UDP checksum computing to zero is sent as 0xffff.
    if (t === 0 && v.proto === UDP) t = 0xffff;
    b[ck] = t >>> 8;
    b[ck + 1] = t & 0xff;
  }
  if (side === 0) {
    v.src[0] = addr;
    v.sport = port;
  } else {
    v.dst[0] = addr;
    v.dport = port;
  }
  return true;
}

/**
 * The election's advertisement, version 1: one datagram every advert interval from the master
 * (and one with priority 0 when it steps down), on every protected network and on the sync link.
 * After VRRPv3 (RFC 5798) with what a pair of firewalls needs beside it: the sender's id and
 * start time (epoch), a sequence number (so a recorded advert cannot be replayed), the interval
 * in milliseconds, and an HMAC-SHA256 tag with the sync keys (src/sync/auth.ts). Big-endian.
 *
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-------------------------------+---------------+---------------+
 * |       magic 0x5445 "TE"       |  version = 1  |  type = 1     |
 * +---------------+---------------+---------------+---------------+
 * |    key id     |  flags (0)    |   priority    |  role         |
 * +---------------+---------------+---------------+---------------+
 * |           group id            |     advert interval (ms)      |
 * +-------------------------------+-------------------------------+
 * |                          sender id                            |
 * +---------------------------------------------------------------+
 * |              epoch (ms since 1970 when the sender started,    |
 * |                       64 bits)                                |
 * +---------------------------------------------------------------+
 * |                    seq (per sender and epoch)                 |
 * +---------------------------------------------------------------+
 * |   sender's address on the sync link (16 bytes; IPv4 as       |
 * |   ::ffff:a.b.c.d), the tie-break between equal priorities     |
 * +---------------------------------------------------------------+
 * |   HMAC-SHA256(key[key id], everything above), first 16 bytes  |
 * +---------------------------------------------------------------+
 *
 * Priority 1-254 (255 unused: no node owns the addresses), 0 = the master steps down now (the
 * backup takes over after its skew time instead of the whole master-down interval). Role is the
 * sender's state (Role below), for `failover status` and logs; the election does not trust it.
 */
import { isIP } from 'node:net';
import { formatAddress } from '../node/packet/address.js';
import type { Keyring } from '../sync/auth.js';

export const ADVERT_MAGIC = 0x5445;
export const ADVERT_VERSION = 1;
export const ADVERT_TYPE = 1;
export const ADVERT_BYTES = 44;
export const ADVERT_MAC_BYTES = 16;
export const ADVERT_DATAGRAM_BYTES = ADVERT_BYTES + ADVERT_MAC_BYTES;

/** Election states, as numbers on the wire and in metrics. */
export const Role = {
  INIT: 0,
  BACKUP: 1,
  MASTER: 2,
  FAULT: 3,
} as const;
export type RoleCode = (typeof Role)[keyof typeof Role];
export const roleNames = ['init', 'backup', 'master', 'fault'] as const;

export interface Advert {
  keyId: number;
  priority: number;
  role: number;
  groupId: number;
  intervalMs: number;
  sender: number;
  epoch: number;
  seq: number;
  /** 16 bytes. */
  address: Buffer;
}

export function newAdvert(): Advert {
  return { keyId: 0, priority: 0, role: 0, groupId: 0, intervalMs: 0, sender: 0, epoch: 0, seq: 0, address: Buffer.alloc(16) };
}

/** Why a datagram is not an advert we accept (a counter label each). */
export const AdvertDrop = {
  TOO_SHORT: 'too_short',
  BAD_MAGIC: 'bad_magic',
  BAD_VERSION: 'bad_version',
  BAD_LENGTH: 'bad_length',
  UNKNOWN_TYPE: 'unknown_type',
  UNKNOWN_KEY: 'unknown_key',
  BAD_MAC: 'bad_mac',
  BAD_FIELD: 'bad_field',
  OTHER_GROUP: 'other_group',
  OWN: 'own',
  /** The same advert again: it is sent on every link, so each link's copy after the first. */
  DUPLICATE: 'duplicate',
  /** An older seq of the sender's current epoch: a recorded advert played back. */
  REPLAY: 'replay',
  STALE_EPOCH: 'stale_epoch',
} as const;
export type AdvertDropReason = (typeof AdvertDrop)[keyof typeof AdvertDrop];

/** Write and sign an advert into buf (ADVERT_DATAGRAM_BYTES). */
export function encodeAdvert(a: Advert, keys: Keyring, buf: Buffer): Buffer {
  buf.writeUInt16BE(ADVERT_MAGIC, 0);
  buf[2] = ADVERT_VERSION;
  buf[3] = ADVERT_TYPE;
  buf[4] = keys.sendId;
  buf[5] = 0;
  buf[6] = a.priority;
  buf[7] = a.role;
  buf.writeUInt16BE(a.groupId, 8);
  buf.writeUInt16BE(a.intervalMs, 10);
  buf.writeUInt32BE(a.sender >>> 0, 12);
  buf.writeUInt32BE(Math.floor(a.epoch / 4294967296), 16);
  buf.writeUInt32BE(a.epoch >>> 0, 20);
  buf.writeUInt32BE(a.seq >>> 0, 24);
  a.address.copy(buf, 28, 0, 16);
  keys.sign(buf, ADVERT_BYTES);
  return buf.subarray(0, ADVERT_DATAGRAM_BYTES);
}

/**
 * Read and authenticate an advert into `out`: null, or why it is refused. Never throws on input.
 * Replay and group checks are the election's (they need its state).
 */
export function decodeAdvert(buf: Buffer, keys: Keyring, out: Advert): AdvertDropReason | null {
  if (buf.length < ADVERT_DATAGRAM_BYTES) return AdvertDrop.TOO_SHORT;
  if (buf.readUInt16BE(0) !== ADVERT_MAGIC) return AdvertDrop.BAD_MAGIC;
  if (buf[2] !== ADVERT_VERSION) return AdvertDrop.BAD_VERSION;
  if (buf.length !== ADVERT_DATAGRAM_BYTES) return AdvertDrop.BAD_LENGTH;
  if (buf[3] !== ADVERT_TYPE) return AdvertDrop.UNKNOWN_TYPE;
  const auth = keys.verify(buf, buf[4]);
  if (auth === 'unknown_key') return AdvertDrop.UNKNOWN_KEY;
  if (auth === 'bad_mac') return AdvertDrop.BAD_MAC;
  out.keyId = buf[4];
  out.priority = buf[6];
  out.role = buf[7];
  out.groupId = buf.readUInt16BE(8);
  out.intervalMs = buf.readUInt16BE(10);
  out.sender = buf.readUInt32BE(12);
  out.epoch = buf.readUInt32BE(16) * 4294967296 + buf.readUInt32BE(20);
  out.seq = buf.readUInt32BE(24);
  buf.copy(out.address, 0, 28, 44);
  // Signed by a key we hold, yet impossible: an interval of 0 would make a zero master-down
  // timer, priority 255 is nobody's, a role we do not know.
  if (out.intervalMs === 0 || out.priority === 255 || out.role > Role.FAULT || out.sender === 0) return AdvertDrop.BAD_FIELD;
  return null;
}

/** An address as the 16 bytes adverts carry (IPv4 mapped into IPv6). */
export function addressBytes(address: string): Buffer {
  if (isIP(address) === 0) throw new RangeError(`${address} is not an IPv4 or IPv6 address`);
  const b = Buffer.alloc(16);
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(address);
  if (v4 !== null) {
    b[10] = 0xff;
    b[11] = 0xff;
    for (let i = 0; i < 4; i++) b[12 + i] = Number(v4[i + 1]);
    return b;
  }
  // IPv6: expand '::'.
  const [head, tail] = address.includes('::') ? address.split('::') : [address, undefined];
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  if (groups.length !== 8 || groups.some((g) => !/^[0-9a-fA-F]{1,4}$/.test(g))) {
    throw new RangeError(`${address} is not an IPv4 or IPv6 address`);
  }
  groups.forEach((g, i) => b.writeUInt16BE(parseInt(g, 16), i * 2));
  return b;
}

/** The 16 bytes of an advert's address as text: a.b.c.d for IPv4 (mapped), IPv6 otherwise. */
export function addressText(b: Buffer): string {
  const w = [b.readUInt32BE(0), b.readUInt32BE(4), b.readUInt32BE(8), b.readUInt32BE(12)];
  return w[0] === 0 && w[1] === 0 && w[2] === 0xffff ? formatAddress(4, [w[3]]) : formatAddress(6, w);
}

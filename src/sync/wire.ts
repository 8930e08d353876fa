/**
 * The sync wire format, version 1: every datagram between the nodes of a pair. All integers are
 * big-endian (network order). A datagram never exceeds the configured sync MTU (IP + UDP headers
 * included: payload room = mtu - 28 for IPv4).
 *
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-------------------------------+---------------+---------------+
 * |        magic 0x5457 "TW"      |  version = 1  |     type      |
 * +---------------+---------------+-------------------------------+
 * |    key id     |     flags     |         payload length        |
 * +---------------+---------------+-------------------------------+
 * |                          sender id                            |
 * +---------------------------------------------------------------+
 * |              epoch (ms since 1970 when the sender started,    |
 * |                       64 bits)                                |
 * +---------------------------------------------------------------+
 * |   seq: data messages (UPDATE, RESYNC_END) the data sequence;  |
 * |   control messages the sender's control sequence              |
 * +---------------------------------------------------------------+
 * |                payload (payload length bytes)                 |
 * +---------------------------------------------------------------+
 * |   HMAC-SHA256(key[key id], header + payload), first 16 bytes  |
 * +---------------------------------------------------------------+
 *
 * Data messages consume one data sequence number each and stay in the sender's resend window
 * for NACKs; control messages (ALIVE, NACK, RESYNC_REQUEST, REPORT) have a control sequence of
 * their own, only for replay protection. Sequence numbers wrap (compare with seq.ts).
 *
 * Payloads:
 *   UPDATE (1)          count u16, then `count` entries (below). Flag RESYNC: part of a bulk dump.
 *   RESYNC_END (2)      resync id u32, entries dumped u32: everything the peer held is sent.
 *   ALIVE (3)           next data seq u32 (last sent + 1), window low u32 (oldest seq resendable).
 *   NACK (4)            target u32, count u16, then `count` ranges: first u32, last u32 (inclusive).
 *   RESYNC_REQUEST (5)  target u32 (0 = whoever is active), resync id u32, reason u8.
 *   REPORT (6)          target u32, highest in-order seq applied u32, count u8, then `count`
 *                       samples: seq u32, microseconds between its apply and this report u32.
 *
 * Entry (in UPDATE), with a length so that a receiver skips what a newer version added:
 *   op u8 (1 create, 2 update, 3 destroy), sections u8, length u16 (whole entry), family u8 (4|6),
 *   proto u8, original tuple: src (4|16), dst (4|16), ports u32 (tuple.ts word 8);
 *   destroy ends here. Otherwise: reply tuple (same shape: the NAT mapping; absent when the
 *   sections byte has bit 6 REPLY_REVERSED: the reply is the original's inverse as conntrack forms
 *   it, tuple.ts invertTuple: addresses swapped, ports swapped for TCP and UDP, an ICMP request
 *   type replaced by its reply type; as for any flow without NAT), status u16, milliseconds left
 *   u32, then the sections present, in bit order:
 *     bit 0 MARK u32 · bit 1 LABEL u32 · bit 2 COUNTERS 4 x u64 (packets orig/reply, bytes
 *     orig/reply) · bit 3 TCP 15 x u32 (TcpStateStore.exportEntry) · bit 4 AGE u32 seconds ·
 *     bit 5 HELPER: helper id u8, flags u8 (bit 0: sequence adjustment), expectation count u8,
 *     zero u8; when flagged, 6 x u32 (position dir 0, 1; offset before 0, 1; after 0, 1); then
 *     per expectation: tuple (as above, the entry's family), proto u8, dir u8, flags u8, zero u8,
 *     ports mask u32, ms left u32, saved port u32 (0xffffffff: none).
 *   Later versions add sections at higher bits only, after these (a receiver that does not know
 *   one skips it with the entry's length: HELPER was added so, readers before it ignore it).
 *
 * Features a reader must know (REPLY_REVERSED, which removes a field) are used only toward a peer
 * that said it reads them: every message a node sends carries header flag READS_REVERSED (2),
 * and a node sends REPLY_REVERSED entries only while the peer's latest authenticated message
 * had it. A node of a version before it never sets the flag, and so never gets such an entry.
 */

export const SYNC_MAGIC = 0x5457;
export const SYNC_VERSION = 1;
export const HEADER_BYTES = 24;
export const MAC_BYTES = 16;
/** IPv4 + UDP headers, for the payload room under an MTU. */
export const IP_UDP_OVERHEAD = 28;
export const MIN_SYNC_MTU = 576;
export const MAX_SYNC_MTU = 65_535;

export const MsgType = {
  UPDATE: 1,
  RESYNC_END: 2,
  ALIVE: 3,
  NACK: 4,
  RESYNC_REQUEST: 5,
  REPORT: 6,
} as const;
export const msgTypeNames = ['', 'update', 'resync_end', 'alive', 'nack', 'resync_request', 'report'] as const;

/** Data messages consume a data sequence number and can be resent. */
export function isDataType(type: number): boolean {
  return type === MsgType.UPDATE || type === MsgType.RESYNC_END;
}

export const MsgFlag = {
  /** UPDATE that belongs to a bulk resync dump. */
  RESYNC: 1,
  /** On every message: its sender reads entries with REPLY_REVERSED (see above). */
  READS_REVERSED: 2,
} as const;

export const EntryOp = { CREATE: 1, UPDATE: 2, DESTROY: 3 } as const;

export const Section = {
  MARK: 1,
  LABEL: 2,
  COUNTERS: 4,
  TCP: 8,
  AGE: 16,
  /** A connection helper's state (variable length, see entry-codec.ts and conntrack/helpers/state.ts). */
  HELPER: 32,
  /**
   * Not a section but its absence: the entry carries no reply tuple, the reply being the
   * original's inverse (invertTuple). Only toward a peer that reads it.
   */
  REPLY_REVERSED: 64,
} as const;
/** Section bits this version reads. */
export const KNOWN_SECTIONS = 127;
/** Bytes of the HELPER section's head: helper id, flags, expectation count, zero (u8 each). */
export const HELPER_HEAD_BYTES = 4;

export const ENTRY_HEAD_BYTES = 6;
export const TCP_SECTION_WORDS = 15;

export const ResyncReason = {
  /** The receiver started and holds nothing of the sender yet. */
  STARTUP: 1,
  /** The sender restarted (new epoch). */
  NEW_EPOCH: 2,
  /** A gap is no longer in the sender's resend window. */
  GAP_LOST: 3,
  /** Asked by an operator (`twinwall sync resync`). */
  OPERATOR: 4,
} as const;

export interface Header {
  type: number;
  keyId: number;
  flags: number;
  payloadLength: number;
  sender: number;
  epoch: number;
  seq: number;
}

/** Write a header at buf[0..24). */
export function writeHeader(buf: Buffer, h: Header): void {
  buf.writeUInt16BE(SYNC_MAGIC, 0);
  buf[2] = SYNC_VERSION;
  buf[3] = h.type;
  buf[4] = h.keyId;
  buf[5] = h.flags;
  buf.writeUInt16BE(h.payloadLength, 6);
  buf.writeUInt32BE(h.sender >>> 0, 8);
  buf.writeUInt32BE(Math.floor(h.epoch / 4294967296), 12);
  buf.writeUInt32BE(h.epoch >>> 0, 16);
  buf.writeUInt32BE(h.seq >>> 0, 20);
}

/** Why a datagram is refused before authentication (a counter label each). */
export const WireDrop = {
  TOO_SHORT: 'too_short',
  BAD_MAGIC: 'bad_magic',
  BAD_VERSION: 'bad_version',
  BAD_LENGTH: 'bad_length',
  UNKNOWN_TYPE: 'unknown_type',
} as const;
export type WireDropReason = (typeof WireDrop)[keyof typeof WireDrop];

/**
 * Read the header of a datagram into `out`; returns null when it is a well-formed frame (length
 * matches, MAC room present) or the reason it is not. Does not authenticate.
 */
export function readHeader(buf: Buffer, out: Header): WireDropReason | null {
  if (buf.length < HEADER_BYTES + MAC_BYTES) return WireDrop.TOO_SHORT;
  if (buf.readUInt16BE(0) !== SYNC_MAGIC) return WireDrop.BAD_MAGIC;
  if (buf[2] !== SYNC_VERSION) return WireDrop.BAD_VERSION;
  out.type = buf[3];
  out.keyId = buf[4];
  out.flags = buf[5];
  out.payloadLength = buf.readUInt16BE(6);
  if (HEADER_BYTES + out.payloadLength + MAC_BYTES !== buf.length) return WireDrop.BAD_LENGTH;
  if (out.type < MsgType.UPDATE || out.type > MsgType.REPORT) return WireDrop.UNKNOWN_TYPE;
  out.sender = buf.readUInt32BE(8);
  out.epoch = buf.readUInt32BE(12) * 4294967296 + buf.readUInt32BE(16);
  out.seq = buf.readUInt32BE(20);
  return null;
}

export function newHeader(): Header {
  return { type: 0, keyId: 0, flags: 0, payloadLength: 0, sender: 0, epoch: 0, seq: 0 };
}

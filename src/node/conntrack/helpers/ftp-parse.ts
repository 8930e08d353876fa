/**
 * The FTP lines that announce a data connection, taken apart byte by byte (no strings on the way):
 *
 *   client: PORT h1,h2,h3,h4,p1,p2          (RFC 959, IPv4)
 *           EPRT |1|192.0.2.7|6275|         (RFC 2428; |2|2001:db8::7| for IPv6; any delimiter)
 *   server: 227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)   (the numbers from the first digit on,
 *                                                            as RFC 1123 4.1.2.6 tells clients)
 *           229 Entering Extended Passive Mode (|||6446|)   (RFC 2428: the control's address)
 *
 * A line is one command or reply without its CR LF. What is not one of these is NONE; one of them
 * that cannot be a valid announcement gives a reason (counted by the helper, no expectation).
 * The byte range of the address and port text is kept, for NAT to rewrite it.
 */
import { AddressError, parseAddress } from '../../packet/address.js';

export const FtpKind = {
  NONE: 0,
  /** PORT: the client will listen (active mode). */
  PORT: 1,
  /** EPRT: as PORT, IPv4 or IPv6. */
  EPRT: 2,
  /** 227 reply to PASV: the server will listen. */
  PASV: 3,
  /** 229 reply to EPSV: the server listens on the control connection's address. */
  EPSV: 4,
} as const;

/** Why an announcement was refused (metric label: ftpRefusalNames). */
export const FtpRefusal = {
  NONE: 0,
  /** A number has a non-digit, too many digits, or a byte above 255. */
  BAD_NUMBER: 1,
  /** Port 0, above 65535, or below 1024 (privileged: an FTP bounce to a well-known service). */
  BAD_PORT: 2,
  /** EPRT's address family is neither 1 nor 2, or its address does not parse. */
  BAD_ADDRESS: 3,
  /** Missing fields or delimiters. */
  SYNTAX: 4,
  /** A line longer than the helper keeps (set by the line reader, not here). */
  OVERLONG: 5,
  /** The address is not the sender's own (the announcing end's address on the control connection). */
  NOT_SENDER: 6,
  /** The address family differs from the control connection's. */
  FAMILY: 7,
  /** No room for another expectation (the table's limit). */
  EXPECT_LIMIT: 8,
  /** A segment came after a hole in the stream (a lost segment): its line could not be read. */
  STREAM_GAP: 9,
  /** NAT must rewrite the line, but it began in an earlier segment (already sent as it was). */
  SPLIT_REWRITE: 10,
  /** NAT must rewrite the line, and no port of the outside address is free. */
  NAT_PORT: 11,
  /** The rewritten packet could not be built (a fragment, or too large to send). */
  REWRITE_FAILED: 12,
} as const;
export const ftpRefusalNames = [
  'none', 'bad_number', 'bad_port', 'bad_address', 'syntax', 'overlong_line', 'not_sender', 'family', 'expect_limit', 'stream_gap',
  'split_rewrite', 'nat_port', 'rewrite_failed',
];

/** The announcement read from a line. One instance is reused. */
export class FtpAnnouncement {
  kind: number = FtpKind.NONE;
  /** 4 or 6; 0 for EPSV (the control connection's family and address). */
  family = 0;
  readonly addr = new Uint32Array(4);
  port = 0;
  /** Byte range [textStart, textEnd) of the address and port text within the line (for NAT). */
  textStart = 0;
  textEnd = 0;
}

const C0 = 0x30;
const C9 = 0x39;
const COMMA = 0x2c;
const SPACE = 0x20;
const LOWER = 0x20;
const LOWEST_PORT = 1024;

function isDigit(c: number): boolean {
  return c >= C0 && c <= C9;
}

/** Upper-case ASCII letters of line[off..off+4) equal `word` (4 upper-case letters). */
function word4(line: Uint8Array, off: number, end: number, w: string): boolean {
  if (off + 4 > end) return false;
  for (let i = 0; i < 4; i++) {
    const c = line[off + i];
    const u = c >= 0x61 && c <= 0x7a ? c - LOWER : c;
    if (u !== w.charCodeAt(i)) return false;
  }
  return true;
}

/**
 * Read line[off..end) (a line without CR LF) sent by the client (`fromClient`) or the server.
 * Returns FtpRefusal.NONE with out.kind set (NONE when the line announces nothing), or a reason.
 */
export function parseFtpLine(line: Uint8Array, off: number, end: number, fromClient: boolean, out: FtpAnnouncement): number {
  out.kind = FtpKind.NONE;
  out.family = 0;
  out.port = 0;
  if (fromClient) {
    // Commands are case-insensitive (RFC 959 5.3); a space follows the verb.
    if (end - off < 5 || line[off + 4] !== SPACE) return FtpRefusal.NONE;
    if (word4(line, off, end, 'PORT')) {
      out.kind = FtpKind.PORT;
      let p = off + 5;
      while (p < end && line[p] === SPACE) p++;
      return readNumbers(line, p, end, out);
    }
    if (word4(line, off, end, 'EPRT')) {
      out.kind = FtpKind.EPRT;
      let p = off + 5;
      while (p < end && line[p] === SPACE) p++;
      return readEprt(line, p, end, out);
    }
    return FtpRefusal.NONE;
  }
  if (end - off < 4 || line[off] !== 0x32 || line[off + 1] !== 0x32 || (line[off + 3] !== SPACE && line[off + 3] !== 0x2d)) return FtpRefusal.NONE;
  if (line[off + 2] === 0x37) {
    out.kind = FtpKind.PASV;
    let p = off + 4;
    while (p < end && !isDigit(line[p])) p++;
    if (p === end) return FtpRefusal.SYNTAX;
    return readNumbers(line, p, end, out);
  }
  if (line[off + 2] === 0x39) {
    out.kind = FtpKind.EPSV;
    let p = off + 4;
    while (p < end && line[p] !== 0x28) p++;
    if (p + 1 >= end) return FtpRefusal.SYNTAX;
    // (<d><d><d><port><d>): the address fields are empty, the control connection's address.
    const d = line[p + 1];
    if (d < 33 || d > 126 || p + 4 >= end || line[p + 2] !== d || line[p + 3] !== d) return FtpRefusal.SYNTAX;
    out.textStart = p + 4;
    const q = readPort(line, p + 4, end, d, out);
    if (q < 0) return -q;
    out.textEnd = q - 1;
    return FtpRefusal.NONE;
  }
  return FtpRefusal.NONE;
}

/** h1,h2,h3,h4,p1,p2 from line[p]: six decimal bytes. */
function readNumbers(line: Uint8Array, p: number, end: number, out: FtpAnnouncement): number {
  out.textStart = p;
  let addr = 0;
  let port = 0;
  for (let i = 0; i < 6; i++) {
    if (i > 0) {
      if (p >= end) return FtpRefusal.SYNTAX;
      if (line[p] !== COMMA) return FtpRefusal.BAD_NUMBER;
      p++;
    }
    let v = 0;
    let digits = 0;
    while (p < end && isDigit(line[p])) {
      v = v * 10 + (line[p] - C0);
      p++;
      if (++digits > 3) return FtpRefusal.BAD_NUMBER;
    }
    if (digits === 0) return p < end && line[p] !== COMMA ? FtpRefusal.BAD_NUMBER : FtpRefusal.SYNTAX;
    if (v > 255) return FtpRefusal.BAD_NUMBER;
    if (i < 4) addr = addr * 256 + v;
    else port = port * 256 + v;
  }
  out.textEnd = p;
  out.family = 4;
  out.addr[0] = addr >>> 0;
  out.addr[1] = out.addr[2] = out.addr[3] = 0;
  if (port < LOWEST_PORT) return FtpRefusal.BAD_PORT;
  out.port = port;
  return FtpRefusal.NONE;
}

/** <d><af><d><address><d><port><d> from line[p]. */
function readEprt(line: Uint8Array, p: number, end: number, out: FtpAnnouncement): number {
  if (p >= end) return FtpRefusal.SYNTAX;
  const d = line[p];
  if (d < 33 || d > 126 || isDigit(d)) return FtpRefusal.SYNTAX;
  p++;
  if (p + 2 > end || line[p + 1] !== d) return FtpRefusal.SYNTAX;
  const af = line[p];
  if (af !== 0x31 && af !== 0x32) return FtpRefusal.BAD_ADDRESS;
  p += 2;
  out.textStart = p;
  let q = p;
  while (q < end && line[q] !== d) q++;
  // The longest address text: 45 characters (an IPv6 address with an IPv4 tail).
  if (q >= end) return FtpRefusal.SYNTAX;
  if (q === p || q - p > 45) return FtpRefusal.BAD_ADDRESS;
  let text = '';
  for (let i = p; i < q; i++) text += String.fromCharCode(line[i]);
  try {
    const a = parseAddress(text);
    if (a.family !== (af === 0x31 ? 4 : 6)) return FtpRefusal.BAD_ADDRESS;
    out.family = a.family;
    out.addr.set(a.words);
  } catch (e) {
    if (e instanceof AddressError) return FtpRefusal.BAD_ADDRESS;
    throw e;
  }
  const r = readPort(line, q + 1, end, d, out);
  if (r < 0) return -r;
  out.textEnd = r - 1;
  return FtpRefusal.NONE;
}

/** A decimal port then the delimiter `d`: the position after the delimiter, or -reason. */
function readPort(line: Uint8Array, p: number, end: number, d: number, out: FtpAnnouncement): number {
  let v = 0;
  let digits = 0;
  while (p < end && isDigit(line[p])) {
    v = v * 10 + (line[p] - C0);
    p++;
    if (++digits > 5) return -FtpRefusal.BAD_NUMBER;
  }
  if (digits === 0) return -(p < end && line[p] !== d ? FtpRefusal.BAD_NUMBER : FtpRefusal.SYNTAX);
  if (p >= end || line[p] !== d) return -(p < end ? FtpRefusal.BAD_NUMBER : FtpRefusal.SYNTAX);
  if (v < LOWEST_PORT || v > 65535) return -FtpRefusal.BAD_PORT;
  out.port = v;
  return p + 1;
}

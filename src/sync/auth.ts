/**
 * Authentication of sync datagrams: HMAC-SHA256 over header and payload, truncated to 128 bits
 * (as RFC 4868 truncates HMAC-SHA-256 for IPsec), keyed by a key id so that keys can be rotated
 * without a pause: configure the new key on both nodes (accepted), then make it the sending key,
 * then remove the old one.
 */
import crypto, { createHash, createHmac } from 'node:crypto';
import { MAC_BYTES } from './wire.js';

export class SyncKeyError extends Error {
  readonly code = 'SYNC_KEY_INVALID';
  constructor(message: string) {
    super(message);
    this.name = 'SyncKeyError';
  }
}

/** Shortest key accepted: 16 bytes (128 bits). */
export const MIN_KEY_BYTES = 16;

export interface SyncKey {
  id: number;
  /** The secret: at least 16 bytes. */
  secret: Buffer;
}

/** SHA-256's block: HMAC pads the key to it (RFC 2104). */
const BLOCK = 64;
const DIGEST = 32;
/** The one-shot hash (Node >= 20.12): half the cost of an Hmac object per datagram, measured. */
const oneShot = (crypto as { hash?: (alg: string, data: Buffer, enc: 'buffer') => Buffer }).hash;

/** A key's HMAC pads: K xor ipad (64 bytes), and K xor opad followed by room for the inner digest. */
interface Pads {
  secret: Buffer;
  ipad: Buffer;
  opad: Buffer;
}

function padsOf(secret: Buffer): Pads {
  // RFC 2104: a key longer than the block is hashed first.
  const k = secret.length > BLOCK ? createHash('sha256').update(secret).digest() : secret;
  const ipad = Buffer.alloc(BLOCK, 0x36);
  const opad = Buffer.alloc(BLOCK + DIGEST, 0x5c);
  for (let i = 0; i < k.length; i++) {
    ipad[i] ^= k[i];
    opad[i] ^= k[i];
  }
  return { secret, ipad, opad };
}

export class Keyring {
  readonly #keys = new Map<number, Pads>();
  readonly sendId: number;
  /** ipad followed by the message: the inner hash's input in one buffer (grown as needed). */
  #scratch = Buffer.alloc(BLOCK + 2048);

  /** keys: every key accepted; sendId: the one this node signs with. */
  constructor(keys: SyncKey[], sendId: number) {
    for (const k of keys) {
      if (!Number.isInteger(k.id) || k.id < 0 || k.id > 255) throw new SyncKeyError(`sync key id ${k.id} is not an integer 0-255`);
      if (k.secret.length < MIN_KEY_BYTES) {
        throw new SyncKeyError(`sync key ${k.id} has ${k.secret.length} bytes; use at least ${MIN_KEY_BYTES} random bytes (e.g. \`openssl rand -hex 32\`)`);
      }
      if (this.#keys.has(k.id)) throw new SyncKeyError(`sync key id ${k.id} is given twice`);
      this.#keys.set(k.id, padsOf(k.secret));
    }
    if (!this.#keys.has(sendId)) throw new SyncKeyError(`the sending sync key id ${sendId} is not among the configured keys`);
    this.sendId = sendId;
  }

  /** HMAC-SHA256(key, buf[0..len)), the full 32 bytes. */
  #mac(p: Pads, buf: Buffer, len: number): Buffer {
    if (oneShot === undefined) return createHmac('sha256', p.secret).update(buf.subarray(0, len)).digest();
    if (this.#scratch.length < BLOCK + len) this.#scratch = Buffer.alloc(BLOCK + len);
    const sc = this.#scratch;
    p.ipad.copy(sc, 0);
    buf.copy(sc, BLOCK, 0, len);
    oneShot('sha256', sc.subarray(0, BLOCK + len), 'buffer').copy(p.opad, BLOCK);
    return oneShot('sha256', p.opad, 'buffer');
  }

  /** Sign buf[0..len) (header with the key id already written) into buf[len..len+16). */
  sign(buf: Buffer, len: number): void {
    this.#mac(this.#keys.get(this.sendId) as Pads, buf, len).copy(buf, len, 0, MAC_BYTES);
  }

  /** 'ok', or why the MAC at the end of buf does not verify. */
  verify(buf: Buffer, keyId: number): 'ok' | 'unknown_key' | 'bad_mac' {
    const p = this.#keys.get(keyId);
    if (p === undefined) return 'unknown_key';
    const len = buf.length - MAC_BYTES;
    const mac = this.#mac(p, buf, len);
    // Constant time, as timingSafeEqual, without two more views per datagram.
    let diff = 0;
    for (let i = 0; i < MAC_BYTES; i++) diff |= mac[i] ^ buf[len + i];
    return diff === 0 ? 'ok' : 'bad_mac';
  }
}

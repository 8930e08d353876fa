/**
 * Authentication of sync datagrams: HMAC-SHA256 over header and payload, truncated to 128 bits
 * (as RFC 4868 truncates HMAC-SHA-256 for IPsec), keyed by a key id so that keys can be rotated
 * without a pause: configure the new key on both nodes (accepted), then make it the sending key,
 * then remove the old one.
 */
import { createHmac } from 'node:crypto';
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

export class Keyring {
  readonly #keys = new Map<number, Buffer>();
  readonly sendId: number;

  /** keys: every key accepted; sendId: the one this node signs with. */
  constructor(keys: SyncKey[], sendId: number) {
    for (const k of keys) {
      if (!Number.isInteger(k.id) || k.id < 0 || k.id > 255) throw new SyncKeyError(`sync key id ${k.id} is not an integer 0-255`);
      if (k.secret.length < MIN_KEY_BYTES) {
        throw new SyncKeyError(`sync key ${k.id} has ${k.secret.length} bytes; use at least ${MIN_KEY_BYTES} random bytes (e.g. \`openssl rand -hex 32\`)`);
      }
      if (this.#keys.has(k.id)) throw new SyncKeyError(`sync key id ${k.id} is given twice`);
      this.#keys.set(k.id, k.secret);
    }
    if (!this.#keys.has(sendId)) throw new SyncKeyError(`the sending sync key id ${sendId} is not among the configured keys`);
    this.sendId = sendId;
  }

  /** Sign buf[0..len) (header with the key id already written) into buf[len..len+16). */
  sign(buf: Buffer, len: number): void {
    const mac = createHmac('sha256', this.#keys.get(this.sendId) as Buffer).update(buf.subarray(0, len)).digest();
    mac.copy(buf, len, 0, MAC_BYTES);
  }

  /** 'ok', or why the MAC at the end of buf does not verify. */
  verify(buf: Buffer, keyId: number): 'ok' | 'unknown_key' | 'bad_mac' {
    const key = this.#keys.get(keyId);
    if (key === undefined) return 'unknown_key';
    const len = buf.length - MAC_BYTES;
    const mac = createHmac('sha256', key).update(buf.subarray(0, len)).digest();
    // Constant time, as timingSafeEqual, without two more views per datagram.
    let diff = 0;
    for (let i = 0; i < MAC_BYTES; i++) diff |= mac[i] ^ buf[len + i];
    return diff === 0 ? 'ok' : 'bad_mac';
  }
}

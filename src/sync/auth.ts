/**
 * Authentication of sync datagrams: HMAC-SHA256 over header and payload, truncated to 128 bits
 * (as RFC 4868 truncates HMAC-SHA-256 for IPsec), keyed by a key id so that keys can be rotated
 * without a pause: configure the new key on both nodes (accepted), then make it the sending key,
 * then remove the old one.
 *
 * The MAC is computed by native/mac (OpenSSL's SHA-256 with each key's pads absorbed once): about
 * 1 us per 1.5 KB datagram, where node:crypto's one-shot hash costs ~1.3 us per call before
 * hashing a byte and an HMAC took ~6 us (0.17 us per entry of a bulk resync, on each side).
 */
import { loadAddon } from '../native.js';
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

/** native/mac/twinwall_mac.c */
interface MacAddon {
  /** The key's HMAC pads, absorbed (opaque). */
  key(secret: Buffer): ArrayBuffer;
  /** Write the 16-byte tag of buf[0..len) at buf[len..len+16). */
  sign(key: ArrayBuffer, buf: Buffer, len: number): void;
  /** Whether buf[len..len+16) is the tag of buf[0..len) (constant time). */
  verify(key: ArrayBuffer, buf: Buffer, len: number): boolean;
  /** The full 32-byte HMAC of buf[0..len). */
  digest(key: ArrayBuffer, buf: Buffer, len: number): Buffer;
  TAG_BYTES: number;
}

let addon: MacAddon | null = null;

function mac(): MacAddon {
  if (addon === null) {
    addon = loadAddon<MacAddon>('mac', 'twinwall_mac');
    if (addon.TAG_BYTES !== MAC_BYTES) throw new SyncKeyError(`native/mac makes ${addon.TAG_BYTES}-byte tags, the wire format ${MAC_BYTES}: rebuild it with bash scripts/setup.sh`);
  }
  return addon;
}

export class Keyring {
  readonly #keys = new Map<number, ArrayBuffer>();
  readonly #mac: MacAddon;
  readonly #send: ArrayBuffer;
  readonly sendId: number;

  /** keys: every key accepted; sendId: the one this node signs with. */
  constructor(keys: SyncKey[], sendId: number) {
    this.#mac = mac();
    for (const k of keys) {
      if (!Number.isInteger(k.id) || k.id < 0 || k.id > 255) throw new SyncKeyError(`sync key id ${k.id} is not an integer 0-255`);
      if (k.secret.length < MIN_KEY_BYTES) {
        throw new SyncKeyError(`sync key ${k.id} has ${k.secret.length} bytes; use at least ${MIN_KEY_BYTES} random bytes (e.g. \`openssl rand -hex 32\`)`);
      }
      if (this.#keys.has(k.id)) throw new SyncKeyError(`sync key id ${k.id} is given twice`);
      this.#keys.set(k.id, this.#mac.key(k.secret));
    }
    const send = this.#keys.get(sendId);
    if (send === undefined) throw new SyncKeyError(`the sending sync key id ${sendId} is not among the configured keys`);
    this.#send = send;
    this.sendId = sendId;
  }

  /** Sign buf[0..len) (header with the key id already written) into buf[len..len+16). */
  sign(buf: Buffer, len: number): void {
    this.#mac.sign(this.#send, buf, len);
  }

  /**
   * The sending key's absorbed pads (native/mac key()): for native code that signs on a thread of
   * its own (native/pacer, the master's periodic adverts). Not the secret, but as good as it.
   */
  get sendKeyState(): ArrayBuffer {
    return this.#send;
  }

  /** 'ok', or why the MAC at the end of buf does not verify. */
  verify(buf: Buffer, keyId: number): 'ok' | 'unknown_key' | 'bad_mac' {
    const k = this.#keys.get(keyId);
    if (k === undefined) return 'unknown_key';
    if (buf.length < MAC_BYTES) return 'bad_mac';
    return this.#mac.verify(k, buf, buf.length - MAC_BYTES) ? 'ok' : 'bad_mac';
  }

  /** HMAC-SHA256 of buf[0..len) with key `keyId`, all 32 bytes (tests compare it with node:crypto). */
  digest(keyId: number, buf: Buffer, len: number): Buffer {
    const k = this.#keys.get(keyId);
    if (k === undefined) throw new SyncKeyError(`no sync key with id ${keyId}`);
    return this.#mac.digest(k, buf, len);
  }
}

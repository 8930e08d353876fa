/**
 * The peer link: a TCP connection from the backup to the master's election port on its sync
 * address, held open for as long as both processes live, so that the backup learns of the
 * master's death the moment its kernel closes the socket, instead of 3 x interval + skew later.
 *
 * A process killed outright (SIGKILL, a crash, the OOM killer) sends no priority-0 advert, but
 * its kernel closes every socket it held: the FIN (or RST) reaches the backup within a
 * millisecond. At a 10 ms advert interval the master-down timer alone made a SIGKILL's outage
 * 36 ms at least; at 1 s, over 3 s. What the link cannot see (a machine that loses power, a
 * cut cable, a frozen process: no FIN is sent) the master-down timer still covers: the link only
 * ever makes a takeover sooner, never holds one back.
 *
 * Only a link both ends proved is trusted: each side sends a hello (its id, start time and a
 * random nonce), then a proof: HMAC-SHA256 with the sync keys over its id, start time and the
 * other's nonce (so a recorded proof is worth nothing). A link closed before both proofs, or one
 * the backup closed itself (the master changed, this node took over), says nothing.
 *
 *   hello (36 bytes): "TWPL" | version 1 | 0 0 0 | node id (32) | epoch (64, ms) | nonce (16)
 *   proof (52 bytes): "TWPP" | key id | 0 0 0 | node id (32) | epoch (64) | peer's nonce (16)
 *                     | HMAC-SHA256(key, the 36 bytes before), first 16 bytes
 *
 * Anything else on the link (bytes after the proof, a frame that does not parse) closes it,
 * counted; the master's side never closes a proved link itself, so its closing is its death.
 * Its kernel closes it only after tearing down the dead process's memory (tens of ms): with the
 * death watch (death-watch.ts) a small process holding the master's proved links shuts them down
 * at the start of the death instead.
 */
import { randomBytes } from 'node:crypto';
import { createServer, Socket, type Server } from 'node:net';
import type { Keyring } from '../sync/auth.js';
import type { DeathWatchLinks } from './death-watch.js';

const HELLO_MAGIC = 0x5457504c; // "TWPL"
const PROOF_MAGIC = 0x54575050; // "TWPP"
const VERSION = 1;
const HELLO_BYTES = 36;
const PROOF_BODY_BYTES = 36;
const PROOF_BYTES = PROOF_BODY_BYTES + 16;
/** A connection that has not proved itself in this long is closed. */
const HANDSHAKE_MS = 2000;
/** Between connection attempts to a master that refuses or cannot be reached. */
const RETRY_MS = 200;
/** Accepted connections at most (a pair needs one; the rest is someone else). */
const MAX_ACCEPTED = 8;

export interface PeerLinkOptions {
  nodeId: number;
  /** This process's start time (ms since 1970), as in the adverts. */
  epoch: number;
  keys: Keyring;
  /** This node's sync address and the election port: the master listens here. */
  address: string;
  port: number;
  /** The master this backup followed is gone: its process closed the proved link. */
  onGone(peer: { id: number; epoch: number }, why: string): void;
  /** Where the links this node accepts go once proved, to be shut down when this process dies. */
  deathWatch?: DeathWatchLinks;
}

export interface PeerLinkStats {
  /** Links proved, both directions. */
  proved: number;
  /** Connections closed for a bad hello or proof, a timeout, or bytes after the proof. */
  refused: Record<string, number>;
  /** Masters reported gone. */
  gone: number;
  /** Connection attempts that failed (refused, unreachable). */
  connectFailures: number;
}

/** The handshake of one connection, either side. */
class Handshake {
  readonly nonce = randomBytes(16);
  #in: Buffer = Buffer.alloc(0);
  peer: { id: number; epoch: number } | null = null;
  proved = false;

  constructor(readonly sock: Socket, readonly link: PeerLink) {}

  sendHello(): void {
    const b = Buffer.alloc(HELLO_BYTES);
    b.writeUInt32BE(HELLO_MAGIC, 0);
    b[4] = VERSION;
    b.writeUInt32BE(this.link.o.nodeId >>> 0, 8);
    writeEpoch(b, 12, this.link.o.epoch);
    this.nonce.copy(b, 20);
    this.sock.write(b);
  }

  /** Bytes from the peer: null while the handshake goes on or is done, or why it failed. */
  data(chunk: Buffer): string | null {
    if (this.proved) return 'bytes_after_proof';
    this.#in = this.#in.length === 0 ? chunk : Buffer.concat([this.#in, chunk]);
    if (this.peer === null) {
      if (this.#in.length < HELLO_BYTES) return null;
      const h = this.#in.subarray(0, HELLO_BYTES);
      if (h.readUInt32BE(0) !== HELLO_MAGIC) return 'bad_hello';
      if (h[4] !== VERSION) return 'bad_version';
      const id = h.readUInt32BE(8);
      if (id === 0 || id === this.link.o.nodeId) return 'bad_hello';
      this.peer = { id, epoch: readEpoch(h, 12) };
      this.#sendProof(h.subarray(20, 36));
      this.#in = this.#in.subarray(HELLO_BYTES);
    }
    if (this.#in.length < PROOF_BYTES) return null;
    if (this.#in.length > PROOF_BYTES) return 'bytes_after_proof';
    const p = this.#in;
    if (p.readUInt32BE(0) !== PROOF_MAGIC) return 'bad_proof';
    const auth = this.link.o.keys.verify(p, p[4]);
    if (auth !== 'ok') return auth;
    if (p.readUInt32BE(8) !== this.peer.id || readEpoch(p, 12) !== this.peer.epoch || !p.subarray(20, 36).equals(this.nonce)) return 'bad_proof';
    // Our proof went out when the peer's hello came: both ends have proved themselves now.
    this.proved = true;
    this.#in = Buffer.alloc(0);
    return null;
  }

  #sendProof(peerNonce: Buffer): void {
    const b = Buffer.alloc(PROOF_BYTES);
    b.writeUInt32BE(PROOF_MAGIC, 0);
    b[4] = this.link.o.keys.sendId;
    b.writeUInt32BE(this.link.o.nodeId >>> 0, 8);
    writeEpoch(b, 12, this.link.o.epoch);
    peerNonce.copy(b, 20);
    this.link.o.keys.sign(b, PROOF_BODY_BYTES);
    this.sock.write(b);
  }
}

function writeEpoch(b: Buffer, at: number, epoch: number): void {
  b.writeUInt32BE(Math.floor(epoch / 4294967296) >>> 0, at);
  b.writeUInt32BE(epoch >>> 0, at + 4);
}

function readEpoch(b: Buffer, at: number): number {
  return b.readUInt32BE(at) * 4294967296 + b.readUInt32BE(at + 4);
}

export class PeerLink {
  readonly stats: PeerLinkStats = { proved: 0, refused: {}, gone: 0, connectFailures: 0 };
  #server: Server | null = null;
  readonly #accepted = new Set<Socket>();
  /** The master followed: the link to it (when up or connecting) and when to try again. */
  #target: { id: number; epoch: number; address: string } | null = null;
  #out: Handshake | null = null;
  #retryAt = 0;
  #closed = false;

  constructor(readonly o: PeerLinkOptions) {}

  /** Listen on the sync address (a master's side); resolves once listening. */
  async listen(): Promise<void> {
    const server = createServer({ noDelay: true }, (sock) => this.#accept(sock));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: this.o.address, port: this.o.port, exclusive: true }, () => {
        server.removeListener('error', reject);
        resolve();
      });
    });
    server.on('error', () => this.#refuse('listen_error'));
    this.#server = server;
  }

  /**
   * The master this node follows as BACKUP (null: none, or this node is not BACKUP). Called on
   * every advert: connects when there is no link to that master yet (at most every RETRY_MS),
   * and drops a link to a master no longer followed without reporting it gone.
   */
  follow(master: { id: number; epoch: number; address: string } | null): void {
    if (this.#closed) return;
    const t = this.#target;
    if (master === null || t === null || t.id !== master.id || t.epoch !== master.epoch || t.address !== master.address) {
      this.#drop();
      this.#target = master === null ? null : { ...master };
      this.#retryAt = 0;
    }
    if (this.#target === null || this.#out !== null || performance.now() < this.#retryAt) return;
    this.#connect(this.#target);
  }

  /** The link to the followed master is proved (for status and tests). */
  get up(): boolean {
    return this.#out !== null && this.#out.proved;
  }

  close(): void {
    this.#closed = true;
    this.#drop();
    for (const s of this.#accepted) s.destroy();
    this.#accepted.clear();
    this.#server?.close();
    this.#server = null;
  }

  #connect(target: { id: number; epoch: number; address: string }): void {
    const sock = new Socket();
    const hs = new Handshake(sock, this);
    this.#out = hs;
    const timer = setTimeout(() => {
      if (!hs.proved) this.#fail(hs, 'handshake_timeout');
    }, HANDSHAKE_MS);
    sock.setNoDelay(true);
    sock.on('connect', () => hs.sendHello());
    sock.on('data', (chunk: Buffer) => {
      const bad = hs.data(chunk) ?? (hs.peer !== null && (hs.peer.id !== target.id || hs.peer.epoch !== target.epoch) ? 'not_the_master' : null);
      if (bad !== null) return this.#fail(hs, bad);
      if (hs.proved && this.#out === hs) this.stats.proved++;
    });
    // 'close' follows 'end' and 'error' alike: the one place that decides.
    sock.on('error', () => undefined);
    sock.on('close', () => {
      clearTimeout(timer);
      if (this.#out !== hs) return;
      this.#out = null;
      this.#retryAt = performance.now() + RETRY_MS;
      if (!hs.proved) {
        this.stats.connectFailures++;
        return;
      }
      this.stats.gone++;
      this.o.onGone({ id: target.id, epoch: target.epoch }, 'its peer link closed');
    });
    sock.connect({ host: target.address, port: this.o.port, localAddress: this.o.address });
  }

  #accept(sock: Socket): void {
    if (this.#closed || this.#accepted.size >= MAX_ACCEPTED) {
      this.#refuse('too_many');
      sock.destroy();
      return;
    }
    this.#accepted.add(sock);
    const hs = new Handshake(sock, this);
    const timer = setTimeout(() => {
      if (!hs.proved) {
        this.#refuse('handshake_timeout');
        sock.destroy();
      }
    }, HANDSHAKE_MS);
    sock.setNoDelay(true);
    hs.sendHello();
    sock.on('data', (chunk: Buffer) => {
      const bad = hs.data(chunk);
      if (bad !== null) {
        this.#refuse(bad);
        sock.destroy();
      } else if (hs.proved) {
        this.stats.proved++;
        this.o.deathWatch?.add(sock);
      }
    });
    sock.on('error', () => undefined);
    sock.on('close', () => {
      clearTimeout(timer);
      this.#accepted.delete(sock);
      this.o.deathWatch?.release(sock);
    });
  }

  /** A bad link: counted and closed; never reported as the master gone. */
  #fail(hs: Handshake, why: string): void {
    this.#refuse(why);
    if (this.#out === hs) {
      this.#out = null;
      this.#retryAt = performance.now() + RETRY_MS;
    }
    hs.sock.destroy();
  }

  /** Close the link to the followed master ourselves: not a death. */
  #drop(): void {
    const hs = this.#out;
    this.#out = null;
    hs?.sock.destroy();
  }

  #refuse(why: string): void {
    this.stats.refused[why] = (this.stats.refused[why] ?? 0) + 1;
  }
}

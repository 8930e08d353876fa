/**
 * The death watch: a master killed outright (SIGKILL, a crash, the OOM killer) shuts its peer
 * links down at once, instead of when its kernel gets to closing its sockets.
 *
 * The peer link (peer-link.ts) tells the backup that its master died when the master's kernel
 * closes the link. But a dying process's sockets are closed only after its memory is torn down
 * (do_exit runs exit_mm before exit_files): measured 8-9 ms for a 10 MB process, 22-24 ms at
 * 100 MB, 40-60 ms at 300 MB, ~100 ms at 1 GB, all of it outage at a 10 ms advert interval.
 *
 * So a thread of the daemon holds a robust, process-shared mutex (native/deathwatch), and a small
 * program started at the daemon's start (twinwall-deathwatch, a few hundred KB) waits on it and
 * holds a dup of every proved link this node accepted as master. When a thread dies holding a
 * robust mutex, the kernel marks it OWNER_DIED and wakes the waiter at the start of that
 * thread's exit, before any memory goes: the watcher shuts the links down (FIN to the backup)
 * while the dead daemon is still being taken apart. A planned stop ends the same way, after the
 * master has stepped down. What a kill of the whole group (docker kill) takes with it: the
 * watcher too, and then the link closes as it did without it.
 *
 * DeathWatch (main thread): arms the mutex and starts the program. DeathWatchLinks (any thread,
 * e.g. the election's worker, with the socket number it was given): adds and releases links.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { Socket } from 'node:net';
import { loadAddon, nativePath, NativeAddonError, socketFd } from '../native.js';

interface DeathWatchAddon {
  arm(): { memfd: number; sock: number; peerSock: number };
  add(sock: number, fd: number, id: number): void;
  release(sock: number, id: number): void;
  closeFd(fd: number): void;
}

let addon: DeathWatchAddon | null = null;
const native = (): DeathWatchAddon => (addon ??= loadAddon<DeathWatchAddon>('deathwatch', 'twinwall_deathwatch'));

export class DeathWatch {
  /** This side of the pair: give it to DeathWatchLinks (in whichever thread holds the links). */
  readonly sock: number;
  readonly child: ChildProcess;
  /** The watcher ended (it should not before the daemon: then links close as without it). */
  exited: { code: number | null; signal: string | null } | null = null;

  private constructor(sock: number, child: ChildProcess) {
    this.sock = sock;
    this.child = child;
  }

  /**
   * Arm (once per process) and start the watcher, its stderr to ours. `onExit` hears of a watcher
   * that ended early (logged by the caller).
   */
  static start(onExit: (code: number | null, signal: string | null) => void): DeathWatch {
    const bin = nativePath('deathwatch', 'twinwall-deathwatch');
    if (!existsSync(bin)) throw new NativeAddonError(`${bin} is not built: run bash scripts/setup.sh (it compiles native/deathwatch)`);
    const n = native();
    const { memfd, sock, peerSock } = n.arm();
    let child: ChildProcess;
    try {
      child = spawn(bin, [], { stdio: ['ignore', 'ignore', 'inherit', memfd, peerSock] });
    } finally {
      n.closeFd(memfd);
      n.closeFd(peerSock);
    }
    const w = new DeathWatch(sock, child);
    child.on('exit', (code, signal) => {
      w.exited = { code, signal };
      onExit(code, signal);
    });
    child.on('error', (e) => {
      w.exited = { code: null, signal: null };
      onExit(null, e.message);
    });
    // The daemon's exit must not wait for it.
    child.unref();
    return w;
  }
}

export class DeathWatchLinks {
  #nextId = 1;
  readonly #ids = new WeakMap<Socket, number>();
  /** Links handed to the watcher, and failures to (a link then closes as without it). */
  readonly stats = { added: 0, released: 0, failed: 0, lastError: '' };

  constructor(readonly sock: number) {
    native();
  }

  /** The watcher holds this proved link from now on, until release(). */
  add(s: Socket): void {
    const fd = socketFd(s);
    if (fd < 0) return this.#fail(new Error('the socket has no descriptor'));
    const id = this.#nextId++;
    try {
      native().add(this.sock, fd, id);
    } catch (e) {
      return this.#fail(e as Error);
    }
    this.#ids.set(s, id);
    this.stats.added++;
  }

  /** The link closed on our side: the watcher shuts its dup down (the FIN goes then) and closes it. */
  release(s: Socket): void {
    const id = this.#ids.get(s);
    if (id === undefined) return;
    this.#ids.delete(s);
    try {
      native().release(this.sock, id);
      this.stats.released++;
    } catch (e) {
      this.#fail(e as Error);
    }
  }

  #fail(e: Error): void {
    this.stats.failed++;
    this.stats.lastError = e.message;
  }
}

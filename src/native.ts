/**
 * Where twinwall's native addons are and how they load (native/<dir>/build/<name>.node, built by
 * scripts/build-native.sh). Shared by the NFQUEUE binding (src/node/dataplane/binding.ts), the
 * sync link's batched I/O (src/sync/udp-batch.ts), the MAC (src/sync/auth.ts), the death watch
 * (src/failover/death-watch.ts) and the conntrack table's huge pages (src/node/conntrack/huge-pages.ts).
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export class NativeAddonError extends Error {
  readonly code = 'NATIVE_ADDON';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'NativeAddonError';
  }
}

/** A built file's path under the project root (from src/ or dist/src/): native/<dir>/build/<file>. */
export function nativePath(dir: string, file: string): string {
  const here = import.meta.url;
  return fileURLToPath(new URL(`${here.includes('/dist/') ? '../../' : '../'}native/${dir}/build/${file}`, here));
}

/** The addon's file path under the project root (from src/ or dist/src/). */
export function addonPath(dir: string, name: string): string {
  return nativePath(dir, `${name}.node`);
}

/**
 * The libuv handle under a node socket (dgram or net): internal, present on Linux in the Node
 * versions this runs on; null where it is not there (closed, not bound, another runtime).
 */
export function socketHandle(sock: object): ({ fd?: unknown } & Record<string, unknown>) | null {
  // A dgram socket keeps its handle in its state (lib/internal/dgram.js's 'state symbol'); its
  // `_handle` getter is deprecated (DEP0112, a warning in the daemon's log). A net socket's
  // `_handle` is a plain property.
  for (const k of Object.getOwnPropertySymbols(sock)) {
    if (k.description !== 'state symbol') continue;
    const state = (sock as Record<symbol, { handle?: unknown } | undefined>)[k];
    if (state !== undefined && 'handle' in state) return (state.handle as ({ fd?: unknown } & Record<string, unknown>) | null) ?? null;
  }
  return (sock as { _handle?: ({ fd?: unknown } & Record<string, unknown>) | null })._handle ?? null;
}

/** The descriptor under a node socket (see socketHandle); -1 where there is none. The addons work on dups of it. */
export function socketFd(sock: object): number {
  const h = socketHandle(sock);
  return h && typeof h.fd === 'number' && h.fd >= 0 ? h.fd : -1;
}

/** Load an addon; throws NativeAddonError saying how to build it. */
export function loadAddon<T>(dir: string, name: string): T {
  const path = addonPath(dir, name);
  if (!existsSync(path)) {
    throw new NativeAddonError(`the native addon ${path} is not built: run bash scripts/setup.sh (it compiles native/${dir} with gcc and the Node headers)`);
  }
  try {
    return createRequire(import.meta.url)(path) as T;
  } catch (e) {
    throw new NativeAddonError(`the native addon ${path} did not load (${(e as Error).message}): rebuild it with bash scripts/setup.sh`, { cause: e });
  }
}

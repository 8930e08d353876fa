/**
 * Where twinwall's native addons are and how they load (native/<dir>/build/<name>.node, built by
 * scripts/build-native.sh). Shared by the NFQUEUE binding (src/node/dataplane/binding.ts) and the
 * sync link's batched receiver (src/sync/udp-batch.ts).
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

/** The addon's file path under the project root (from src/ or dist/src/). */
export function addonPath(dir: string, name: string): string {
  const here = import.meta.url;
  return fileURLToPath(new URL(`${here.includes('/dist/') ? '../../' : '../'}native/${dir}/build/${name}.node`, here));
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

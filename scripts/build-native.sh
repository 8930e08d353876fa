#!/usr/bin/env bash
# Builds twinwall's native addons with gcc against the Node headers of the node on PATH, each when
# its built file is missing or older than its source: native/nfqueue (the NFQUEUE binding),
# native/udp (batched receiving on the sync socket), native/mac (HMAC-SHA256 of sync datagrams
# and adverts, on the OpenSSL inside node), native/pacer (the master's adverts sent on a thread of
# their own) and native/deathwatch (the addon and the small program
# that shut a dead master's peer links down at once). Called by scripts/setup.sh; no node-gyp, no download:
# Debian's nodejs ships the headers (/usr/include/node, with openssl/).
set -euo pipefail
cd "$(dirname "$0")/.."

node_bin=$(readlink -f "$(command -v node)")
inc=""
for d in "$(dirname "$(dirname "$node_bin")")/include/node" /usr/include/node /usr/local/include/node; do
  if [ -f "$d/node_api.h" ] && [ -f "$d/uv.h" ]; then inc=$d; break; fi
done

build() { # build SRC OUT [exe]: an addon, or with "exe" a program
  local src=$1 out=$2 kind=${3:-addon}
  local newest
  newest=$(ls -t "$src" "$0" native/common/*.h "$(dirname "$src")"/*.h 2>/dev/null | head -1 || true)
  if [ -f "$out" ] && [ "$out" -nt "$newest" ]; then
    return 0
  fi
  if [ -z "$inc" ]; then
    echo "build-native: node_api.h and uv.h not found (looked beside $node_bin and in /usr/include/node): install Debian's nodejs (it ships the headers) or your Node's include/ folder" >&2
    exit 1
  fi
  if ! command -v gcc >/dev/null 2>&1; then
    echo "build-native: gcc is missing: apt-get install gcc (scripts/setup.sh installs it)" >&2
    exit 1
  fi
  mkdir -p "$(dirname "$out")"
  if [ "$kind" = exe ]; then
    gcc -O2 -g -Wall -Wextra -std=gnu11 -pthread -o "$out.tmp" "$src"
  else
    gcc -O2 -g -Wall -Wextra -std=gnu11 -shared -fPIC -fvisibility=hidden -pthread -I"$inc" -o "$out.tmp" "$src"
  fi
  mv "$out.tmp" "$out"
  echo "build-native: built $out"
}

build native/nfqueue/twinwall_nfq.c native/nfqueue/build/twinwall_nfq.node
build native/udp/twinwall_udp.c native/udp/build/twinwall_udp.node
build native/mac/twinwall_mac.c native/mac/build/twinwall_mac.node
build native/pacer/twinwall_pacer.c native/pacer/build/twinwall_pacer.node
build native/mem/twinwall_mem.c native/mem/build/twinwall_mem.node
build native/deathwatch/twinwall_deathwatch.c native/deathwatch/build/twinwall_deathwatch.node
build native/deathwatch/deathwatch.c native/deathwatch/build/twinwall-deathwatch exe

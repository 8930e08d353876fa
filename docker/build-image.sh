#!/usr/bin/env bash
# Builds the images of the compose drill (docker-compose.yml) without a container registry, as
# root on Debian 12, idempotently:
#   1. installs docker.io, debootstrap and docker-compose (Debian's packages) when missing;
#   2. starts dockerd when none answers (overlay2, else vfs; log in /var/log/twinwall-dockerd.log,
#      pid in /run/twinwall-dockerd.pid; it keeps running for the next build and drill), with
#      --iptables=false --ip-forward=false: the host's iptables and ip_forward stay as they were
#      (new network namespaces inherit ip_forward from the host, the namespace lab's among them);
#      the drill's containers only talk within their bridges;
#   3. the base image twinwall-base:<hash of the package list>: debootstrap (bookworm, minbase,
#      the packages the daemon and the drill agents need at run time) then `docker import`;
#      skipped when that tag exists;
#   4. the image twinwall:compose on top: this machine's Node runtime (`command -v node`), the
#      compiled project (dist/src), its production node_modules, package.json and the drill agents.
# Usage: docker/build-image.sh [--no-compile]   (--no-compile: dist/ is already built)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
say() { echo "docker/build-image: $*"; }
die() { echo "docker/build-image: $*" >&2; exit 1; }
started=$(date +%s)

[ "$(id -u)" = 0 ] || die "needs root (installs packages, runs dockerd, debootstrap): run it as root"

# --- 1. packages -----------------------------------------------------------------------------
HOST_PACKAGES=(docker.io debootstrap docker-compose)
missing=()
for p in "${HOST_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 "${missing[@]}" >/dev/null
fi
# The legacy builder: the daemon is Debian's 20.10 and a newer docker CLI on PATH may lack buildx.
export DOCKER_BUILDKIT=0

# --- 2. dockerd ------------------------------------------------------------------------------
dockerd_log=/var/log/twinwall-dockerd.log
start_dockerd() { # $1: storage driver; 0 when the daemon answers within 30 s
  say "starting dockerd --storage-driver $1 --iptables=false --ip-forward=false (log: $dockerd_log)"
  setsid dockerd --storage-driver "$1" --iptables=false --ip-forward=false --pidfile /run/twinwall-dockerd.pid </dev/null >>"$dockerd_log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then return 0; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  return 1
}
if docker info >/dev/null 2>&1; then
  say "dockerd is running ($(docker info --format '{{.ServerVersion}}, storage {{.Driver}}'))"
else
  start_dockerd overlay2 || start_dockerd vfs ||
    die "dockerd did not start with overlay2 nor vfs; see the end of $dockerd_log"
  say "dockerd is up ($(docker info --format '{{.ServerVersion}}, storage {{.Driver}}'))"
fi

# --- 3. base image ---------------------------------------------------------------------------
# What the daemon runs at run time: ip (virtual addresses, routes), iptables (the NFQUEUE rules),
# arping (gratuitous ARP), libstdc++6 (node); python3
# for the drill agents, ping for checks, procps for ps/pkill in a debug shell.
BASE_PACKAGES=(iproute2 iptables iputils-arping iputils-ping libstdc++6 python3 procps)
hash=$(printf '%s\n' bookworm minbase "${BASE_PACKAGES[@]}" | sha256sum | cut -c1-12)
base=twinwall-base:$hash
if docker image inspect "$base" >/dev/null 2>&1; then
  say "base image $base exists (debootstrap skipped)"
else
  rootfs=$(mktemp -d /var/tmp/twinwall-rootfs.XXXXXX)
  trap 'rm -rf "$rootfs"' EXIT
  include=$(IFS=,; echo "${BASE_PACKAGES[*]}")
  say "debootstrap bookworm (minbase + $include) into $rootfs (about a minute)"
  debootstrap --variant=minbase --include="$include" bookworm "$rootfs" http://deb.debian.org/debian >"$rootfs.log" 2>&1 ||
    die "debootstrap failed; its log: $rootfs.log"
  rm -f "$rootfs.log"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/*
  say "docker import -> $base ($(du -sh "$rootfs" | cut -f1))"
  tar -C "$rootfs" -c . | docker import -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - "$base" >/dev/null
  rm -rf "$rootfs"
  trap - EXIT
fi

# --- 4. twinwall image -----------------------------------------------------------------------
if [ "${1:-}" != --no-compile ]; then
  say "compiling the project (tsc)"
  npx tsc -p tsconfig.json >/dev/null || say "tsc reported errors (it emitted anyway); going on with dist/"
fi
[ -f dist/src/cli/main.js ] || die "dist/src/cli/main.js is missing: run npx tsc -p tsconfig.json first"
node_bin=$(command -v node) || die "no node on PATH: the image takes this machine's Node runtime"
node_bin=$(readlink -f "$node_bin")
ctx=$(mktemp -d /var/tmp/twinwall-image.XXXXXX)
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/app/test/lab/agents" "$ctx/app/dist"
cp "$node_bin" "$ctx/node"
cp -r dist/src "$ctx/app/dist/src"
cp package.json "$ctx/app/"
cp test/lab/agents/drill-client.py test/lab/agents/drill-server.py "$ctx/app/test/lab/agents/"
cp docker/entrypoint.sh docker/Dockerfile "$ctx/"
# Production dependencies only (npm ls lists their folders); the dev tools stay out.
npm ls --omit=dev --all --parseable 2>/dev/null | tail -n +2 | sed "s|^$root/||" | while read -r dir; do
  mkdir -p "$ctx/app/$(dirname "$dir")"
  cp -r "$dir" "$ctx/app/$dir"
done
# twinwall's native addons (NFQUEUE binding, sync I/O, MAC, advert pacer, memory advice, death watch) and the
# watcher program, where dist/src/native.js looks for them.
for addon in nfqueue/build/twinwall_nfq.node udp/build/twinwall_udp.node mac/build/twinwall_mac.node \
  pacer/build/twinwall_pacer.node mem/build/twinwall_mem.node deathwatch/build/twinwall_deathwatch.node deathwatch/build/twinwall-deathwatch; do
  [ -f "native/$addon" ] || die "native/$addon is missing: run bash scripts/setup.sh first"
  mkdir -p "$ctx/app/native/$(dirname "$addon")"
  cp "native/$addon" "$ctx/app/native/$addon"
done
say "docker build -> twinwall:compose (node $("$node_bin" --version) from $node_bin, context $(du -sh "$ctx" | cut -f1))"
docker build --build-arg "BASE=$base" -t twinwall:compose "$ctx"
say "done in $(( $(date +%s) - started )) s: images $base, twinwall:compose"

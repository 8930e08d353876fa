#!/usr/bin/env bash
# Installs what twinwall needs on a Debian 12 machine, idempotently: Debian packages (apt-get) and
# npm dependencies. Called by `npm start` and `npm test` (prestart / pretest), and by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the project uses: iproute2, iptables and python3 for the lab tests (namespaces,
# kernel conntrack as the reference, raw-socket agents); gcc and libc6-dev for twinwall's NFQUEUE
# addon (native/nfqueue, built by scripts/build-native.sh against the Node headers that Debian's
# nodejs ships); iputils-ping, iperf3 and curl for the
# data plane lab (test/lab, bench/dataplane, the lab demo); conntrackd and conntrack for the rival
# side of the state-sync benchmark (bench/sync/conntrackd.ts); iputils-arping for the gratuitous ARP
# that announces virtual addresses after a takeover (src/failover/vip.ts); prometheus for promtool
# (deploy/prometheus, checked by test/deploy) and a real Prometheus scraping the lab.
# keepalived: the rival of the failover benchmark (bench/failover: VRRPv3 + conntrackd on kernel conntrack).
# vsftpd and tftpd-hpa: the servers behind the pair in the connection helpers' lab tests (test/lab/helpers.test.ts).
DEB_PACKAGES=(iproute2 iptables python3 gcc libc6-dev iputils-ping iperf3 curl conntrackd conntrack iputils-arping prometheus keepalived vsftpd tftpd-hpa)

need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "setup: installing Debian packages needs root: run as root (or with sudo)" >&2
    exit 1
  fi
}

if ! command -v node >/dev/null 2>&1; then
  need_root
  apt-get update -qq && apt-get install -y -qq nodejs npm
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
  echo "setup: twinwall needs Node.js 20 or newer; this machine has $(node --version)" >&2
  exit 1
fi

missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  need_root
  echo "setup: installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

# npm dependencies: reinstall when the lock file changed since the last install.
stamp=node_modules/.twinwall-installed
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ]; then
  npm ci --no-audit --no-fund
  touch "$stamp"
fi

# twinwall's native addon (the NFQUEUE binding): rebuilt when missing or older than its source.
bash scripts/build-native.sh

#!/usr/bin/env bash
# The namespace lab by hand: `scripts/lab.sh up` builds client, fw1, fw2, server and the switch
# namespace (see test/lab/topology.ts) and leaves them standing; `scripts/lab.sh down` removes them.
# Needs root. Compiles first, so the lab is the same code the tests and the demo use.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  up|down) ;;
  *) echo "usage: scripts/lab.sh up|down" >&2; exit 2 ;;
esac
if [ "$(id -u)" != 0 ]; then
  echo "lab: network namespaces need root: run as root (or with sudo)" >&2
  exit 1
fi
# tsc exits non-zero on type errors elsewhere in the tree but still emits; the lab's own errors show below.
npx tsc -p tsconfig.json >/dev/null 2>&1 || true
exec node dist/test/lab/lab-cli.js "$1"

#!/usr/bin/env bash
# `npm run demo [-- --workload memwriter --rate 100 --rtt 50 --vms 1 --memory 256]`: sets up what is
# missing (hack/setup.sh is idempotent), then runs the two-cluster WAN live migration demo on Node 24.
# Needs root (network namespaces, TUN devices for the WAN emulator and WireGuard).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bash hack/setup.sh
export CLOUDNET_CACHE="${CLOUDNET_CACHE:-$(readlink -f "$root/.cache")}"
source "$root/hack/qemu-env.sh"
# The components' JSON logs would drown the progress lines; warnings and errors still show.
export LOG_LEVEL="${LOG_LEVEL:-warn}"
exec "$root/node_modules/.bin/node" hack/demo.ts "$@"

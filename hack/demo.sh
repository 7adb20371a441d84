#!/usr/bin/env bash
# `npm run demo [-- --workload memwriter --rate 100 --rtt 50 --vms 1 --memory 256]`: sets up what is
# missing (hack/setup.sh is idempotent), then runs the two-cluster WAN live migration demo on Node 24.
# Needs root (network namespaces, TUN devices for the WAN emulator and WireGuard).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bash hack/setup.sh
export CLOUDNET_CACHE="${CLOUDNET_CACHE:-$(readlink -f "$root/.cache")}"
# The test bed's QEMU: bookworm-backports' QEMU 10 fetched by setup.sh (CLOUDNET_QEMU_ROOT= empty
# means the system's 7.2). QEMU >= 9.1 has no block migration, so guests' disks travel by NBD
# mirror, as in KubeVirt.
export CLOUDNET_QEMU_ROOT="${CLOUDNET_QEMU_ROOT-$(bash hack/fetch-qemu.sh 2>/dev/null)}"
if [[ -n $CLOUDNET_QEMU_ROOT ]]; then export CLOUDNET_DISK_TRANSPORT="${CLOUDNET_DISK_TRANSPORT:-nbd}"; fi
# The components' JSON logs would drown the progress lines; warnings and errors still show.
export LOG_LEVEL="${LOG_LEVEL:-warn}"
exec "$root/node_modules/.bin/node" hack/demo.ts "$@"

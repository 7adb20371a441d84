# Sourced by hack/test.sh and hack/demo.sh after hack/setup.sh: the test bed's QEMU is
# bookworm-backports' QEMU 10 that setup fetched into the cache (CLOUDNET_QEMU_ROOT= empty means the
# system's 7.2). QEMU >= 9.1 has no block migration, so guests' disks travel by NBD mirror, as in
# KubeVirt.
# $root is the caller's (hack/test.sh, hack/demo.sh); sourced from a shell, it is this checkout.
root="${root:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
export CLOUDNET_QEMU_ROOT="${CLOUDNET_QEMU_ROOT-$(bash "$root/hack/fetch-qemu.sh" 2>/dev/null)}"
if [[ -n $CLOUDNET_QEMU_ROOT ]]; then export CLOUDNET_DISK_TRANSPORT="${CLOUDNET_DISK_TRANSPORT:-nbd}"; fi

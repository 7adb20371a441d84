#!/usr/bin/env bash
# One idempotent setup for a fresh machine: Debian packages, npm dependencies (which bring Node 24),
# Go-built kube-apiserver/etcd/kubectl/helm, and the QEMU guest image. Everything lands in caches,
# so the warm path is a few seconds.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
t0=$(date +%s)

# Build outputs live in a per-machine cache shared by every checkout (CI clones afresh each run);
# <repo>/.cache points at it so that scripts and tests run by hand find the same files.
export CLOUDNET_CACHE="${CLOUDNET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cloudnet}"
mkdir -p "$CLOUDNET_CACHE"
if [[ ! -e .cache ]]; then ln -s "$CLOUDNET_CACHE" .cache; fi

APT_PACKAGES=(qemu-system-x86 qemu-utils busybox-static cpio iproute2 wireguard-go wireguard-tools
  openssl lua5.4 socat zstd procps util-linux kmod iputils-ping libsqlite3-dev gcc libc6-dev e2fsprogs nftables)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm: node_modules/.bin/node is Node 24 (the `node` devDependency); npm scripts put it first on PATH.
lockhash=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ ! -x node_modules/.bin/node || "$(cat node_modules/.lockhash 2>/dev/null)" != "$lockhash" ]]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lockhash" > node_modules/.lockhash
fi

bash hack/build-k8s-binaries.sh
[[ -x hack/build-guest.sh ]] && bash hack/build-guest.sh
[[ -x hack/build-wanem.sh ]] && bash hack/build-wanem.sh
# QEMU 10 from bookworm-backports into the cache (no system install): Debian 12's QEMU 7.2 loses
# guest writes in TCG migrations (README, "Lost pages"). The system QEMU stays for 7.2-only tests.
if [[ -x hack/fetch-qemu.sh ]] && ! bash hack/fetch-qemu.sh >/dev/null; then
  echo "setup: could not fetch QEMU 10 from bookworm-backports; the test bed falls back to the system's QEMU 7.2" >&2
fi
echo "setup: done in $(( $(date +%s) - t0 ))s"

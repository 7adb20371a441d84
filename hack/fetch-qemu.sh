#!/usr/bin/env bash
# Puts bookworm-backports' QEMU (10.x) into ${CLOUDNET_CACHE}/qemu-bpo/<version>/ without touching
# the system: a private apt list of bookworm-backports, `apt-get download` of the packages, and
# `dpkg-deb -x`. It links against Debian 12's own libraries. Use it with
#   CLOUDNET_QEMU_ROOT="$(bash hack/fetch-qemu.sh)" npm run demo
# Why: QEMU 7.2 (Debian 12's) loses guest writes in TCG live migrations (fixed in QEMU 9.0,
# commit 03bfc2188f); the test bed restores such pages (src/qemu/memory-check.ts), QEMU 10 does not
# lose them. QEMU 10 has no `block` migration capability: guests with disks need the stand-in's
# NBD disk transport there.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${CLOUDNET_CACHE:-$root/.cache}/qemu-bpo"
mkdir -p "$cache/apt/lists/partial"
exec 9>"$cache/.lock"
flock 9
echo "deb http://deb.debian.org/debian bookworm-backports main" > "$cache/sources.list"
apt_opts=(-o "Dir::Etc::SourceList=$cache/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$cache/apt/lists" -o APT::Sandbox::User=root)
if [[ ! -f $cache/apt/lists/stamp || -n $(find "$cache/apt/lists/stamp" -mmin +1440) ]]; then
  apt-get -qq "${apt_opts[@]}" update >&2
  touch "$cache/apt/lists/stamp"
fi
version="$(apt-cache "${apt_opts[@]}" policy qemu-system-x86 | awk '/Candidate:/{print $2}')"
[[ -n $version && $version != "(none)" ]] || { echo "fetch-qemu: bookworm-backports has no qemu-system-x86" >&2; exit 1; }
dir="$cache/${version//[:~+]/_}"
if [[ ! -x $dir/usr/bin/qemu-system-x86_64 ]]; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && apt-get -qq "${apt_opts[@]}" download qemu-system-x86 qemu-system-common qemu-system-data seabios >&2)
  mkdir -p "$dir.tmp"
  for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$dir.tmp"; done
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
fi
"$dir/usr/bin/qemu-system-x86_64" --version >&2
echo "$dir"

#!/usr/bin/env bash
# Builds the CloudNet QEMU guest into ${CLOUDNET_CACHE:-.cache}/guest/:
#   vmlinuz       Debian's kernel (the version linux-image-amd64 depends on), taken out of the
#                 .deb with dpkg-deb -x: nothing is installed into the host system
#   initrd.cpio.gz busybox-static + guest/init + the workloads from guest/src (static, -O2) +
#                 the virtio modules the kernel does not build in
#   bin/          the same static workload binaries, for host-side reference runs and verification
#   manifest.json what was built from what
# Idempotent: rebuilds only when an input (sources, this script, kernel/busybox/sqlite/gcc
# version) changes. Needs: apt-get, dpkg-deb, gcc, busybox-static, cpio, libsqlite3-dev.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${CLOUDNET_CACHE:-$root/.cache}/guest"
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9

for tool in apt-get dpkg-deb gcc cpio gzip; do
  command -v "$tool" >/dev/null || { echo "build-guest: missing tool: $tool" >&2; exit 1; }
done
busybox_bin=/bin/busybox
[[ -x $busybox_bin ]] && dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "install ok installed" ||
  { echo "build-guest: missing Debian package busybox-static" >&2; exit 1; }
[[ -f /usr/include/sqlite3.h && -f /usr/lib/x86_64-linux-gnu/libsqlite3.a ]] ||
  { echo "build-guest: missing Debian package libsqlite3-dev" >&2; exit 1; }

# The kernel package linux-image-amd64 points at; fall back to a cached kernel when apt has no lists.
kpkg="$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')"
if [[ -z $kpkg ]]; then
  kpkg="$(cat "$cache/kernel-package" 2>/dev/null || true)"
  if [[ -z $kpkg ]]; then
    apt-get update -qq >/dev/null
    kpkg="$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')"
  fi
fi
[[ -n $kpkg ]] || { echo "build-guest: cannot resolve the kernel package of linux-image-amd64" >&2; exit 1; }
kver="${kpkg#linux-image-}"
kdir="$cache/kernel/$kver"

inputs_hash="$(
  {
    cat "$0" "$root/guest/init" "$root"/guest/src/*.c "$root"/guest/src/*.h
    echo "$kpkg"
    dpkg-query -W -f='${Version}\n' busybox-static libsqlite3-dev
    gcc --version | head -1
  } | sha256sum | cut -d' ' -f1
)"
if [[ -f $cache/initrd.cpio.gz && -f $cache/vmlinuz && "$(cat "$cache/inputs.sha256" 2>/dev/null)" == "$inputs_hash" ]]; then
  echo "build-guest: up to date ($kpkg)"
  exit 0
fi
t0=$(date +%s)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# 1. Kernel + modules, extracted from the .deb.
if [[ ! -f $kdir/vmlinuz ]]; then
  echo "build-guest: fetching $kpkg"
  (cd "$work" && apt-get download -o APT::Sandbox::User=root -qq "$kpkg" >/dev/null)
  dpkg-deb -x "$work"/"$kpkg"_*.deb "$work/kpkg"
  mkdir -p "$kdir.tmp/modules"
  cp "$work/kpkg/boot/vmlinuz-$kver" "$kdir.tmp/vmlinuz"
  cp "$work/kpkg/boot/config-$kver" "$kdir.tmp/config"
  # virtio-blk and its dependencies are modules (=m) in Debian's config; copy them (and whatever
  # each declares in its modinfo "depends=") so the init script can insmod them.
  want=(virtio_blk virtio_pci)
  declare -A seen=()
  while ((${#want[@]})); do
    m="${want[0]}"; want=("${want[@]:1}")
    [[ -n ${seen[$m]:-} ]] && continue
    seen[$m]=1
    ko="$(find "$work/kpkg/lib/modules/$kver" -name "$m.ko" -o -name "$m.ko.xz" | head -1)"
    [[ -n $ko ]] || continue # built in
    [[ $ko == *.xz ]] && { xz -dc "$ko" > "$kdir.tmp/modules/$m.ko"; } || cp "$ko" "$kdir.tmp/modules/$m.ko"
    deps="$(grep -a -o 'depends=[A-Za-z0-9_,-]*' "$kdir.tmp/modules/$m.ko" | head -1 | cut -d= -f2 | tr , ' ')"
    for d in $deps; do want+=("$d"); done
  done
  rm -rf "$kdir" && mv "$kdir.tmp" "$kdir"
  rm -rf "$work/kpkg" "$work"/*.deb
fi
echo "$kpkg" > "$cache/kernel-package"

# 2. Workloads, statically linked so they run in the guest and on the host alike.
mkdir -p "$work/bin"
cflags=(-static -O2 -Wall -Wextra -I"$root/guest/src")
for p in heartbeat memwriter diskwriter; do
  gcc "${cflags[@]}" -o "$work/bin/$p" "$root/guest/src/$p.c"
done
# libsqlite3.a references dlopen (extension loading), which a static glibc only warns about.
gcc "${cflags[@]}" -o "$work/bin/sqlload" "$root/guest/src/sqlload.c" -lsqlite3 -lm 2> >(grep -v -e dlopen -e unixDlOpen >&2 || true)
strip "$work"/bin/*

# 3. The initramfs tree.
rootfs="$work/rootfs"
mkdir -p "$rootfs"/{bin,dev,proc,sys,tmp,lib/modules}
cp "$busybox_bin" "$rootfs/bin/busybox"
for applet in $("$busybox_bin" --list); do
  [[ -e $rootfs/bin/$applet ]] || ln -s busybox "$rootfs/bin/$applet"
done
cp "$work"/bin/* "$rootfs/bin/"
cp "$kdir"/modules/*.ko "$rootfs/lib/modules/" 2>/dev/null || true
install -m 0755 "$root/guest/init" "$rootfs/init"
find "$rootfs" -exec touch -h -d @0 {} +
(cd "$rootfs" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc -R 0:0 --quiet) | gzip -6n > "$work/initrd.cpio.gz"

# 4. Publish atomically-ish: outputs first, inputs hash last.
rm -rf "$cache/bin" && mv "$work/bin" "$cache/bin"
mv "$work/initrd.cpio.gz" "$cache/initrd.cpio.gz"
cp "$kdir/vmlinuz" "$cache/vmlinuz"
modules_json="$(cd "$kdir/modules" && ls ./*.ko 2>/dev/null | sed 's|^\./||; s|\.ko$||' | awk 'BEGIN{ORS=""} {printf "%s\"%s\"", (NR>1?",":""), $0}')"
cat > "$cache/manifest.json" <<JSON
{
  "kernelPackage": "$kpkg",
  "kernelVersion": "$kver",
  "vmlinuz": "$cache/vmlinuz",
  "initrd": "$cache/initrd.cpio.gz",
  "binDir": "$cache/bin",
  "modules": [$modules_json],
  "workloads": ["idle", "memwriter", "sqlload", "diskwriter"],
  "inputsHash": "$inputs_hash"
}
JSON
echo "$inputs_hash" > "$cache/inputs.sha256"
echo "build-guest: built $kpkg initrd=$(du -h "$cache/initrd.cpio.gz" | cut -f1) in $(( $(date +%s) - t0 ))s"

#!/usr/bin/env bash
# Builds the userspace WAN link emulator (test/wanem, Go, standard library only) into
# ${CLOUDNET_CACHE:-.cache}/bin/wanem. Idempotent: rebuilds only when the source or the Go
# version changes. No modules are fetched, so it builds offline from the Go build cache.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${CLOUDNET_CACHE:-$root/.cache}"
bin="$cache/bin"
src="$root/test/wanem"
mkdir -p "$bin"
command -v go >/dev/null || { echo "build-wanem: go is required to build the WAN emulator (not found on PATH)" >&2; exit 1; }

# Parallel test processes may call this at once; one builds, the others wait and then see the stamp.
exec 9>"$bin/.wanem.lock"
flock 9

want="$( (cd "$src" && cat go.mod ./*.go; go version) | sha256sum | cut -d' ' -f1)"
if [[ -x "$bin/wanem" && "$(cat "$bin/.wanem.hash" 2>/dev/null)" == "$want" ]]; then
  echo "wanem up to date in $bin"
  exit 0
fi
start=$(date +%s)
export CGO_ENABLED=0 GOFLAGS=
(cd "$src" && go vet ./... && go test -count=1 ./... >/dev/null && go build -trimpath -o "$bin/wanem.tmp" .)
mv "$bin/wanem.tmp" "$bin/wanem"
echo "$want" > "$bin/.wanem.hash"
echo "wanem built in $(( $(date +%s) - start ))s into $bin/wanem"

#!/usr/bin/env bash
# Builds kube-apiserver, kubectl, etcd and helm from Go modules into a gitignored cache.
# Nothing prebuilt can be downloaded on our machines, so the Go module proxy is the only source.
# Idempotent: a stamp file records the pinned versions; it rebuilds only when a pin changes.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.35.4}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
HELM_VERSION="${HELM_VERSION:-v3.19.5}"

root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${CLOUDNET_CACHE:-$root/.cache}"
bin="$cache/bin"
stamp="$bin/.versions"
want="v2 k8s=$K8S_VERSION etcd=$ETCD_VERSION helm=$HELM_VERSION"
mkdir -p "$bin"

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] \
   && [[ -x "$bin/kube-apiserver" && -x "$bin/etcd" && -x "$bin/helm" && -x "$bin/kubectl" ]]; then
  echo "k8s binaries up to date ($want) in $bin"
  exit 0
fi

command -v go >/dev/null || { echo "go is required to build kube-apiserver/etcd/helm (not found on PATH)" >&2; exit 1; }
export GOFLAGS="-mod=mod"
export CGO_ENABLED=0
start=$(date +%s)

# kube-apiserver + kubectl: k8s.io/kubernetes points the staging modules at v0.0.0, so pin each to v0.<minor>.<patch>.
kdir="$cache/gobuild/k8s"; mkdir -p "$kdir"
(cd "$kdir" && rm -f go.mod go.sum && go mod init cloudnet-k8s-build >/dev/null 2>&1)
kmod_json=$(cd "$kdir" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION")
kgomod=$(printf '%s' "$kmod_json" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
staging_ver="v0${K8S_VERSION#v1}"
replaces=$(grep -E '^\s*k8s\.io/[a-z0-9-]+ => \./staging' "$kgomod" | awk -v v="$staging_ver" '{print "replace " $1 " => " $1 " " v}')
goline=$(grep -E '^go [0-9]' "$kgomod" | head -1)
{
  echo "module cloudnet-k8s-build"
  echo "$goline"
  echo "require k8s.io/kubernetes $K8S_VERSION"
  echo "$replaces"
} > "$kdir/go.mod"
printf 'package main\nimport _ "k8s.io/kubernetes/cmd/kube-apiserver/app"\nimport _ "k8s.io/kubectl/pkg/cmd"\nfunc main() {}\n' > "$kdir/tools.go"
(cd "$kdir" && go mod tidy >/dev/null)
rm -f "$kdir/tools.go"
printf 'package main\nfunc main() {}\n' > "$kdir/main.go"
minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
kver_flags="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kver_flags+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
done
echo "building kube-apiserver $K8S_VERSION"
(cd "$kdir" && go build -trimpath -ldflags "$kver_flags" -o "$bin/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver)
echo "building kubectl $K8S_VERSION"
(cd "$kdir" && go build -trimpath -ldflags "$kver_flags" -o "$bin/kubectl" k8s.io/kubernetes/cmd/kubectl)

# etcd 3.6 (Debian's 3.4 is older than current Kubernetes supports).
edir="$cache/gobuild/etcd"; mkdir -p "$edir"; rm -f "$edir/go.mod" "$edir/go.sum"
(cd "$edir" && go mod init cloudnet-etcd-build >/dev/null 2>&1 \
  && printf 'package main\nimport _ "go.etcd.io/etcd/server/v3/etcdmain"\nfunc main() {}\n' > tools.go \
  && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null && go mod tidy >/dev/null && rm -f tools.go \
  && printf 'package main\nimport "go.etcd.io/etcd/server/v3/etcdmain"\nimport "os"\nfunc main() { etcdmain.Main(os.Args) }\n' > main.go \
  && echo "building etcd $ETCD_VERSION" && go mod tidy >/dev/null && go build -trimpath -ldflags "-s -w" -o "$bin/etcd" .)

# helm: a plain main package of the helm module, pinned by go get.
hdir="$cache/gobuild/helm"; rm -rf "$hdir"; mkdir -p "$hdir"
(cd "$hdir" && go mod init cloudnet-helm-build >/dev/null 2>&1 && go get "helm.sh/helm/v3@$HELM_VERSION" >/dev/null 2>&1 \
  && echo "building helm $HELM_VERSION" \
  && go build -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" -o "$bin/helm" helm.sh/helm/v3/cmd/helm)

echo "$want" > "$stamp"
end=$(date +%s)
echo "built $want in $((end-start))s; cache uses $(du -sh "$bin" | cut -f1) (binaries)"

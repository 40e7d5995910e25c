#!/usr/bin/env bash
# Builds the binaries of the local test bed (kube-apiserver, kubectl, etcd, helm)
# from the Go modules pinned under hack/tools/, once, into a cache outside git
# keyed by the module files and the Go version. Later runs reuse the cache.
#
#   hack/build-tools.sh            build what is missing, print the bin dir
#   LLM_ROLLOUT_TOOLS_DIR=...      override the cache root
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache_root=${LLM_ROLLOUT_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/llm-rollout/tools}

log() { printf '[build-tools] %s\n' "$*" >&2; }

if ! command -v go >/dev/null 2>&1; then
  log "error: the Go toolchain is needed to build the test bed (install Go >= 1.25)"
  exit 1
fi

# Build one module's binaries; $1 = module dir, rest = "name=package" pairs.
build_module() {
  local mod=$1; shift
  local key ver_flags=""
  key=$( (cat "$here/tools/$mod/go.mod" "$here/tools/$mod/go.sum"; go env GOVERSION) | sha256sum | cut -c1-16)
  local out="$cache_root/$mod-$key"
  local missing=0 pair
  for pair in "$@"; do [ -x "$out/${pair%%=*}" ] || missing=1; done
  if [ "$missing" = 0 ]; then echo "$out"; return; fi

  mkdir -p "$out"
  if [ "$mod" = kube ]; then
    # Stamp the release so `kubectl version` and /version report what was built.
    local v; v=$(awk '/^require k8s.io\/kubernetes/ {print $3}' "$here/tools/kube/go.mod")
    local minor; minor=$(echo "$v" | cut -d. -f2)
    local pkgs="k8s.io/component-base/version k8s.io/client-go/pkg/version"
    for p in $pkgs; do
      ver_flags="$ver_flags -X $p.gitVersion=$v -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
    done
  fi
  for pair in "$@"; do
    local name=${pair%%=*} pkg=${pair#*=}
    [ -x "$out/$name" ] && continue
    local logf="$out/$name.build.log" start=$SECONDS
    log "building $name from $pkg (first time only; several minutes on 2 cores)..."
    ( cd "$here/tools/$mod" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $ver_flags" \
        -o "$out/$name.tmp" "$pkg" ) >"$logf" 2>&1 &
    local pid=$!
    while kill -0 "$pid" 2>/dev/null; do
      sleep 15
      kill -0 "$pid" 2>/dev/null && log "  $name: still compiling ($((SECONDS - start))s)"
    done
    if ! wait "$pid"; then
      log "error: building $name failed; the go build output follows ($logf)"
      tail -n 40 "$logf" >&2
      exit 1
    fi
    mv "$out/$name.tmp" "$out/$name"
    log "  $name built in $((SECONDS - start))s"
  done
  echo "$out"
}

bin="$cache_root/bin"
mkdir -p "$bin"
link_all() { local d=$1; shift; for pair in "$@"; do ln -sfn "$d/${pair%%=*}" "$bin/${pair%%=*}"; done; }

kube_tools=(kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver kubectl=k8s.io/kubernetes/cmd/kubectl)
etcd_tools=(etcd=go.etcd.io/etcd/server/v3)
helm_tools=(helm=helm.sh/helm/v3/cmd/helm)

d=$(build_module etcd "${etcd_tools[@]}"); link_all "$d" "${etcd_tools[@]}"
d=$(build_module kube "${kube_tools[@]}"); link_all "$d" "${kube_tools[@]}"
d=$(build_module helm "${helm_tools[@]}"); link_all "$d" "${helm_tools[@]}"
echo "$bin"

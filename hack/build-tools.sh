#!/usr/bin/env bash
# Builds the binaries of the local test bed (kube-apiserver, kubectl, etcd, helm;
# for the real node also kube-controller-manager, kube-scheduler, kubelet,
# kube-proxy, CoreDNS and the pause binary) from the Go modules pinned under
# hack/tools/, once, into a cache outside git keyed by the module files and the Go
# version. Later runs reuse the cache.
#
#   hack/build-tools.sh            build what is missing, print the bin dir
#   hack/build-tools.sh --node     also the real node's binaries
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
  local key ver_flags="" tags=""
  # Prometheus: Kubernetes service discovery alone (the others pull in every cloud SDK).
  [ "$mod" = prometheus ] && tags="remove_all_sd,enable_kubernetes_sd"
  key=$( (cat "$here/tools/$mod/go.mod" "$here/tools/$mod/go.sum"; go env GOVERSION; [ -z "$tags" ] || echo "$tags") | sha256sum | cut -c1-16)
  local out="$cache_root/$mod-$key"
  local missing=0 pair
  for pair in "$@"; do [ -x "$out/${pair%%=*}" ] || missing=1; done
  if [ "$missing" = 0 ]; then echo "$out"; return; fi

  mkdir -p "$out"
  if [ "$mod" = kube ] || [ "$mod" = node ]; then
    # Stamp the release so `kubectl version` and /version report what was built.
    local v; v=$(awk '/^require k8s.io\/kubernetes/ {print $3}' "$here/tools/$mod/go.mod")
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
    ( cd "$here/tools/$mod" && CGO_ENABLED=0 go build -trimpath -tags "$tags" -ldflags "-s -w $ver_flags" \
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
# One build at a time per cache: two runs (a test session and `make cluster-up`, say)
# would otherwise compile the same binary twice into the same temporary file.
exec 9>"$cache_root/.lock"
if ! flock -n 9; then
  log "another build of the tools is running; waiting for it..."
  flock 9
fi
link_all() { local d=$1; shift; for pair in "$@"; do ln -sfn "$d/${pair%%=*}" "$bin/${pair%%=*}"; done; }

kube_tools=(kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver kubectl=k8s.io/kubernetes/cmd/kubectl)
etcd_tools=(etcd=go.etcd.io/etcd/server/v3)
helm_tools=(helm=helm.sh/helm/v3/cmd/helm)
node_tools=(kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager
            kube-scheduler=k8s.io/kubernetes/cmd/kube-scheduler
            kube-proxy=k8s.io/kubernetes/cmd/kube-proxy
            kubelet=k8s.io/kubernetes/cmd/kubelet)
coredns_tools=(coredns=.)
prometheus_tools=(prometheus=github.com/prometheus/prometheus/cmd/prometheus)

# The pod sandbox's pause process: a static C binary from the Kubernetes module's
# own source (no registry holds an image for it here).
build_pause() {
  local src key out
  src=$(cd "$here/tools/node" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c
  key=$( (cat "$src"; cc --version | head -1) | sha256sum | cut -c1-16)
  out="$cache_root/pause-$key"
  if [ ! -x "$out/pause" ]; then
    mkdir -p "$out"
    cc -Os -static -Wall -o "$out/pause.tmp" "$src" -DVERSION=bed && strip "$out/pause.tmp"
    mv "$out/pause.tmp" "$out/pause"
    log "  pause built"
  fi
  ln -sfn "$out/pause" "$bin/pause"
}

d=$(build_module etcd "${etcd_tools[@]}"); link_all "$d" "${etcd_tools[@]}"
d=$(build_module kube "${kube_tools[@]}"); link_all "$d" "${kube_tools[@]}"
d=$(build_module helm "${helm_tools[@]}"); link_all "$d" "${helm_tools[@]}"
if [ "${1:-}" = --node ]; then
  (cd "$here/tools/node" && go mod download k8s.io/kubernetes)
  d=$(build_module node "${node_tools[@]}"); link_all "$d" "${node_tools[@]}"
  d=$(build_module coredns "${coredns_tools[@]}"); link_all "$d" "${coredns_tools[@]}"
  d=$(build_module prometheus "${prometheus_tools[@]}"); link_all "$d" "${prometheus_tools[@]}"
  build_pause
fi
echo "$bin"

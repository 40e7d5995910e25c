#!/usr/bin/env bash
# Brings the upstream CRDs the tests install into the local bed (Gateway API,
# Istio networking, prometheus-operator monitoring) from their Go modules, pinned
# here, into a cache outside git. Prints the directory holding the YAML files.
set -euo pipefail

GATEWAY_API=sigs.k8s.io/gateway-api@v1.4.1
ISTIO_API=istio.io/api@v1.28.0
PROM_OPERATOR=github.com/prometheus-operator/prometheus-operator@v0.85.0

cache_root=${LLM_ROLLOUT_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/llm-rollout/tools}
key=$(echo "$GATEWAY_API $ISTIO_API $PROM_OPERATOR" | sha256sum | cut -c1-16)
out="$cache_root/crds-$key"
if [ -f "$out/.complete" ]; then echo "$out"; exit 0; fi

mod_dir() {
  local dir
  if ! dir=$(cd "$(mktemp -d)" && go mod download -json "$1" | sed -n 's/.*"Dir": "\(.*\)",/\1/p'); then
    echo "[upstream-crds] error: could not download $1 from the Go module proxy" >&2
    exit 1
  fi
  echo "$dir"
}

mkdir -p "$out"
gw=$(mod_dir "$GATEWAY_API")
cp "$gw"/config/crd/standard/gateway.networking.k8s.io_{httproutes,gateways,gatewayclasses}.yaml "$out/"
istio=$(mod_dir "$ISTIO_API")
# Istio ships all its CRDs in one file; the tests need the networking ones.
cp "$istio/kubernetes/customresourcedefinitions.gen.yaml" "$out/istio-crds.yaml"
po=$(mod_dir "$PROM_OPERATOR")
cp "$po"/example/prometheus-operator-crd/monitoring.coreos.com_{servicemonitors,prometheusrules}.yaml "$out/"
chmod u+w "$out"/*.yaml
touch "$out/.complete"
echo "$out"

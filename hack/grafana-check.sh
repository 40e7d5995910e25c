#!/usr/bin/env bash
# Validates Grafana dashboard JSON against Grafana's dashboard model (the Grafana
# Foundation SDK's generated types, strict decoding + Validate()): see
# hack/tools/grafana-check/main.go. Builds the checker once from its pinned Go
# module into the tools cache (keyed by its sources and the Go version).
#
#   hack/grafana-check.sh docs/grafana/llm-rollout.json [...]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src="$here/tools/grafana-check"
cache_root=${LLM_ROLLOUT_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/llm-rollout/tools}
if ! command -v go >/dev/null 2>&1; then
  echo "[grafana-check] error: the Go toolchain is needed (install Go >= 1.25)" >&2
  exit 1
fi
key=$( (cat "$src/go.mod" "$src/go.sum" "$src/main.go"; go env GOVERSION) | sha256sum | cut -c1-16)
bin="$cache_root/grafana-check-$key/grafana-check"
if [ ! -x "$bin" ]; then
  mkdir -p "$(dirname "$bin")"
  echo "[grafana-check] building the dashboard checker (first time only)..." >&2
  if ! (cd "$src" && CGO_ENABLED=0 go build -trimpath -o "$bin.tmp" .) >"$bin.build.log" 2>&1; then
    echo "[grafana-check] error: build failed; see $bin.build.log" >&2
    tail -n 20 "$bin.build.log" >&2
    exit 1
  fi
  mv "$bin.tmp" "$bin"
fi
exec "$bin" "$@"

#!/usr/bin/env bash
# Installs the bed's trace backend (Arize Phoenix, pinned in hack/tools/phoenix/) into a
# virtualenv of its own, once, in the tools cache keyed by the requirements and the
# Python version; prints the path of its `phoenix` executable. Later runs reuse it.
#
#   LLM_ROLLOUT_TOOLS_DIR=...   override the cache root
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache_root=${LLM_ROLLOUT_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/llm-rollout/tools}
python=${PYTHON:-python3}
req="$here/tools/phoenix/requirements.txt"
key=$( (cat "$req"; "$python" -c 'import sys; print(sys.version)') | sha256sum | cut -c1-16)
venv="$cache_root/phoenix-$key"

mkdir -p "$cache_root"
exec 9>"$cache_root/.phoenix.lock"
flock 9
# The stamp is written last: an interrupted install is redone, not half used.
if [ ! -f "$venv/.installed" ]; then
  start=$SECONDS
  echo "[install-phoenix] installing the trace backend (first time only, about a minute)..." >&2
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
  touch "$venv/.installed"
  echo "[install-phoenix]   installed in $((SECONDS - start))s" >&2
fi
echo "$venv/bin/phoenix"

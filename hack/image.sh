#!/usr/bin/env bash
# `make image`: build the one image (operator, router, eval runner).
#   hack/image.sh [IMAGE]   default llm-rollout-operator:<version in pyproject.toml>
#   BASE=python             FROM python:3.11-slim-bookworm (needs a registry; default
#                           when Docker can reach one)
#   BASE=debian             FROM a Python 3.11 base made here from Debian packages with
#                           mmdebstrap (no registry needed; cached)
#   PYTHON_IMAGE=...        FROM any other Debian-based Python 3.11 image
#   CONTAINERD_SOCKET=...   also import the image into that containerd (the bed's node)
#
# The locked wheels (requirements.lock, hash-checked) are downloaded on the host and
# installed in the build with --no-index. Where no Docker engine is running and
# dockerd is installed (Debian's docker.io), a private engine is started for the
# build, with its own state under the cache and no network for its containers.
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib/docker.sh
version=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n 1)
image=${1:-llm-rollout-operator:$version}
cache=${LLM_ROLLOUT_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/llm-rollout/tools}/..
cache=$(mkdir -p "$cache" && cd "$cache" && pwd)
log() { printf '[image] %s\n' "$*" >&2; }
start=$SECONDS

use_docker_engine "make image" "$cache/docker"

py=.venv/bin/python
[ -x "$py" ] || py=python3
log "downloading the locked wheels (hash-checked) into build/image-wheels"
mkdir -p build/image-wheels
"$py" -m pip download -q --disable-pip-version-check --require-hashes --no-deps \
  --only-binary=:all: --implementation cp --python-version 3.11 --abi cp311 \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux_2_28_x86_64 --platform linux_x86_64 \
  -r requirements.lock -d build/image-wheels

base_image=${PYTHON_IMAGE:-}
if [ -z "$base_image" ]; then
  case "${BASE:-}" in
    python) base_image=python:3.11-slim-bookworm ;;
    debian) base_image=$(debian_python_base "$cache/images") ;;
    "")
      if docker image inspect python:3.11-slim-bookworm >/dev/null 2>&1 \
         || timeout 30 docker pull -q python:3.11-slim-bookworm >/dev/null 2>&1; then
        base_image=python:3.11-slim-bookworm
      else
        log "python:3.11-slim-bookworm cannot be pulled here: using a base made from Debian packages"
        base_image=$(debian_python_base "$cache/images")
      fi ;;
    *) log "error: BASE must be python or debian (got ${BASE})"; exit 2 ;;
  esac
fi

log "building $image from $base_image"
# The classic builder: it uses the local base image as it is and needs no frontend
# image from a registry. The build's containers get no network.
DOCKER_BUILDKIT=0 docker build -q --network none --build-arg "PYTHON_IMAGE=$base_image" \
  -t "$image" . >/dev/null
docker run --rm --network none "$image" --help >/dev/null
size=$(docker image inspect "$image" --format '{{.Size}}')
log "built $image ($((size / 1024 / 1024)) MiB) in $((SECONDS - start)) s"

if [ -n "${CONTAINERD_SOCKET:-}" ]; then
  log "importing $image into the containerd at $CONTAINERD_SOCKET"
  docker save "$image" | ctr --address "$CONTAINERD_SOCKET" -n k8s.io images import - >/dev/null
fi

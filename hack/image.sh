#!/usr/bin/env bash
# `make image`: build the one image (operator, router, eval runner) with Docker.
#   hack/image.sh [IMAGE]      default llm-rollout-operator:<version in pyproject.toml>
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib/docker.sh
version=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n 1)
image=${1:-llm-rollout-operator:$version}
require_docker_engine "make image"
echo "[image] building $image" >&2
docker build -t "$image" .
docker run --rm "$image" --help >/dev/null
echo "[image] built $image" >&2

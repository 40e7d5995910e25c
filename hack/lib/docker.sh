# Sourced by hack/image.sh and hack/kind-e2e.sh: fail early, and clearly, without a
# working Docker engine (a docker client alone is not enough).
require_docker_engine() {
  local what=$1 out
  if ! command -v docker >/dev/null 2>&1; then
    echo "error: $what needs Docker, and there is no docker command here." >&2
    echo "Nothing else in this project needs Docker: 'make test' and 'make demo' run on a local bed without it." >&2
    exit 1
  fi
  if ! out=$(docker info --format '{{.ServerVersion}}' 2>&1); then
    echo "error: $what needs a working Docker engine; 'docker info' failed:" >&2
    echo "  $(echo "$out" | tail -n 1)" >&2
    echo "Start Docker (or point DOCKER_HOST at one) and try again. Nothing else in this project needs Docker: 'make test' and 'make demo' run on a local bed without it." >&2
    exit 1
  fi
}

# A Docker engine for a build: the one DOCKER_HOST (or the default socket) points at
# when it answers; otherwise, where dockerd is installed (Debian's docker.io), we are
# root and LLM_ROLLOUT_PRIVATE_DOCKER is not 0, a private engine whose state stays under $2 (kept, so rebuilds reuse its
# layers) with no bridge and no iptables rules, stopped when the script exits.
use_docker_engine() {
  local what=$1 state=$2
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then return 0; fi
  if [ "${LLM_ROLLOUT_PRIVATE_DOCKER:-1}" = 0 ] || ! command -v dockerd >/dev/null 2>&1 \
     || [ "$(id -u)" -ne 0 ]; then
    require_docker_engine "$what"
  fi
  local run=/run/llm-rollout-docker
  mkdir -p "$state" "$run"
  export DOCKER_HOST=unix://$run/docker.sock
  if ! docker info >/dev/null 2>&1; then
    echo "[docker] starting a private Docker engine for the build (state in $state)" >&2
    dockerd --data-root "$state/data" --exec-root "$run/exec" --pidfile "$run/dockerd.pid" \
      -H "$DOCKER_HOST" --bridge none --iptables=false --ip6tables=false --ip-masq=false --ip-forward=false \
      --userland-proxy=false >"$state/dockerd.log" 2>&1 &
    _private_dockerd=$!
    trap 'stop_private_docker' EXIT
    local i
    for i in $(seq 1 150); do
      docker info >/dev/null 2>&1 && return 0
      kill -0 "$_private_dockerd" 2>/dev/null || break
      sleep 0.2
    done
    echo "error: the private Docker engine did not start; its log follows ($state/dockerd.log)" >&2
    tail -n 20 "$state/dockerd.log" >&2
    exit 1
  fi
}

stop_private_docker() {
  [ -n "${_private_dockerd:-}" ] || return 0
  kill "$_private_dockerd" 2>/dev/null || true
  local i
  for i in $(seq 1 100); do kill -0 "$_private_dockerd" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$_private_dockerd" 2>/dev/null || true
  # dockerd's own containerd, should it outlive it.
  pkill -f "containerd --config /run/llm-rollout-docker/" 2>/dev/null || true
  umount -l /run/llm-rollout-docker/exec 2>/dev/null || true
}

# A Debian bookworm Python 3.11 base image made from Debian packages with mmdebstrap,
# imported into the engine once (cached as a tarball under $1); prints its name.
debian_python_base() {
  local dir=$1 name=llm-rollout.local/python:3.11-bookworm
  local pkgs=python3,python3-venv,python-is-python3,ca-certificates,tzdata
  local tarball=$dir/python-3.11-bookworm-$(echo "$pkgs" | sha256sum | cut -c1-12).tar
  if ! docker image inspect "$name" >/dev/null 2>&1; then
    if [ ! -s "$tarball" ]; then
      command -v mmdebstrap >/dev/null 2>&1 || {
        echo "error: BASE=debian needs mmdebstrap (apt-get install mmdebstrap)" >&2; exit 1; }
      mkdir -p "$dir"
      echo "[image] making $name from Debian packages with mmdebstrap (first time only, ~1 min)" >&2
      mmdebstrap --quiet --variant=minbase --include="$pkgs" \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        bookworm "${tarball%.tar}.partial.tar" >&2
      mv "${tarball%.tar}.partial.tar" "$tarball"
    fi
    docker import -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      "$tarball" "$name" >/dev/null
  fi
  echo "$name"
}

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

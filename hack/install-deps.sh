#!/usr/bin/env bash
# Installs the system packages the test bed and benchmarks need, when missing:
# Prometheus (and promtool), nginx and wrk (router benchmark) from Debian, openssl for
# bed certificates. With --node, also what the bed's real node and `make image` need:
# containerd, runc, the CNI plugins, iptables and conntrack (the node), Docker's
# engine and mmdebstrap (building the image with no registry). With --screenshot,
# Debian's Chromium (`make demo SCREENSHOT=...` takes its picture of the trace UI with it).
set -euo pipefail

need=()
if [ "${1:-}" = --node ]; then
  command -v containerd >/dev/null 2>&1 || need+=(containerd)
  command -v runc >/dev/null 2>&1 || need+=(runc)
  [ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
  command -v iptables >/dev/null 2>&1 || [ -x /usr/sbin/iptables ] || need+=(iptables)
  command -v conntrack >/dev/null 2>&1 || [ -x /usr/sbin/conntrack ] || need+=(conntrack)
  command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
  command -v mmdebstrap >/dev/null 2>&1 || need+=(mmdebstrap)
fi
if [ "${1:-}" = --screenshot ]; then
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
fi
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v wrk >/dev/null 2>&1 || need+=(wrk)  # saturation load in `make bench`
[ ${#need[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "[install-deps] error: missing ${need[*]} and no apt-get here; install them by hand" >&2
  exit 1
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "[install-deps] installing Debian packages: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# Only the binaries are wanted: the packages' own services must not start.
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null

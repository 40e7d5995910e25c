#!/usr/bin/env bash
# `make kind-e2e`: the whole product on a real cluster, for machines with Docker.
# Creates a kind cluster, builds and loads the image, installs a small Prometheus and
# the Helm chart (operator x2 with leader election, router), then rolls out an
# example: a first release, promoted directly, and a second one, promoted stage by
# stage on live traffic from a load Job (simulated model servers, users and experts).
#
#   KIND_CLUSTER=llm-rollout-e2e   cluster name (reused when it exists)
#   KEEP_CLUSTER=1                 leave the cluster running afterwards
#   KIND=/path/to/kind             use this kind (default: built once from its Go module)
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib/docker.sh
require_docker_engine "make kind-e2e"

KIND_VERSION=v0.30.0
cluster=${KIND_CLUSTER:-llm-rollout-e2e}
ns=llm-rollout-system
app_ns=llm-e2e
version=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n 1)
image=llm-rollout-operator:$version-e2e
log() { printf '[kind-e2e] %s\n' "$*" >&2; }

bin=$(bash hack/build-tools.sh | tail -n 1)      # kubectl, helm
export PATH="$bin:$PATH"
if [ -z "${KIND:-}" ]; then
  cache=${LLM_ROLLOUT_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/llm-rollout/tools}/kind-$KIND_VERSION
  if [ ! -x "$cache/kind" ]; then
    log "building kind $KIND_VERSION from its Go module (first time only)"
    GOBIN="$cache" go install "sigs.k8s.io/kind@$KIND_VERSION"
  fi
  KIND=$cache/kind
fi

if ! "$KIND" get clusters | grep -qx "$cluster"; then
  log "creating kind cluster $cluster"
  "$KIND" create cluster --name "$cluster" --wait 120s
fi
export KUBECONFIG
KUBECONFIG=$(mktemp)
"$KIND" get kubeconfig --name "$cluster" >"$KUBECONFIG"
cleanup() {
  rm -f "$KUBECONFIG"
  if [ -z "${KEEP_CLUSTER:-}" ]; then "$KIND" delete cluster --name "$cluster"; fi
}
trap cleanup EXIT

bash hack/image.sh "$image"
"$KIND" load docker-image "$image" --name "$cluster"

log "installing Prometheus"
kubectl apply -f hack/kind/prometheus.yaml
kubectl -n monitoring rollout status deployment/prometheus --timeout 180s

log "installing the chart"
helm upgrade --install llm-rollout-operator charts/llm-rollout-operator --namespace "$ns" \
  --create-namespace --wait --timeout 5m \
  --set image.repository="${image%:*}" --set image.tag="${image##*:}" \
  --set image.pullPolicy=Never \
  --set operator.prometheusUrl=http://prometheus.monitoring.svc:9090 \
  --set router.enabled=true
helm test llm-rollout-operator --namespace "$ns" --logs
kubectl -n "$ns" get lease llm-rollout-operator -o jsonpath='leader: {.spec.holderIdentity}{"\n"}'

kubectl create namespace "$app_ns" --dry-run=client -o yaml | kubectl apply -f -
rollout() {  # $1 = model revision
  cat <<YAML
apiVersion: rollout.llmops.io/v1alpha1
kind: LLMDeployment
metadata: {name: assistant, namespace: $app_ns}
spec:
  release:
    model: {name: acme-translate, revision: "$1"}
    prompt: {version: v1}
    replicas: 1
    port: 8080
    template:
      spec:
        containers:
          - name: model
            image: $image
            imagePullPolicy: Never
            command: [python, -m, llm_rollout.sim.model_server, --listen, "0.0.0.0:8080"]
            ports: [{containerPort: 8080}]
            readinessProbe: {httpGet: {path: /healthz, port: 8080}}
  checks:
    - {name: not-too-long, type: maxLength, max: 4000}
  analysis: {interval: 10s, window: 2m, failureLimit: 3, errorLimit: 6}
  stages:
    - name: experts
      cohorts: [experts]
      minDuration: 30s
      maxDuration: 10m
      gates:
        - {name: checks, kind: Ratio, metric: heuristic-pass-rate, min: 0.5, minSamples: 5}
    - name: beta
      cohorts: [beta]
      steps: [50, 100]
      minDuration: 30s
      maxDuration: 10m
      gates:
        - {name: errors, kind: Ratio, metric: error-rate, max: 0.2, minSamples: 5}
    - name: all
      cohorts: [everyone]
      steps: [50, 100]
      minDuration: 30s
      maxDuration: 10m
YAML
}
wait_phase() {  # $1 = phase, $2 = release revision, $3 = timeout seconds
  local deadline=$((SECONDS + $3)) phase
  while [ $SECONDS -lt $deadline ]; do
    phase=$(kubectl -n "$app_ns" get llmd assistant -o jsonpath='{.status.phase}/{.status.stable.modelRevision}' 2>/dev/null || true)
    if [ "$phase" = "$1/$2" ]; then log "assistant: $phase"; return 0; fi
    sleep 5
  done
  log "error: assistant did not reach $1 with $2 (now: $phase)"
  kubectl -n "$app_ns" get llmd assistant -o yaml >&2
  kubectl -n "$ns" logs -l app.kubernetes.io/component=operator --tail 50 >&2
  return 1
}

log "first release (promoted directly)"
rollout r1 | kubectl apply -f -
wait_phase Promoted r1 300

log "traffic: users of every cohort through the router"
kubectl -n "$app_ns" delete job load --ignore-not-found
kubectl apply -f - <<YAML
apiVersion: batch/v1
kind: Job
metadata: {name: load, namespace: $app_ns}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: load
          image: $image
          imagePullPolicy: Never
          command: [python, -c]
          args:
            - |
              import json, time, urllib.request
              url = "http://llm-rollout-operator-router.$ns.svc"
              groups = ["expert", "beta", None]
              end, i = time.time() + 900, 0
              while time.time() < end:
                  headers = {"Content-Type": "application/json", "x-user-id": f"u{i % 60}"}
                  if groups[i % 3]:
                      headers["x-user-group"] = groups[i % 3]
                  body = json.dumps({"messages": [{"role": "user", "content": "Acme Cloud"}]})
                  req = urllib.request.Request(url + "/v1/chat/completions", body.encode(), headers)
                  try:
                      urllib.request.urlopen(req, timeout=10).read()
                  except OSError as err:
                      print(err, flush=True)
                  i += 1
                  time.sleep(0.2)
YAML

log "second release: experts -> beta -> all"
rollout r2 | kubectl apply -f -
wait_phase Promoted r2 900
kubectl -n "$app_ns" get llmd assistant
if [ -x .venv/bin/llm-rollout ]; then .venv/bin/llm-rollout status assistant -n "$app_ns"; fi
kubectl -n "$app_ns" get llmd assistant -o jsonpath='{range .status.history[*]}{.decision} {.stage} {.reason}{"\n"}{end}'
log "ok: the chart, the image and a staged rollout work on kind"

# llm-rollout-operator: see README.md. Every target installs what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
CLUSTER_DIR := .cluster

.PHONY: install deps tools test test-unit test-integration lint crds crds-check \
        cluster-up cluster-down bench demo clean
.PHONY: dashboard chart-test lock image kind-e2e bench-soundness e2e node-tools bench-scale

install: $(INSTALLED)

# Re-run pip only when the project's metadata changed.
$(INSTALLED): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

deps:
	@bash hack/install-deps.sh

tools: deps
	@bash hack/build-tools.sh >/dev/null
	@bash hack/install-phoenix.sh >/dev/null
	@bash hack/upstream-crds.sh >/dev/null

# The real node's packages (containerd, runc, CNI plugins, iptables, Docker's engine,
# mmdebstrap) and binaries (kubelet, kube-proxy, controllers, scheduler, CoreDNS, pause,
# Prometheus with Kubernetes discovery), built once and cached like the others.
# Root only (the node needs it): elsewhere the e2e tier skips itself.
node-tools: tools
	@if [ "$$(id -u)" = 0 ]; then \
	  bash hack/install-deps.sh --node && bash hack/build-tools.sh --node >/dev/null; \
	else echo "[node-tools] not root: no real node here; tests/e2e is skipped"; fi

test: install tools node-tools
	$(PY) -m pytest

test-unit: install
	$(PY) -m pytest -m "not integration"

test-integration: install tools
	$(PY) -m pytest -m "integration and not node"

# End to end in pods on the bed's real node (root): the image built here, the chart
# installed, the demo's rollouts and faults in pods, then a clean cluster-down.
e2e: install node-tools
	$(PY) -m pytest tests/e2e

lint: install
	$(VENV)/bin/ruff format --check operator tests bench
	$(VENV)/bin/ruff check operator tests bench
	$(VENV)/bin/mypy
	MYPYPATH=. $(VENV)/bin/mypy --strict --explicit-package-bases bench/soundness bench/sizing.py
	MYPYPATH=bench:operator $(VENV)/bin/mypy --strict --explicit-package-bases bench/routerbench bench/router_bench.py bench/router_ab.py bench/tracing_cost.py

crds: install
	$(PY) -m llm_rollout.gen.crd --all
	@# the Helm chart ships the same CRDs (a test fails on drift)
	@rm -f charts/llm-rollout-operator/crds/*.yaml
	cp crds/*.yaml charts/llm-rollout-operator/crds/

crds-check: install
	$(PY) -m llm_rollout.gen.crd --all --check

# The Grafana dashboard JSON (chart and docs/ copies) from llm_rollout/gen/dashboard/.
dashboard: install
	$(PY) -m llm_rollout.gen.dashboard

# The Helm chart's checks alone: lint, renders, dry runs, RBAC, dashboard, alerts.
chart-test: install tools
	$(PY) -m pytest tests/unit/test_chart_files.py tests/unit/test_dashboard.py \
	  tests/integration/test_chart.py tests/integration/test_alerts.py \
	  tests/integration/test_dashboard_queries.py

# requirements.lock: the runtime dependencies (and the build backend), pinned with
# hashes, from pyproject.toml; the Dockerfile installs exactly these.
lock: install
	@$(PY) -m pip install -q 'pip-tools>=7.4'
	$(VENV)/bin/pip-compile --quiet --generate-hashes --strip-extras --all-build-deps \
	  --allow-unsafe --no-emit-find-links --no-emit-index-url --no-emit-trusted-host \
	  --output-file requirements.lock pyproject.toml

# The one image (operator, router, eval runner). BASE=debian: from Debian packages, no
# registry needed (hack/image.sh starts a private Docker engine if none runs).
image: install
	@BASE=$(BASE) bash hack/image.sh $(IMAGE)

# kind cluster + image + Prometheus + chart + an example rollout; needs Docker.
kind-e2e:
	@bash hack/kind-e2e.sh

# NODE=1: also a real node where pods run (root; containerd, kubelet, kube-proxy,
# controllers, scheduler, CoreDNS; see docs/install.md).
cluster-up: install tools $(if $(NODE),node-tools)
	@$(PY) -m llm_rollout.testbed up --dir $(CLUSTER_DIR) $(if $(NODE),--node)

cluster-down: install
	@$(PY) -m llm_rollout.testbed down --dir $(CLUSTER_DIR)

# The main job: the whole loop on the local bed (see README). KEEP=1: everything keeps
# running after the summary (the trace UI), until Ctrl-C. SCREENSHOT=PNG: a picture of
# one regressed answer in the trace UI (Debian's Chromium). PODS=1: all of it in
# pods on a bed with a real node (root).
demo: install tools $(if $(PODS),node-tools)
	$(if $(SCREENSHOT),@bash hack/install-deps.sh --screenshot)
	$(PY) -m llm_rollout.demo $(if $(PODS),--pods) $(if $(KEEP),--keep) \
	  $(if $(SCREENSHOT),--screenshot $(SCREENSHOT))

# Router vs direct vs nginx on loopback (~2 min), what tracing costs the router (~6 min),
# then the CLI's start-up time (~30 s);
# figures go to docs/benchmarks.md.
bench: install deps
	$(PY) bench/router_bench.py
	$(PY) bench/tracing_cost.py
	$(PY) bench/cli_startup.py

# The gates' soundness: a Monte Carlo of the real engine (2,000 rollouts a cell) next to
# the engine of BASELINE, ~45 min on 2 cores; figures go to docs/benchmarks.md.
BASELINE ?= 73f79ba
bench-soundness: install
	$(PY) -m bench.soundness --primed --baseline-ref $(BASELINE) --json-out soundness.json
	$(PY) bench/sizing.py --runs 2000

# The operator with N LLMDeployments in analysis on the bed, next to the operator of
# BASELINE, in one run (~5 min per N and code); figures go to docs/benchmarks.md.
SCALE_N ?= 100 150 200
bench-scale: install tools
	$(PY) bench/scale.py $(foreach n,$(SCALE_N),--n $(n)) --duration 150 --baseline-ref $(SCALE_BASELINE)
SCALE_BASELINE ?= bb7e160

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

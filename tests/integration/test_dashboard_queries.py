"""Every query of the Grafana dashboard (panels and annotations), with its variables
substituted, parses and returns series from the real Prometheus while the operator and
the router export real data: a rollout in progress, traffic through the router (one
release unreachable, so fallbacks happen), user thumbs and expert scores. The
dashboard JSON also passes Grafana's own dashboard model (hack/grafana-check.sh), and
the alert expressions parse against the same Prometheus."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import REPO_ROOT, Cluster, Prometheus
from tests.integration.support import ControlledMetrics, OperatorProcess, Rollouts, wait_for
from tests.integration.test_operator_rollout import obj, phase_is, rid, spec

from llm_rollout.gen import dashboard as grafana
from llm_rollout.testbed.kubelet import KubeletStandIn
from llm_rollout.testbed.procs import free_port, stop_pid

SUBSTITUTIONS = {"$__rate_interval": "2m", "$window": "5m", "$deployment": "bot"}
# Panels whose series only exist once their data does. Evals: the eval pipeline exports
# llm_eval_score once a suite ran; no suite runs here.
NEEDS_DATA_NOT_MADE_HERE = {"evals"}
CHECKS = [{"name": "not-too-long", "type": "maxLength", "max": 4000}]
# A Ratio gate besides the test's Threshold one: its interval and samples are exported.
RATIO_GATE = {"name": "checks", "kind": "Ratio", "metric": "heuristic-pass-rate", "min": 0.5}


class ChatHandler(BaseHTTPRequestHandler):
    """A minimal OpenAI-compatible model server (non-streaming chat completions)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps(
            {
                "id": "c1",
                "object": "chat.completion",
                "model": "sim",
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": "Hello from Acme Cloud."},
                    }
                ],
                "usage": {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def model_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), ChatHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join(5)


class RouterProcess:
    """`llm-rollout router --kube` serving the namespace, backends from a file."""

    def __init__(
        self, cluster: Cluster, namespace: str, backends: dict[str, str], log_dir: Path
    ) -> None:
        self.port, self.metrics_port = free_port(), free_port()
        self.log_path = log_dir / "router.log"
        self.backend_file = log_dir / "backends.json"
        self.set_backends(backends)
        argv = [
            sys.executable,
            "-m",
            "llm_rollout.cli",
            "router",
            "--kube",
            "--kubeconfig",
            cluster.kubeconfig,
            "--namespace",
            namespace,
            "--listen",
            f"127.0.0.1:{self.port}",
            "--metrics-listen",
            f"127.0.0.1:{self.metrics_port}",
            "--backend-file",
            str(self.backend_file),
            "--reload-interval",
            "0.2",
        ]
        env = {**os.environ, "LLM_ROLLOUT_FEEDBACK_KEY": "k" * 32}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env
            )

    def set_backends(self, backends: dict[str, str]) -> None:
        tmp = self.backend_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(backends))
        tmp.replace(self.backend_file)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.metrics_port}/readyz", timeout=2
            ) as resp:
                return int(resp.status) == 200
        except (OSError, urllib.error.HTTPError):
            return False

    def post(
        self, path: str, body: dict[str, Any], headers: dict[str, str]
    ) -> tuple[int, dict[str, str]]:
        req = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", **headers},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                resp.read()
                return int(resp.status), dict(resp.headers)
        except urllib.error.HTTPError as err:
            return int(err.code), dict(err.headers)

    def stop(self) -> None:
        stop_pid(self.proc.pid)
        self.proc.wait(10)


def send_traffic(router: RouterProcess, requests: int = 45) -> None:
    """Users of every cohort ask; experts score (with criteria), others give thumbs."""
    groups = [("expert", "expert"), ("beta", "user"), (None, "user")]
    for i in range(requests):
        group, source = groups[i % 3]
        headers = {"x-user-id": f"user-{i % 15}"}
        if group:
            headers["x-user-group"] = group
        status, got = router.post(
            "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}, headers
        )
        assert status == 200, (status, got)
        token = got.get("x-llm-feedback-token") or got.get("X-Llm-Feedback-Token")
        assert token, got
        rating: dict[str, Any] = (
            {"score": 3 + i % 3, "criteria": {"accuracy": 4}}
            if source == "expert"
            else {"thumbs": "up" if i % 4 else "down"}
        )
        status, _ = router.post("/feedback", {"token": token, "source": source, **rating}, {})
        assert status in (200, 201, 202), status


def with_checks(body: dict[str, Any]) -> dict[str, Any]:
    body["checks"] = CHECKS
    # The knowledge-base panel's series: the snapshot's build time and a maxAge.
    body["release"]["knowledgeBase"] = {"snapshot": "kb-1", "createdAt": "2026-11-01T00:00:00Z"}
    body["freshness"] = {"knowledgeBaseMaxAge": "720h"}
    return body


def substitute(expr: str, namespace: str) -> str:
    for var, value in {**SUBSTITUTIONS, "$namespace": namespace}.items():
        expr = expr.replace(var, value)
    assert "$" not in expr, expr
    return expr


def query(prometheus: Prometheus, promql: str) -> dict[str, Any]:
    url = prometheus.url + "/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return dict(json.loads(resp.read()))
    except urllib.error.HTTPError as err:  # 400: the query does not parse
        return dict(json.loads(err.read()))


def test_every_dashboard_query_parses_and_returns_series(
    rollouts: Rollouts,
    controlled_metrics: ControlledMetrics,
    kubelet: KubeletStandIn,
    operator: OperatorProcess,
    cluster: Cluster,
    prometheus: Prometheus,
    namespace: str,
    model_server: str,
    tmp_path: Path,
) -> None:
    v1 = with_checks(spec("v1"))
    v2 = with_checks(spec("v2", experts_min="1h", max_duration="2h"))
    v2["stages"][0]["gates"].append(RATIO_GATE)
    stable, candidate = f"{namespace}/bot/{rid(v1)}", f"{namespace}/bot/{rid(v2)}"
    dead = f"http://127.0.0.1:{free_port()}"  # v2 unreachable at first: its requests fall back
    router = RouterProcess(cluster, namespace, {stable: model_server, candidate: dead}, tmp_path)
    prometheus.add_target(f"{namespace}-operator", f"127.0.0.1:{operator.metrics_port}")
    prometheus.add_target(f"{namespace}-router", f"127.0.0.1:{router.metrics_port}")
    try:
        controlled_metrics.set_quality(namespace, rid(v1), 0.9)
        rollouts.create(obj("bot", v1))
        wait_for(
            lambda: phase_is(rollouts, "bot", "Promoted"),
            what="v1 promoted",
            describe=lambda: rollouts.describe("bot"),
        )
        controlled_metrics.set_quality(namespace, rid(v2), 0.9)
        rollouts.patch("bot", {"spec": v2})
        wait_for(
            lambda: rollouts.status("bot").get("exposed"),
            what="v2 exposed to experts",
            describe=lambda: rollouts.describe("bot") + operator.log_tail(),
        )
        wait_for(
            router.ready,
            timeout=30,
            what="router ready",
            describe=lambda: router.log_path.read_text(),
        )
        wait_for(lambda: rollouts.status("bot").get("gates"), what="gates evaluated")
        send_traffic(router, requests=9)  # the experts' requests fall back to stable
        router.set_backends({stable: model_server, candidate: model_server})
        time.sleep(1)  # the router re-reads its backend file every 0.2 s
        send_traffic(router)
        for ready in (
            f'llm_feedback_total{{namespace="{namespace}",source="expert"}}',
            f'llm_router_fallbacks_total{{namespace="{namespace}"}}',
            f'llm_rollout_gate_value{{namespace="{namespace}"}}',
            f'llm_rollout_gate_interval_upper{{namespace="{namespace}"}}',
            f'llm_rollout_step_max_duration_seconds{{namespace="{namespace}"}}',
        ):
            wait_for(
                lambda q=ready: prometheus.query(f"sum({q}) > 0"),
                timeout=30,
                what=f"{ready} scraped",
            )

        board = grafana.build_dashboard()
        evals_exported = bool(prometheus.query("llm_eval_score"))
        deadline = time.monotonic() + 20  # rates need a few scrapes of each new series
        while True:
            empty, broken, answered, expected_empty = [], [], 0, []
            for title, ref, expr in grafana.panel_queries(board):
                body = query(prometheus, substitute(expr, namespace))
                if body.get("status") != "success":
                    broken.append(f"{title} [{ref}]: {body.get('error')}")
                elif body["data"]["result"]:
                    answered += 1
                elif grafana.needs(title) in NEEDS_DATA_NOT_MADE_HERE and not evals_exported:
                    expected_empty.append(f"{title} [{ref}]")
                else:
                    empty.append(f"{title} [{ref}]: {substitute(expr, namespace)}")
            if broken or not empty or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert broken == [], "queries Prometheus refused:\n" + "\n".join(broken)
        print(f"no data, as expected without eval runs: {expected_empty}")
        assert empty == [], "queries without series:\n" + "\n".join(empty)
        print(f"{answered} dashboard queries answered with series")

        for annotation in board["annotations"]["list"][1:]:
            body = query(prometheus, substitute(annotation["expr"], namespace))
            assert body.get("status") == "success", (annotation["name"], body)
        decisions = query(
            prometheus, substitute(board["annotations"]["list"][1]["expr"], namespace)
        )
        assert decisions["data"]["result"], "the Start/Advance decisions show as annotations"

        rules = yaml.safe_load(
            (REPO_ROOT / "charts/llm-rollout-operator/files/alerts.yaml").read_text()
        )
        for rule in rules["groups"][0]["rules"]:
            body = query(prometheus, rule["expr"])
            assert body.get("status") == "success", (rule["alert"], body)
    finally:
        prometheus.remove_target(f"{namespace}-operator")
        prometheus.remove_target(f"{namespace}-router")
        router.stop()


def test_the_dashboard_is_a_valid_grafana_dashboard_model() -> None:
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "hack" / "grafana-check.sh"), *(str(p) for p in grafana.OUTPUTS)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(": valid") == len(grafana.OUTPUTS)

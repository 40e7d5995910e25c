"""The operator's analyses and decisions, read back from the bed's real trace backend
(Phoenix), and what the operator does when the backend is down or misconfigured.

A real operator process, configured only by the standard OTEL_* variables, rolls back
a regressed release on the real bed (kube-apiserver, etcd, Prometheus)."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from tests.conftest import Cluster, Prometheus
from tests.integration.support import ControlledMetrics, Rollouts, running_operator, wait_for
from tests.integration.test_operator_rollout import phase_is, rid, spec, start_stable

from llm_rollout.testbed.kubelet import KubeletStandIn
from llm_rollout.testbed.procs import free_port
from llm_rollout.testbed.traces import PROJECT_ATTRIBUTE, TraceBackend


def otel_env(endpoint: str, project: str) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_RESOURCE_ATTRIBUTES": f"{PROJECT_ATTRIBUTE}={project}",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "OTEL_BSP_EXPORT_TIMEOUT": "2000",
    }


def named(spans: list[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    return [s for s in spans if s["name"].startswith(prefix)]


def operator_metric(port: int, line_start: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start)
    )


def test_a_rollback_is_one_trace_with_its_analyses_gates_and_decision(
    cluster: Cluster,
    prometheus: Prometheus,
    crd: None,
    rollouts: Rollouts,
    controlled_metrics: ControlledMetrics,
    kubelet: KubeletStandIn,
    namespace: str,
    tmp_path: Path,
    trace_backend: TraceBackend,
) -> None:
    project = f"op-{uuid.uuid4().hex[:10]}"
    env = otel_env(trace_backend.url, project)
    with running_operator(cluster, prometheus, namespace, tmp_path, env=env) as op:
        start_stable(rollouts, controlled_metrics, namespace)
        bad = spec("v3-regressed")
        controlled_metrics.set_quality(namespace, rid(bad), 0.5)
        rollouts.patch("bot", {"spec": bad})
        wait_for(
            lambda: phase_is(rollouts, "bot", "RolledBack"),
            timeout=60,
            what="rollback",
            describe=lambda: rollouts.describe("bot") + op.log_tail(),
        )
        uid = rollouts.get("bot")["metadata"]["uid"]
        spans = trace_backend.wait_spans(project, 1, timeout=30, name=f"rollout {rid(bad)}")
        assert "tracing analyses and decisions to" in op.log_tail(200)
    # The operator flushed what it held when it stopped: read everything now.
    spans = trace_backend.wait_spans(project, 4, timeout=30)
    [root] = named(spans, f"rollout {rid(bad)}")
    trace_id = root["context"]["trace_id"]
    mine = [s for s in spans if s["context"]["trace_id"] == trace_id]
    assert root["parent_id"] is None
    assert root["status_code"] == "ERROR" and "rolled back" in root["status_message"]
    attrs = root["attributes"]
    assert attrs["llm_rollout.release.id"] == rid(bad)
    assert attrs["llm_rollout.release.model_revision"] == "v3-regressed"
    assert attrs["llm_rollout.namespace"] == namespace and attrs["llm_rollout.deployment"] == "bot"
    assert attrs["llm_rollout.phase"] == "RolledBack"

    analyses = sorted(named(mine, "analysis experts"), key=lambda s: s["start_time"])
    assert len(analyses) >= 2  # failureLimit 2
    for analysis in analyses:
        assert analysis["parent_id"] == root["context"]["span_id"]
        [gate] = [
            e["attributes"]
            for e in analysis["events"]
            if e["attributes"].get("llm_rollout.evaluation.source") == "gate"
        ]
        assert gate["gen_ai.evaluation.name"] == "quality"
        assert gate["gen_ai.evaluation.score.label"] == "fail"
        assert gate["gen_ai.evaluation.score.value"] == 0.5
        assert "0.8" in gate["llm_rollout.gate.threshold"]
    [rollback] = named(mine, "decision Rollback")
    assert rollback["parent_id"] == analyses[-1]["context"]["span_id"]
    assert rollback["status_code"] == "ERROR"
    assert rollback["attributes"]["llm_rollout.decision.reason"] == "GateFailed"
    # The rollout's Start is in the same trace, under the root.
    [start] = named(mine, "decision Start")
    assert start["parent_id"] == root["context"]["span_id"]
    # The first release was promoted without a rollout: no trace of its own.
    assert {s["context"]["trace_id"] for s in spans} == {trace_id}
    assert uid  # the trace id is derived from it (unit tests: test_rollout_spans.py)


def test_a_dead_trace_backend_costs_rollouts_nothing_and_drops_are_counted(
    cluster: Cluster,
    prometheus: Prometheus,
    crd: None,
    rollouts: Rollouts,
    controlled_metrics: ControlledMetrics,
    kubelet: KubeletStandIn,
    namespace: str,
    tmp_path: Path,
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: every export is refused
    with running_operator(cluster, prometheus, namespace, tmp_path, env=otel_env(dead, "x")) as op:
        start_stable(rollouts, controlled_metrics, namespace)
        bad = spec("v3-regressed")
        controlled_metrics.set_quality(namespace, rid(bad), 0.5)
        rollouts.patch("bot", {"spec": bad})
        wait_for(
            lambda: phase_is(rollouts, "bot", "RolledBack"),
            timeout=60,
            what="rollback with the trace backend down",
            describe=lambda: rollouts.describe("bot") + op.log_tail(),
        )
        failed = 'llm_rollout_trace_spans_total{outcome="export_failed"}'
        wait_for(
            lambda: operator_metric(op.metrics_port, failed) >= 4,
            timeout=30,
            what="failed exports counted",
            describe=op.log_tail,
        )
        assert (
            operator_metric(op.metrics_port, 'llm_rollout_trace_spans_total{outcome="exported"}')
            == 0
        )
        assert "trace export failing" in op.log_tail(200)


def test_an_otlp_endpoint_that_is_no_url_stops_the_operator_with_the_reason(
    cluster: Cluster, tmp_path: Path
) -> None:
    result = subprocess.run(
        [
            sys.executable, "-m", "llm_rollout.cli", "operator",
            "--kubeconfig", cluster.kubeconfig, "--otlp-endpoint", "collector:4318",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "OTLP endpoint 'collector:4318' is not an http(s) URL" in result.stderr

"""Controller.reconcile, one step at a time, against an in-memory API (kube_fake.py).

The real-bed integration tests cover the same paths against a real API server; these
pin the reconciler's own logic: what it applies, in what order, and what it does
with each kind of API error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kube_fake import FakeKube

from llm_rollout.api import LLMDeploymentSpec, release_id
from llm_rollout.controller.reconcile import Controller
from llm_rollout.controller.settings import OperatorSettings
from llm_rollout.kube.errors import Conflict
from llm_rollout.metrics.providers import (
    MetricQueryError,
    MetricsProvider,
    MetricsSource,
    ProviderCache,
)

NS, NAME = "team", "bot"
T0 = datetime(2026, 12, 2, 4, 0, tzinfo=UTC)


class FixedAnswers:
    """A metrics provider that answers every query with one value (no backend)."""

    name = "fixed"

    def __init__(self, value: float) -> None:
        self.value = value
        self.queries: list[str] = []

    async def query_many(
        self, promqls: Sequence[str], *, at: datetime | None = None
    ) -> list[float | MetricQueryError]:
        self.queries.extend(promqls)
        return [self.value for _ in promqls]

    async def aclose(self) -> None:
        pass


def spec(revision: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "release": {
            "model": {"name": "m", "revision": revision},
            "template": {"spec": {"containers": [{"name": "app", "image": "a:1"}]}},
        },
        "metrics": [{"name": "quality", "query": "vector(1)"}],
        "analysis": {"interval": "10s"},
        "stages": [
            {
                "name": "experts",
                "cohorts": ["experts"],
                "minDuration": "10s",
                "maxDuration": "5m",
                "gates": [{"name": "q", "kind": "Threshold", "metric": "quality", "min": 0.5}],
            }
        ],
    }
    body.update(changes)
    return body


def rid(body: dict[str, Any]) -> str:
    return release_id(LLMDeploymentSpec.model_validate(body))


class Bench:
    def __init__(self, **settings: Any) -> None:
        self.kube = FakeKube()
        self.answers = FixedAnswers(0.9)

        def build(source: MetricsSource, timeout: float) -> MetricsProvider:
            return self.answers

        self.controller = Controller(
            kube=self.kube,
            settings=OperatorSettings(**settings),
            providers=ProviderCache(build=build),
        )

    def create(self, body: dict[str, Any]) -> None:
        self.kube.put(
            {
                "apiVersion": "rollout.llmops.io/v1alpha1",
                "kind": "LLMDeployment",
                "metadata": {"name": NAME, "namespace": NS},
                "spec": body,
            }
        )

    def respec(self, body: dict[str, Any]) -> None:
        obj = self.kube.find("LLMDeployment", NS, NAME)
        assert obj is not None
        obj["spec"] = body
        obj["metadata"]["generation"] += 1
        self.kube.put(obj)

    def step(self, seconds: float) -> float | None:
        return asyncio.run(self.controller.reconcile(NS, NAME, now=T0 + timedelta(seconds=seconds)))

    def status(self) -> dict[str, Any]:
        obj = self.kube.find("LLMDeployment", NS, NAME)
        assert obj is not None
        return dict(obj.get("status") or {})

    def candidate_ready(self, candidate: dict[str, Any]) -> None:
        """Release 1 promoted, then `candidate` applied and its pods ready (t = 0..1)."""
        self.create(spec("1"))
        self.step(0)
        self.ready(rid(spec("1")))
        self.respec(candidate)
        self.step(1)
        self.ready(rid(candidate))

    def ready(self, release: str) -> None:
        """Stand in for the kubelet: the release's Deployment is available."""
        dep = self.kube.find("Deployment", NS, f"{NAME}-{release}")
        assert dep is not None
        dep["status"] = {
            "observedGeneration": dep["metadata"]["generation"],
            "availableReplicas": dep["spec"]["replicas"],
        }


def test_a_first_release_is_applied_and_promoted() -> None:
    bench = Bench()
    bench.create(spec("1"))
    assert bench.step(0) is None  # nothing to do until something changes
    s = bench.status()
    assert s["phase"] == "Promoted" and s["stable"]["id"] == rid(spec("1"))
    dep = bench.kube.find("Deployment", NS, f"{NAME}-{rid(spec('1'))}")
    assert dep is not None and dep["metadata"]["labels"]["rollout.llmops.io/role"] == "stable"
    assert bench.kube.find("Service", NS, f"{NAME}-{rid(spec('1'))}") is not None
    assert [e["reason"] for e in bench.kube.events] == ["Promote"]


def test_a_spec_that_does_not_parse_is_invalid_and_nothing_is_applied() -> None:
    bench = Bench()
    bench.create({"release": {"model": {"name": "m"}}, "stages": "not a list"})
    bench.step(0)
    s = bench.status()
    assert s["phase"] == "Invalid" and "spec.stages" in s["message"]
    assert bench.kube.of_kind("Deployment") == []


def test_a_rejected_deployment_fails_the_release_and_keeps_stable() -> None:
    bench = Bench()
    bench.create(spec("1"))
    bench.step(0)
    bench.kube.reject["Deployment"] = "spec.template.spec.containers[0].image: Required value"
    bench.respec(spec("2"))
    bench.step(5)
    s = bench.status()
    assert s["phase"] == "Failed" and s["candidate"]["id"] == rid(spec("2"))
    assert "containers[0].image: Required value" in s["message"]
    assert bench.kube.events[-1]["reason"] == "Fail" and bench.kube.events[-1]["warning"]


def test_a_stale_status_write_raises_conflict_and_writes_nothing() -> None:
    bench = Bench()
    bench.create(spec("1"))
    bench.kube.conflict_once = True
    with pytest.raises(Conflict):
        bench.step(0)
    assert bench.status() == {} and bench.kube.events == []
    bench.step(0)  # the handler decides again on the fresh object
    assert bench.status()["phase"] == "Promoted"


def test_a_rollout_queries_metrics_and_advances_to_promotion() -> None:
    bench = Bench()
    bench.candidate_ready(spec("2"))
    t, requeue = 1.0, bench.step(2)
    while bench.status()["phase"] == "Progressing" and t < 60:
        assert requeue is not None
        t += requeue
        requeue = bench.step(t)
    s = bench.status()
    assert s["phase"] == "Promoted" and s["stable"]["id"] == rid(spec("2"))
    assert any("quality" in q or "vector(1)" in q for q in bench.answers.queries)
    roles = {
        d["metadata"]["labels"]["rollout.llmops.io/release"]: d["metadata"]["labels"][
            "rollout.llmops.io/role"
        ]
        for d in bench.kube.of_kind("Deployment")
    }
    assert roles == {rid(spec("1")): "retired", rid(spec("2")): "stable"}


def test_mesh_routing_is_applied_and_a_switch_removes_it() -> None:
    bench = Bench()
    bench.kube.unserved.clear()
    body = spec("1", routing={"provider": "istio"})
    bench.create(body)
    bench.step(0)
    assert bench.kube.find("VirtualService", NS, NAME) is not None
    assert bench.status()["routingProvider"] == "istio"
    bench.respec(spec("1", routing={"provider": "gateway-api"}))
    bench.step(1)
    assert bench.kube.find("VirtualService", NS, NAME) is None
    assert bench.kube.find("HTTPRoute", NS, NAME) is not None
    writes = len(bench.kube.writes)
    bench.step(2)  # no switch: nothing deleted again
    assert ("delete", "VirtualService", NAME) not in bench.kube.writes[writes:]


def test_a_superseded_release_is_scaled_down_then_deleted() -> None:
    bench = Bench(scale_down_delay=60, retention=120)
    bench.create(spec("1"))
    bench.step(0)
    bench.respec(spec("2"))
    bench.step(1)
    bench.respec(spec("3"))  # supersedes 2
    bench.step(2)
    old = f"{NAME}-{rid(spec('2'))}"
    assert bench.kube.find("Deployment", NS, old) is not None
    bench.step(70)
    dep = bench.kube.find("Deployment", NS, old)
    assert dep is not None and dep["spec"]["replicas"] == 0
    bench.step(130)
    assert bench.kube.find("Deployment", NS, old) is None
    assert bench.kube.find("Service", NS, old) is None


def test_rbac_that_forbids_deleting_old_routes_is_logged_not_fatal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bench = Bench()
    bench.kube.unserved.clear()
    bench.kube.forbidden_delete = {"HTTPRoute", "VirtualService"}
    bench.create(spec("1"))
    with caplog.at_level("WARNING", logger="llm_rollout.operator"):
        bench.step(0)
    assert bench.status()["phase"] == "Promoted"  # the rollout is not held up
    assert "not allowed to delete VirtualService bot" in caplog.text
    assert "grant the operator delete on virtualservices" in caplog.text


def _release_applies(bench: Bench) -> list[tuple[str, str, str]]:
    return [w for w in bench.kube.writes if w[0] == "apply" and w[1] in ("Deployment", "Service")]


def test_an_unchanged_release_is_not_applied_every_tick() -> None:
    bench = Bench()
    bench.create(spec("1"))
    bench.step(0)  # applied as the candidate, promoted at once
    bench.step(10)  # applied again: its role is now stable
    first = len(_release_applies(bench))
    bench.step(20)
    bench.step(25)
    assert len(_release_applies(bench)) == first  # nothing changed: nothing applied

    # Someone deleted the Deployment: the next tick puts it back.
    dep = f"{NAME}-{rid(spec('1'))}"
    del bench.kube.objects[("apps/v1", "Deployment", NS, dep)]
    bench.step(30)
    assert bench.kube.find("Deployment", NS, dep) is not None
    after_delete = len(_release_applies(bench))
    assert after_delete > first

    # A hand edit is not seen in the listing; the periodic re-apply puts it right.
    bench.step(60)
    assert len(_release_applies(bench)) == after_delete
    bench.step(30 + 301)
    assert len(_release_applies(bench)) > after_delete


def _lag_buckets(bench: Bench) -> tuple[float, float]:
    """(count, sum) of the operator's analysis-lag histogram."""
    samples = {
        s.name: s.value
        for m in bench.controller.metrics.registry.collect()
        if m.name == "llm_rollout_analysis_lag_seconds"
        for s in m.samples
    }
    return samples["llm_rollout_analysis_lag_seconds_count"], samples[
        "llm_rollout_analysis_lag_seconds_sum"
    ]


def test_how_late_an_analysis_starts_is_measured() -> None:
    bench = Bench()
    soaking = spec("2")
    soaking["stages"][0]["minDuration"] = "2m"  # gates pass, the step holds
    bench.candidate_ready(soaking)
    bench.step(2)  # exposed: the step starts, its first analysis is due at 12
    assert _lag_buckets(bench) == (0, 0)
    bench.step(12)  # on time
    assert _lag_buckets(bench) == (1, 0)
    bench.step(12 + 10 + 25)  # an operator that woke 25 s late
    assert bench.status()["phase"] == "Progressing"
    assert _lag_buckets(bench) == (2, pytest.approx(25.0))


def test_calls_that_analyse_nothing_record_no_lag() -> None:
    # A candidate whose pods never become ready: every call is "due", none analyses.
    waiting = Bench()
    waiting.create(spec("1"))
    waiting.step(0)
    waiting.ready(rid(spec("1")))
    waiting.respec(spec("2"))
    for t in (1, 60, 120, 180):
        waiting.step(t)
    assert waiting.status()["phase"] == "Progressing"
    assert _lag_buckets(waiting) == (0, 0)

    # Rolled back (a failing gate): later calls analyse nothing either.
    failing = Bench()
    failing.answers.value = 0.1  # under the gate's min of 0.5
    failing.candidate_ready(spec("2"))
    t = 2.0
    while failing.status()["phase"] == "Progressing" and t < 300:
        t += 10
        failing.step(t)
    assert failing.status()["phase"] == "RolledBack"
    analyses = _lag_buckets(failing)[0]
    assert analyses >= 1
    for later in (t + 60, t + 120, t + 180):
        failing.step(later)
    assert _lag_buckets(failing)[0] == analyses

"""Sound gates on the real bed: the evidence is the step's own counts, read through the
real Prometheus's increase() over the range since the step began, and a split of users
the routing does not explain holds the rollout.

The counters are the router's own metric names, served by a scrape target the test
controls (so the test, not a simulated user, decides each count)."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import Counter
from prometheus_client.parser import text_string_to_metric_families
from tests.conftest import Cluster, Prometheus
from tests.integration.support import (
    OperatorProcess,
    Rollouts,
    ScrapeTarget,
    operator_for,
    wait_for,
)

from llm_rollout.api import LLMDeploymentSpec, release_id
from llm_rollout.testbed.kubelet import KubeletStandIn

NAME = "gated"
THUMBS = {"name": "thumbs-up", "kind": "Ratio", "metric": "feedback-positive-rate", "min": 0.7}


class RouterCounters(ScrapeTarget):
    """llm_feedback_total and llm_router_assignments_total, as the router exports them."""

    def __init__(self, prometheus: Prometheus, target: str) -> None:
        super().__init__(prometheus, target)
        labels = ["namespace", "deployment", "release", "cohort"]
        self.feedback = Counter(
            "llm_feedback",
            "Accepted feedback.",
            [*labels, "source", "rating"],
            registry=self.registry,
        )
        self.assignments = Counter(
            "llm_router_assignments", "Units placed.", labels, registry=self.registry
        )
        self.totals: dict[tuple[str, str, str, str], int] = {}

    def prime(self, namespace: str, release: str) -> None:
        # Series present at 0 before any count, as the router primes them: increase()
        # cannot see the first increment of a series that appears with it.
        for cohort in ("experts", "beta", "everyone"):
            for rating in ("positive", "negative"):
                self.feedback.labels(namespace, NAME, release, cohort, "user", rating)
            self.assignments.labels(namespace, NAME, release, cohort)
        for metric, series in (("llm_feedback_total", 6), ("llm_router_assignments_total", 3)):
            self.prometheus.wait_value(
                f'count({metric}{{namespace="{namespace}",release="{release}"}}) == {series}'
            )

    def add_feedback(
        self, namespace: str, release: str, cohort: str, *, positive: int, negative: int
    ) -> None:
        for rating, n in (("positive", positive), ("negative", negative)):
            self.feedback.labels(namespace, NAME, release, cohort, "user", rating).inc(n)
        self._scraped("llm_feedback_total", namespace, release, cohort, positive + negative)

    def add_assignments(self, namespace: str, release: str, cohort: str, units: int) -> None:
        self.assignments.labels(namespace, NAME, release, cohort).inc(units)
        self._scraped("llm_router_assignments_total", namespace, release, cohort, units)

    def _scraped(self, metric: str, namespace: str, release: str, cohort: str, added: int) -> None:
        """Wait until Prometheus has scraped the counts (the operator must see them)."""
        key = (metric, namespace, release, cohort)
        self.totals[key] = self.totals.get(key, 0) + added
        selector = (
            f'{metric}{{namespace="{namespace}",deployment="{NAME}",'
            f'release="{release}",cohort="{cohort}"}}'
        )
        self.prometheus.wait_value(f"sum({selector}) == {self.totals[key]}")


@pytest.fixture
def counters(prometheus: Prometheus, namespace: str) -> Iterator[RouterCounters]:
    with RouterCounters(prometheus, f"counters-{namespace}") as target:
        yield target


def spec(revision: str, **analysis: Any) -> dict[str, Any]:
    return {
        "release": {
            "model": {"name": "assistant", "revision": revision},
            "template": {"spec": {"containers": [{"name": "app", "image": "app:1"}]}},
        },
        "analysis": {"interval": "1s", "window": "30s", **analysis},
        "stages": [
            {
                "name": "experts",
                "cohorts": ["experts"],
                "minDuration": "3s",
                "maxDuration": "90s",
                "gates": [THUMBS],
            },
            {
                "name": "beta",
                "cohorts": ["beta"],
                "steps": [50, 100],
                "minDuration": "3s",
                "maxDuration": "90s",
                "gates": [THUMBS],
            },
        ],
    }


def rid(body: dict[str, Any]) -> str:
    return release_id(LLMDeploymentSpec.model_validate(body))


def obj(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "rollout.llmops.io/v1alpha1",
        "kind": "LLMDeployment",
        "metadata": {"name": NAME},
        "spec": body,
    }


def start_rollout(
    rollouts: Rollouts, counters: RouterCounters, namespace: str, **analysis: Any
) -> str:
    v1, v2 = spec("v1", **analysis), spec("v2", **analysis)
    counters.prime(namespace, rid(v1))
    counters.prime(namespace, rid(v2))
    rollouts.create(obj(v1))
    wait_for(lambda: rollouts.status(NAME).get("phase") == "Promoted", what="v1 stable")
    rollouts.patch(NAME, {"spec": v2})
    wait_for(
        lambda: rollouts.status(NAME).get("exposed") is True,
        timeout=30,
        what="v2 exposed to experts",
        describe=lambda: rollouts.describe(NAME),
    )
    return rid(v2)


def gate(rollouts: Rollouts) -> dict[str, Any]:
    gates = rollouts.status(NAME).get("gates") or [{}]
    return dict(gates[0])


@pytest.fixture(params=["batched", "unbatched"])
def either_operator(
    cluster: Cluster,
    prometheus: Prometheus,
    crd: None,
    namespace: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[OperatorProcess]:
    """The operator with batched analysis (the default) and without: the same rollout
    must get the same decisions and the same gate values either way."""
    extra = [] if request.param == "batched" else ["--no-batch-analysis"]
    yield from operator_for(request, cluster, prometheus, namespace, tmp_path, extra)


def test_each_step_judges_its_own_evidence_only(
    rollouts: Rollouts,
    counters: RouterCounters,
    kubelet: KubeletStandIn,
    either_operator: OperatorProcess,
    namespace: str,
) -> None:
    candidate = start_rollout(rollouts, counters, namespace)
    # The experts are delighted: 300 thumbs up of 300.
    counters.add_feedback(namespace, candidate, "experts", positive=300, negative=0)
    wait_for(
        lambda: rollouts.status(NAME).get("stage") == "beta",
        timeout=30,
        what="experts passed",
        describe=lambda: rollouts.describe(NAME),
    )
    advance = [h for h in rollouts.status(NAME)["history"] if h["decision"] == "Advance"][-1]
    assert "all gates pass at stage experts" in advance["message"]

    # At beta the experts' 300 counts are the previous step's: they must not pass it.
    # With no beta feedback yet, the gate sees no samples however long it waits.
    wait_for(
        lambda: (
            gate(rollouts).get("samples") == 0
            and rollouts.status(NAME).get("lastAnalysisTime", "") > advance["time"]
        ),
        timeout=20,
        what="beta analysed",
        describe=lambda: rollouts.describe(NAME),
    )
    wait_for(
        lambda: (
            "Inconclusive" in rollouts.status(NAME)["message"]
            or "inconclusive" in rollouts.status(NAME)["message"]
        ),
        timeout=10,
        what="holding at beta",
        describe=lambda: rollouts.describe(NAME),
    )
    status = rollouts.status(NAME)
    assert (status["stage"], status["stepPercent"], status["phase"]) == ("beta", 50, "Progressing")
    assert gate(rollouts)["verdict"] == "Inconclusive"

    # Beta users dislike it: the step's own evidence rolls it back, whatever the
    # experts said.
    counters.add_feedback(namespace, candidate, "beta", positive=10, negative=90)
    wait_for(
        lambda: rollouts.status(NAME).get("phase") == "RolledBack",
        timeout=30,
        what="rolled back at beta",
        describe=lambda: rollouts.describe(NAME),
    )
    status = rollouts.status(NAME)
    assert status["stage"] == "beta"
    last = status["history"][-1]
    assert (last["decision"], last["reason"]) == ("Rollback", "GateFailed")
    g = status["gates"][0]
    assert g["verdict"] == "Fail" and 95 <= g["samples"] <= 110  # beta's 100, not 400
    assert g["interval"][1] < 0.7 and "confidence sequence" in g["threshold"]
    sent = queries_sent(either_operator)
    if "--no-batch-analysis" in either_operator.argv:
        assert set(sent) == {"single"}
    else:  # every count answered from grouped queries and the step's baselines
        assert sent["grouped"] > 0 and sent["baseline"] > 0 and "single" not in sent


def queries_sent(operator: OperatorProcess) -> dict[str, float]:
    """llm_rollout_prometheus_queries_total by form, from the operator's /metrics."""
    url = f"http://127.0.0.1:{operator.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    sent: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "llm_rollout_prometheus_queries":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    sent[sample.labels["form"]] = sample.value
    return sent


def test_a_split_of_users_the_routing_does_not_explain_holds_then_pauses(
    rollouts: Rollouts,
    counters: RouterCounters,
    kubelet: KubeletStandIn,
    operator: OperatorProcess,
    namespace: str,
) -> None:
    candidate = start_rollout(rollouts, counters, namespace, errorLimit=3)
    counters.add_feedback(namespace, candidate, "experts", positive=300, negative=0)
    wait_for(
        lambda: rollouts.status(NAME).get("stage") == "beta",
        timeout=30,
        what="experts passed",
        describe=lambda: rollouts.describe(NAME),
    )
    stable = rollouts.status(NAME)["stable"]["id"]
    time.sleep(3)  # the check counts from two analysis intervals into the step
    # Beta at 50%, but the router placed 100 users on the candidate and 400 on stable.
    counters.add_assignments(namespace, candidate, "beta", 100)
    counters.add_assignments(namespace, stable, "beta", 400)
    counters.add_feedback(namespace, candidate, "beta", positive=300, negative=0)
    wait_for(
        lambda: rollouts.status(NAME).get("phase") == "Paused",
        timeout=30,
        what="paused on the mismatch",
        describe=lambda: rollouts.describe(NAME),
    )
    status = rollouts.status(NAME)
    check = status["sampleRatio"]
    assert check["verdict"] == "Error" and check["expected"] == 0.5
    assert 95 <= check["candidate"] <= 110 and 380 <= check["stable"] <= 440
    reasons = [h["reason"] for h in status["history"]]
    assert "SampleRatioMismatch" in reasons
    assert "the routing promises 50%" in status["message"]
    assert status["stepPercent"] == 50  # it did not advance on evidence it cannot trust

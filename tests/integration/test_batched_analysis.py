"""Batched analysis against the bed's real Prometheus: for rollouts whose steps began at
different times, the grouped queries give each rollout exactly the answer of its own
query, including the cases only its own query can settle (a counter reset, series
gone stale, no series at all), with far fewer queries.

The counters are the router's metric names, on a scrape target the test controls;
the queries are what `plan_queries` plans for each rollout's status."""

from __future__ import annotations

import asyncio
import time
from collections import Counter as Tally
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from prometheus_client import Counter
from tests.conftest import Prometheus
from tests.integration.support import ScrapeTarget

from llm_rollout.api import LLMDeploymentSpec, LLMDeploymentStatus, Phase, release_id
from llm_rollout.api.routing_table import ReleaseInfo
from llm_rollout.engine import MetricQuery, plan_queries
from llm_rollout.metrics.providers import (
    AnalysisBatcher,
    MetricQueryError,
    PrometheusProvider,
)

pytestmark = pytest.mark.integration

STABLE = "stable0001"
LABELS = ["namespace", "deployment", "release", "cohort"]
SPEC = LLMDeploymentSpec.model_validate(
    {
        "release": {
            "model": {"name": "assistant", "revision": "v2"},
            "template": {"spec": {"containers": [{"name": "app", "image": "app:1"}]}},
        },
        "analysis": {"interval": "1s", "window": "30s"},
        "stages": [
            {"name": "experts", "cohorts": ["experts"], "minDuration": "1s"},
            {
                "name": "beta",
                "cohorts": ["beta"],
                "steps": [50, 100],
                "minDuration": "1s",
                "gates": [
                    {
                        "name": "thumbs",
                        "kind": "Compare",
                        "metric": "feedback-positive-rate",
                        "margin": 0.1,
                    },
                    {"name": "errors", "kind": "Ratio", "metric": "error-rate", "max": 0.1},
                ],
            },
        ],
    }
)
CANDIDATE = release_id(SPEC)


class Counters(ScrapeTarget):
    """llm_feedback_total, llm_router_requests_total and llm_router_assignments_total."""

    def __init__(self, prometheus: Prometheus, target: str) -> None:
        super().__init__(prometheus, target)
        self.feedback = Counter(
            "llm_feedback", "Feedback.", [*LABELS, "source", "rating"], registry=self.registry
        )
        self.requests = Counter(
            "llm_router_requests", "Requests.", [*LABELS, "code"], registry=self.registry
        )
        self.assignments = Counter(
            "llm_router_assignments", "Units.", LABELS, registry=self.registry
        )

    def add(self, ns: str, name: str, release: str, cohort: str, n: int) -> None:
        """n answers: feedback (3 in 4 positive), requests (1 in 10 a 500), n units."""
        good = n * 3 // 4
        self.feedback.labels(ns, name, release, cohort, "user", "positive").inc(good)
        self.feedback.labels(ns, name, release, cohort, "user", "negative").inc(n - good)
        self.requests.labels(ns, name, release, cohort, "200").inc(n - n // 10)
        self.requests.labels(ns, name, release, cohort, "500").inc(n // 10)
        self.assignments.labels(ns, name, release, cohort).inc(n)

    def remove(self, ns: str, name: str, release: str, cohort: str) -> None:
        for rating in ("positive", "negative"):
            self.feedback.remove(ns, name, release, cohort, "user", rating)
        for code in ("200", "500"):
            self.requests.remove(ns, name, release, cohort, code)
        self.assignments.remove(ns, name, release, cohort)

    def scraped(self, promql: str) -> None:
        self.prometheus.wait_value(promql)


@pytest.fixture
def counters(prometheus: Prometheus, namespace: str) -> Iterator[Counters]:
    with Counters(prometheus, f"batch-{namespace}") as target:
        yield target


def status(started: datetime) -> LLMDeploymentStatus:
    """A rollout at beta's 50% step, its evidence counted from `started`."""
    return LLMDeploymentStatus(
        phase=Phase.PROGRESSING,
        stable=ReleaseInfo(id=STABLE),
        candidate=ReleaseInfo(id=CANDIDATE),
        release=CANDIDATE,
        stage_index=1,
        stage="beta",
        step_index=0,
        step_percent=50,
        exposed=True,
        step_start_time=started,
    )


def shown(result: float | MetricQueryError) -> object:
    return (result.kind, result.message) if isinstance(result, MetricQueryError) else result


async def answers(
    prometheus: Prometheus, queries: list[MetricQuery], at: datetime, *, batching: bool
) -> tuple[list[object], Tally[str]]:
    sent: Tally[str] = Tally()
    provider = PrometheusProvider(prometheus.url, timeout=10)
    batcher = AnalysisBatcher(
        provider, batching=batching, count_query=lambda form: sent.update([form])
    )
    try:
        results = await batcher.observe(queries, at=at)
    finally:
        await batcher.aclose()
        await provider.aclose()
    return [shown(r) for r in results], sent


def test_each_rollout_gets_exactly_its_own_querys_answer(
    prometheus: Prometheus, counters: Counters, namespace: str
) -> None:
    ns_a, ns_b = f"{namespace}-a", f"{namespace}-b"
    plain = [(ns_a, "bot-0"), (ns_a, "bot-1"), (ns_b, "bot-0"), (ns_b, "bot-2")]
    reset, stale, silent = (ns_a, "bot-reset"), (ns_b, "bot-stale"), (ns_b, "bot-silent")
    live = [*plain, reset, stale]
    for ns, name in live:  # series at 0 first, as the router primes them
        for release in (CANDIDATE, STABLE):
            for cohort in ("experts", "beta", "everyone"):
                counters.add(ns, name, release, cohort, 0)
    counters.scraped(f'count(llm_router_assignments_total{{namespace=~"{namespace}-.*"}}) == 36')

    starts: dict[tuple[str, str], datetime] = {}
    for i, key in enumerate([*live, silent]):  # each step began at its own time
        for release in (CANDIDATE, STABLE):
            for cohort in ("experts", "beta", "everyone"):
                if key != silent:
                    counters.add(*key, release, cohort, 7 + i)
        time.sleep(1.2)
        starts[key] = datetime.now(UTC)
        time.sleep(0.3)
    for i, key in enumerate(live):
        for release in (CANDIDATE, STABLE):
            for cohort in ("experts", "beta"):
                counters.add(*key, release, cohort, 40 + 5 * i)
    # A router restarted within bot-reset's step (its counters start again at 0), and
    # bot-stale's router went away (its series end).
    for release in (CANDIDATE, STABLE):
        for cohort in ("experts", "beta", "everyone"):
            counters.remove(*reset, release, cohort)
            counters.add(*reset, release, cohort, 3)
            counters.remove(*stale, release, cohort)
    total = sum(
        (7 + i) * 6 + (40 + 5 * i) * 4 for i, key in enumerate(plain)
    )  # every unit of the plain rollouts
    counters.scraped(
        f'sum(llm_router_assignments_total{{namespace=~"{namespace}-.*",'
        f'deployment!~"bot-reset|bot-stale"}}) == {total}'
    )
    time.sleep(2.5)  # bot-stale's series are marked stale by the scrapes that miss them

    for delay in (0.0, 1.0):
        at = datetime.fromtimestamp(int(time.time()) - 1 + delay, UTC)
        queries = [
            q
            for key, started in starts.items()
            for q in plan_queries(SPEC, status(started), key[0], key[1], now=at)
        ]
        assert all(q.count is not None for q in queries)  # every one is a preset count
        batched, sent_batched = asyncio.run(answers(prometheus, queries, at, batching=True))
        unbatched, sent_unbatched = asyncio.run(answers(prometheus, queries, at, batching=False))

        assert batched == unbatched
        by_rollout = {
            key: [
                a
                for q, a in zip(queries, batched, strict=True)
                if q.count is not None and (q.count.namespace, q.count.deployment) == key
            ]
            for key in starts
        }
        # The evidence of each step, not the counts before it: bot-1 (i = 1) has
        # 45 units per cohort and release since its step began, of experts and beta.
        first = plan_queries(SPEC, status(starts[plain[1]]), *plain[1], now=at)
        values = dict(zip((q.key for q in first), by_rollout[plain[1]], strict=True))
        assert values["@sample-ratio/candidate"] == 45.0  # beta only: the step's cohort
        assert values["thumbs/feedback-positive-rate/candidate/total"] == 90.0
        assert all(isinstance(a, tuple) and a[0].value == "empty" for a in by_rollout[silent])
        assert sent_unbatched == Tally({"single": len(queries)})
        # 3 grouped queries per counter and selector (5 of them), a baseline per count,
        # and their own query only for the reset and stale rollouts.
        own = sum(1 for q in queries if q.count and q.count.deployment in {reset[1], stale[1]})
        assert sent_batched["grouped"] == 15
        assert sent_batched["single"] == own
        assert sent_batched["baseline"] == sum(
            1 for q in queries if q.count and (q.count.namespace, q.count.deployment) in plain
        )
        # The restarted router's counts: its own query's increase(), a real number.
        assert all(isinstance(a, float) for a in by_rollout[reset])

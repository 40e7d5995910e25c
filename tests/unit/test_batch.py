"""Batched count queries (metrics/batch.py, pure) and the AnalysisBatcher's batching:
which grouped queries a batch sends, each rollout's share of the answers, and when
only the rollout's own query can answer. The answers equal the rollouts' own queries'
on the real Prometheus: tests/integration/test_batched_analysis.py."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

from engine_support import at, started

from llm_rollout.api.spec import Gate
from llm_rollout.engine import ObservationErrorKind, plan_queries
from llm_rollout.metrics.batch import (
    Answer,
    CountSince,
    Part,
    Rows,
    fan_out,
    grouped_queries,
)
from llm_rollout.metrics.batch import rows as batch_rows
from llm_rollout.metrics.providers import AnalysisBatcher, MetricQueryError

AT = 1_700_000_000.0  # in the past: the batcher waits for a future `at`


def count(name: str = "bot", release: str = "r1", window: int = 60, **kw: object) -> CountSince:
    fields: dict[str, object] = {
        "metric": "llm_feedback_total",
        "shared": 'rating="positive"',
        "namespace": "team",
        "deployment": name,
        "release": release,
        "cohorts": ("experts", "beta"),
        "window_seconds": window,
        "baseline": f"baseline-{name}-{release}",
        "start": AT - window,
    }
    fields.update(kw)
    return CountSince(**fields)  # type: ignore[arg-type]


def test_grouped_queries_select_every_rollout_of_the_batch_once() -> None:
    queries = grouped_queries(
        [count("a"), count("b.c", window=30), count("a", release="r2", window=90)]
    )
    by = "by (namespace, deployment, release, cohort)"
    selector = 'llm_feedback_total{namespace=~"team",deployment=~"a|b\\\\.c",rating="positive"}'
    assert queries.current == f"sum {by} ({selector})"
    assert queries.resets == f"sum {by} (resets({selector}[90s]))"  # the longest range
    assert queries.last_sample == f"max {by} (timestamp({selector}))"


def rows(**per_cohort: float) -> Rows:
    own = [({"release": "r1", "cohort": c}, v) for c, v in per_cohort.items()]
    others = [
        ({"release": "r2", "cohort": "experts"}, 1e3),  # another release
        ({"deployment": "other", "release": "r1", "cohort": "beta"}, 1e3),  # another rollout
        ({"release": "r1", "cohort": "everyone"}, 1e3),  # a cohort not exposed
    ]
    return batch_rows(
        ({"namespace": "team", "deployment": "bot", **labels}, v) for labels, v in own + others
    )


def test_fan_out_sums_the_rollouts_own_series() -> None:
    answers = {
        Part.CURRENT: rows(experts=30.0, beta=12.0),
        Part.RESETS: rows(experts=0.0, beta=0.0),
        Part.LAST_SAMPLE: rows(experts=AT - 1, beta=AT - 2),
    }
    assert fan_out(count(), AT, answers) == 42.0


def test_fan_out_defers_to_the_own_query_where_it_cannot_prove_the_answer() -> None:
    fine = {
        Part.CURRENT: rows(experts=30.0),
        Part.RESETS: rows(experts=0.0),
        Part.LAST_SAMPLE: rows(experts=AT - 1),
    }
    assert fan_out(count(), AT, fine) == 30.0
    # No sample in the longest range: none in its own, so its query is empty.
    assert fan_out(count(), AT, {**fine, Part.RESETS: rows()}) is Answer.EMPTY
    # A counter reset: its query answers with increase().
    assert fan_out(count(), AT, {**fine, Part.RESETS: rows(experts=1.0)}) is Answer.OWN_QUERY
    # Series gone stale (not in the instant vector) but in the range.
    stale = {**fine, Part.CURRENT: rows(), Part.LAST_SAMPLE: rows()}
    assert fan_out(count(), AT, stale) is Answer.OWN_QUERY
    # The last sample is older than its own range: R over it would be empty.
    old = {**fine, Part.LAST_SAMPLE: rows(experts=AT - 60)}
    assert fan_out(count(window=60), AT, old) is Answer.OWN_QUERY
    assert fan_out(count(window=61), AT, old) == 30.0


def test_plan_marks_preset_counts_batchable_and_user_queries_not() -> None:
    d = started(metrics=[{"name": "quality", "query": "vector(1)"}])
    d.spec = d.spec.model_copy(
        update={
            "stages": [
                d.spec.stages[0].model_copy(
                    update={
                        "gates": [
                            *d.spec.stages[0].gates,
                            Gate.model_validate(
                                {"name": "q", "kind": "Threshold", "metric": "quality", "min": 0.5}
                            ),
                        ]
                    }
                ),
                *d.spec.stages[1:],
            ]
        }
    )
    queries = plan_queries(d.spec, d.status, "team", "bot", now=at(30))
    counted = [q for q in queries if q.count is not None]
    assert [q.gate for q in queries if q.count is None] == ["q"]  # user PromQL: as written
    assert counted and all(q.part.value in ("success", "total") for q in counted)
    assert all(q.count.deployment == "bot" for q in counted if q.count)
    assert all("@" in q.count.baseline for q in counted if q.count)
    evidence = d.status.evidence_start_time or d.status.step_start_time
    assert evidence is not None
    assert all(q.count.start == evidence.timestamp() for q in counted if q.count)


class FakePrometheus:
    """A fake metrics backend for the batcher's own logic: grouped answers from a table,
    every query recorded. (Real answers: the integration test.)"""

    name = "fake"

    def __init__(self) -> None:
        self.vectors: list[str] = []
        self.singles: list[str] = []
        self.fail_grouped: MetricQueryError | None = None

    async def query_many(
        self, promqls: Sequence[str], *, at: datetime | None = None
    ) -> list[float | MetricQueryError]:
        self.singles.extend(promqls)
        return [5.0 if p.startswith("baseline") else 99.0 for p in promqls]

    async def query_vector(
        self, promql: str, *, at: datetime | None = None
    ) -> list[tuple[dict[str, str], float]]:
        self.vectors.append(promql)
        if self.fail_grouped is not None:
            raise self.fail_grouped
        assert at is not None
        value = 0.0 if "resets" in promql else at.timestamp() if "timestamp" in promql else 20.0
        return [
            ({"namespace": "team", "deployment": d, "release": "r1", "cohort": "experts"}, value)
            for d in ("a", "b", "c")
        ]

    async def aclose(self) -> None:
        pass


def query(name: str, window: int = 60) -> object:
    from llm_rollout.engine.types import MetricQuery, Part, Role

    return MetricQuery(
        key="g/m/candidate/total",  # the same key in every rollout's plan
        promql=f"own-{name}",
        gate="g",
        metric="m",
        role=Role.CANDIDATE,
        part=Part.TOTAL,
        count=count(name, window=window),
    )


def test_rollouts_analysed_at_the_same_time_share_one_batch() -> None:
    backend = FakePrometheus()
    moment = datetime.fromtimestamp(AT, UTC)

    async def run() -> list[list[float | MetricQueryError]]:
        batcher = AnalysisBatcher(backend, settle=0.01)
        answers = await asyncio.gather(
            *(batcher.observe([query(n)], at=moment) for n in ("a", "b", "c"))  # type: ignore[list-item]
        )
        again = await batcher.observe([query("a")], at=moment)  # type: ignore[list-item]
        return [*answers, again]

    a, b, c, again = asyncio.run(run())
    assert a == b == c == again == [20.0 - 5.0]  # A - B for each rollout
    assert len(backend.vectors) == 3 + 3  # one batch of three rollouts, then one of one
    # Baselines are asked once per step and count: settled (the step began 60 s
    # before), so the second analysis reuses the first's.
    assert sorted(p for p in backend.singles if p.startswith("baseline")) == [
        "baseline-a-r1",
        "baseline-b-r1",
        "baseline-c-r1",
    ]
    assert not [p for p in backend.singles if p.startswith("own")]


def test_a_failed_grouped_query_fails_every_rollout_of_the_batch_alike() -> None:
    backend = FakePrometheus()
    backend.fail_grouped = MetricQueryError(ObservationErrorKind.TIMEOUT, "no answer in 5s")
    moment = datetime.fromtimestamp(AT, UTC)

    async def run() -> list[list[float | MetricQueryError]]:
        batcher = AnalysisBatcher(backend, settle=0.01)
        return list(
            await asyncio.gather(
                *(batcher.observe([query(n)], at=moment) for n in ("a", "b"))  # type: ignore[list-item]
            )
        )

    for [answer] in asyncio.run(run()):
        assert isinstance(answer, MetricQueryError)
        assert answer.kind is ObservationErrorKind.TIMEOUT
    assert backend.singles == []  # not retried one by one against a struggling server


def test_unbatched_asks_every_query_as_written() -> None:
    backend = FakePrometheus()
    moment = datetime.fromtimestamp(AT, UTC)

    async def run() -> list[float | MetricQueryError]:
        batcher = AnalysisBatcher(backend, batching=False)
        return await batcher.observe([query("a"), query("b")], at=moment)  # type: ignore[list-item]

    assert asyncio.run(run()) == [99.0, 99.0]
    assert backend.singles == ["own-a", "own-b"] and backend.vectors == []

"""Helpers for the engine tests: specs, explicit clocks, observations, a small driver."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from llm_rollout.api import (
    ConditionType,
    LLMDeploymentSpec,
    LLMDeploymentStatus,
    ManualAction,
    release_id,
)
from llm_rollout.engine import (
    Decision,
    MetricQuery,
    Observation,
    ObservationError,
    ObservationErrorKind,
    Part,
    decide,
    plan_queries,
)

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
NS, NAME = "team", "assistant"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


FB_GATE = {
    "name": "feedback",
    "kind": "Ratio",
    "metric": "feedback-positive-rate",
    "min": 0.6,
    "minSamples": 50,
}


def spec_dict(revision: str = "1", **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "release": {"model": {"name": "llama", "revision": revision}},
        "stages": [
            {
                "name": "experts",
                "cohorts": ["experts"],
                "minDuration": "1m",
                "maxDuration": "10m",
                "gates": [FB_GATE],
            },
            {
                "name": "beta",
                "cohorts": ["beta"],
                "steps": [50, 100],
                "minDuration": "1m",
                "maxDuration": "10m",
                "gates": [FB_GATE],
            },
            {
                "name": "all",
                "cohorts": ["everyone"],
                "steps": [10, 50],
                "minDuration": "1m",
                "maxDuration": "10m",
                "gates": [FB_GATE],
            },
        ],
        "analysis": {"interval": "30s", "failureLimit": 2, "errorLimit": 3},
    }
    base.update(overrides)
    return base


def make_spec(revision: str = "1", **overrides: Any) -> LLMDeploymentSpec:
    return LLMDeploymentSpec.model_validate(spec_dict(revision, **overrides))


def respec(spec: LLMDeploymentSpec, **changes: Any) -> LLMDeploymentSpec:
    """The spec with top-level fields replaced (wire names), re-validated."""
    raw = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    raw.update(changes)
    return LLMDeploymentSpec.model_validate(raw)


def with_revision(spec: LLMDeploymentSpec, revision: str) -> LLMDeploymentSpec:
    raw = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    raw["release"]["model"]["revision"] = revision
    return LLMDeploymentSpec.model_validate(raw)


ObsFn = Callable[[MetricQuery], Observation]


def ratio(success: float, total: float) -> ObsFn:
    def fn(q: MetricQuery) -> Observation:
        if q.gate == "@sample-ratio":  # no assignment counts (test_engine_sample_ratio has them)
            return ObservationError(ObservationErrorKind.EMPTY, "no series")
        if q.part is Part.SUCCESS:
            return success
        if q.part is Part.TOTAL:
            return total
        return success / total if total else ObservationError(ObservationErrorKind.NAN)

    return fn


GOOD = ratio(95, 100)  # Wilson low ~0.89: passes min 0.6
BAD = ratio(20, 100)  # Wilson high ~0.29: fails min 0.6
UNSURE = ratio(7, 10)  # below minSamples: inconclusive


def broken(kind: ObservationErrorKind = ObservationErrorKind.UNREACHABLE) -> ObsFn:
    return lambda q: ObservationError(kind, "connection refused")


def observe(
    spec: LLMDeploymentSpec, status: LLMDeploymentStatus, fn: ObsFn, now: datetime
) -> dict[str, Observation]:
    return {q.key: fn(q) for q in plan_queries(spec, status, NS, NAME, now=now)}


class Driver:
    """Runs decide() against a clock, feeding each call the status the last one produced."""

    def __init__(
        self,
        spec: LLMDeploymentSpec,
        status: LLMDeploymentStatus | None = None,
        *,
        now: float = 0.0,
        ready: set[str] | None = None,
    ) -> None:
        self.spec = spec
        self.status = status if status is not None else LLMDeploymentStatus()
        self.t = now
        self.ready = ready if ready is not None else set()
        self.generation = 1
        self.decisions: list[Decision] = []

    def call(
        self,
        dt: float = 0.0,
        fn: ObsFn | None = None,
        action: ManualAction | None = None,
    ) -> Decision:
        self.t += dt
        observations = observe(self.spec, self.status, fn or GOOD, at(self.t))
        d = decide(
            self.spec,
            self.status,
            now=at(self.t),
            name=NAME,
            generation=self.generation,
            observations=observations,
            ready_releases=frozenset(self.ready),
            action=action,
        )
        self.status = d.status
        self.decisions.append(d)
        return d

    def apply(self, spec: LLMDeploymentSpec, *, ready: bool = True) -> None:
        """A spec change (generation bump); the new release's pods ready or not."""
        self.spec = spec
        self.generation += 1
        if ready:
            self.ready.add(release_id(spec))

    def percents(self) -> dict[str, int]:
        assert self.status.routing is not None
        return {r.cohort: r.candidate_percent for r in self.status.routing.routes}


def started(revision_from: str = "1", revision_to: str = "2", **overrides: Any) -> Driver:
    """A driver whose stable is `revision_from` and whose candidate `revision_to` is exposed
    at the first stage (ready), at t=0."""
    first = make_spec(revision_from, **overrides)
    d = Driver(first, ready={release_id(first)}, now=-100)
    d.call()
    d.apply(with_revision(first, revision_to))
    d.t = 0
    d.call()
    assert d.status.exposed, d.decisions[-1]
    return d


def cond(status: LLMDeploymentStatus, t: ConditionType) -> tuple[str, str]:
    """(status, reason) of a condition that must be there."""
    c = status.condition(t)
    assert c is not None
    return c.status.value, c.reason

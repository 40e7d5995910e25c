"""Drives the real engine as Controller.reconcile does, answering its queries from promsim.

Per call: if analysis_due(): plan_queries() (with now= when the engine takes it), answer
each query at `now`, then decide(); the status becomes decision.status and the next call
comes decision.requeue_after seconds later. A rollout ends at Promote or Rollback, or when
requeue_after is None (e.g. paused: metrics unavailable), or at a call cap.

Imports llm_rollout at import time: callers set sys.path first (see __main__).
"""

from __future__ import annotations

import inspect
import math
import multiprocessing
import time
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from bench.soundness import traffic
from bench.soundness.cells import Cell
from bench.soundness.promsim import Empty, Multiple, Prometheus

from llm_rollout.api import LLMDeploymentSpec, LLMDeploymentStatus, release_id
from llm_rollout.engine import (
    MetricQuery,
    Observation,
    ObservationError,
    ObservationErrorKind,
    Outcome,
    analysis_due,
    decide,
    plan_queries,
)

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
PLAN_TAKES_NOW = "now" in inspect.signature(plan_queries).parameters
MAX_CALLS = 20_000
# Parts whose value counts the observations behind a gate's metric (the largest, for
# cumulative score buckets: le="5.0").
COUNT_PARTS = ("total", "samples", "count", "bucket")


@dataclass(frozen=True)
class Settings:
    seed: int = 20250101
    scrape: traffic.Scrape = field(default_factory=traffic.Scrape)
    left_open: bool = False  # Prometheus 3.x range selection


@dataclass
class Result:
    outcome: str  # Promote, Rollback, or the last outcome when the rollout stopped otherwise
    reason: str
    seconds: float  # since the candidate was exposed
    looks: int  # calls that queried Prometheus
    samples: dict[str, float | None]  # per gate, candidate's count at the last look


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _plan(
    spec: LLMDeploymentSpec,
    status: LLMDeploymentStatus,
    now: datetime,
) -> list[MetricQuery]:
    extra: dict[str, Any] = {"now": now} if PLAN_TAKES_NOW else {}
    return plan_queries(spec, status, traffic.NAMESPACE, traffic.NAME, **extra)


def observe(prom: Prometheus, promql: str, t: float) -> Observation:
    """What Controller._observe hands the engine for one query (parse_instant_vector)."""
    value = prom.answer(promql, t)
    if isinstance(value, Empty):
        return ObservationError(
            ObservationErrorKind.EMPTY, "the query returned no series (no data in the window?)"
        )
    if isinstance(value, Multiple):
        return ObservationError(
            ObservationErrorKind.MULTIPLE_SERIES,
            f"the query returned {value.count} series, expected one",
        )
    if math.isnan(value) or math.isinf(value):
        return ObservationError(
            ObservationErrorKind.NAN, f"the query returned {value} (division by zero: no samples?)"
        )
    return value


def _samples(
    queries: list[MetricQuery],
    obs: Mapping[str, Observation],
) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for q in queries:
        if str(q.role) != "candidate" or str(q.part) not in COUNT_PARTS:
            continue
        value = obs.get(q.key)
        number = value if isinstance(value, float) else 0.0
        out[q.gate] = max(out.get(q.gate) or 0.0, number)
    return out


def run_rollout(cell: Cell, index: int, settings: Settings) -> Result:
    rng = np.random.default_rng([settings.seed, zlib.crc32(cell.name.encode()), index])
    old = LLMDeploymentSpec.model_validate(cell.spec("1"))
    spec = LLMDeploymentSpec.model_validate(cell.spec("2"))
    stable_id, candidate_id = release_id(old), release_id(spec)
    ready = frozenset({stable_id, candidate_id})
    common: dict[str, Any] = {"name": traffic.NAME}
    if "namespace" in inspect.signature(decide).parameters:  # engines before 2026-12-02
        common["namespace"] = traffic.NAMESPACE
    first = decide(
        old,
        LLMDeploymentStatus(),
        now=at(-100),
        generation=1,
        observations={},
        ready_releases=frozenset({stable_id}),
        **common,
    )
    d = decide(
        spec, first.status, now=at(0), generation=2, observations={}, ready_releases=ready, **common
    )
    if not d.status.exposed:
        raise RuntimeError(f"{cell.name}: candidate not exposed at start: {d.message}")
    stage = spec.stages[0]
    horizon = (stage.max_seconds or 3600.0) + 3 * spec.analysis.interval_seconds
    prom = traffic.build(
        rng,
        cell.traffic,
        settings.scrape,
        candidate=candidate_id,
        stable=stable_id,
        percent=cell.percent,
        horizon=horizon,
        left_open=settings.left_open,
        epoch=T0.timestamp(),
    )
    status, t, looks = d.status, 0.0, 0
    samples: dict[str, float | None] = {}
    for _ in range(MAX_CALLS):
        if d.requeue_after is None:
            break
        t += d.requeue_after
        if t > horizon:
            raise RuntimeError(f"{cell.name}: rollout still running at {t:.0f}s: {d.message}")
        now = at(t)
        observations: dict[str, Observation] = {}
        if analysis_due(spec, status, now):
            queries = _plan(spec, status, now)
            if queries:
                looks += 1
                observations = {q.key: observe(prom, q.promql, t) for q in queries}
                samples = _samples(queries, observations)
        d = decide(
            spec,
            status,
            now=now,
            generation=2,
            observations=observations,
            ready_releases=ready,
            **common,
        )
        status = d.status
        if d.outcome in (Outcome.PROMOTE, Outcome.ROLLBACK):
            break
    else:
        raise RuntimeError(f"{cell.name}: no decision after {MAX_CALLS} calls: {d.message}")
    return Result(outcome=str(d.outcome), reason=d.reason, seconds=t, looks=looks, samples=samples)


def _chunk(job: tuple[Cell, range, Settings]) -> list[Result]:
    cell, indices, settings = job
    return [run_rollout(cell, i, settings) for i in indices]


def run_cell(
    cell: Cell, rollouts: int, settings: Settings, workers: int, pool: Any = None
) -> tuple[list[Result], float]:
    """Results in index order (independent of `workers`) and the wall time."""
    started = time.monotonic()
    size = max(1, min(25, rollouts // (4 * max(workers, 1)) or 1))
    jobs = [(cell, range(i, min(i + size, rollouts)), settings) for i in range(0, rollouts, size)]
    if pool is None:
        results = [r for job in jobs for r in _chunk(job)]
    else:
        results = [r for chunk in pool.imap(_chunk, jobs) for r in chunk]
    return results, time.monotonic() - started


def pool(workers: int) -> Any:
    """A fork pool (workers inherit sys.path and the imported engine), or None for 1."""
    if workers <= 1:
        return None
    return multiprocessing.get_context("fork").Pool(workers)


# --- statistics ------------------------------------------------------------------------------

Z95 = 1.959963984540054


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    z2n = z * z / n
    centre = (p + z2n / 2) / (1 + z2n)
    half = z * math.sqrt(p * (1 - p) / n + z2n / (4 * n)) / (1 + z2n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def quantiles(values: list[float]) -> dict[str, float | None]:
    """Median (with a distribution-free 95% interval from order statistics) and p90."""
    if not values:
        return {"median": None, "median_lo": None, "median_hi": None, "p90": None}
    xs = sorted(values)
    n = len(xs)
    half = Z95 * math.sqrt(n) / 2
    lo = max(0, math.floor(n / 2 - half) - 1)
    hi = min(n - 1, math.ceil(n / 2 + half))
    return {
        "median": float(np.median(xs)),
        "median_lo": xs[lo],
        "median_hi": xs[hi],
        "p90": float(np.quantile(xs, 0.9)),
    }


def summarize(cell: Cell, results: list[Result], wall: float) -> dict[str, Any]:
    n = len(results)
    promoted = [r for r in results if r.outcome == str(Outcome.PROMOTE)]
    rolled = [r for r in results if r.outcome == str(Outcome.ROLLBACK)]
    other = [r for r in results if r.outcome not in (str(Outcome.PROMOTE), str(Outcome.ROLLBACK))]
    reasons: dict[str, int] = {}
    for r in rolled:
        reasons[r.reason] = reasons.get(r.reason, 0) + 1
    others: dict[str, int] = {}
    for r in other:
        key = f"{r.outcome}/{r.reason}"
        others[key] = others.get(key, 0) + 1
    gates = sorted({g for r in promoted for g in r.samples})
    return {
        "cell": cell.name,
        "group": cell.group,
        "truth": cell.truth,
        "correct": cell.correct,
        "rollouts": n,
        "promoted": len(promoted),
        "p_promoted": len(promoted) / n if n else None,
        "p_promoted_ci": wilson(len(promoted), n),
        "rolled_back": len(rolled),
        "p_rolled_back": len(rolled) / n if n else None,
        "p_rolled_back_ci": wilson(len(rolled), n),
        "rollback_reasons": reasons,
        "other_outcomes": others,
        "seconds": quantiles([r.seconds for r in promoted + rolled]),
        "seconds_promoted": quantiles([r.seconds for r in promoted]),
        "looks": quantiles([float(r.looks) for r in results]),
        "samples_at_promotion": {
            g: quantiles([s for r in promoted if (s := r.samples.get(g)) is not None])
            for g in gates
        },
        "wall_seconds": wall,
        "spec": cell.spec("2"),
        "traffic": asdict(cell.traffic),
    }


def compact(results: list[Result]) -> Iterator[list[Any]]:
    """Per-rollout rows for the JSON file: outcome, reason, seconds, looks, samples."""
    for r in results:
        yield [
            r.outcome,
            r.reason,
            round(r.seconds, 3),
            r.looks,
            {g: None if s is None else round(s, 3) for g, s in r.samples.items()},
        ]

"""One rollout's simulated users: event streams -> the router's counter series, scraped.

Series and labels are the router's (llm_rollout/router/metrics.py, feedback handler):
- llm_router_requests_total{...,code}: every request, code "200" or "500";
- llm_router_assignments_total{...}: units placed on the release (the sample-ratio
  check's counts); here every request is its own unit, as without user ids;
- llm_feedback_total{...,source,rating}: user thumbs (positive / negative) and expert
  scores (4-5 positive, 3 neutral, 1-2 negative);
- llm_feedback_score_{bucket,sum,count}{...,source="expert",criterion="overall"}: expert
  scores 1..5, buckets le="1.0".."5.0" and "+Inf" (prometheus_client's spelling).

A counter child appears at its first event (all of a histogram child's series at once), so
the first scrape already holds that event; `primed` instead creates at 0 at exposure the
series the router primes (code 200/502, every source x rating, source x overall scores).
The stable release served the cohort alone for `history` seconds before exposure; after it,
the candidate gets `percent` of the cohort and stable the rest. Stable also serves the
unexposed cohort `everyone`, which every query must filter out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from bench.soundness.promsim import FloatArray, IntArray, Prometheus, Series

NAMESPACE, NAME = "team", "assistant"
COHORT, OTHER_COHORT = "beta", "everyone"
SCORE_BUCKETS = ("1.0", "2.0", "3.0", "4.0", "5.0", "+Inf")
PER = 30.0  # rates are given per 30 s (the default analysis interval), whatever the cadence


@dataclass(frozen=True)
class Traffic:
    """Event rates of the candidate (per 30 s) and the true parameters of both releases."""

    feedback: float = 0.0  # user thumbs per 30 s
    positive: float = 0.75  # P(thumbs up), candidate
    stable_positive: float = 0.75
    requests: float = 200.0
    errors: float = 0.005  # P(5xx), candidate
    stable_errors: float = 0.005
    experts: float = 0.0  # expert scores per 30 s
    scores: tuple[float, ...] = (0.0, 0.0, 0.0, 1.0, 0.0)  # P(score = 1..5), candidate
    stable_scores: tuple[float, ...] = (0.0, 0.0, 0.0, 1.0, 0.0)
    arrivals: str = "poisson"  # or "fixed": exactly the rate per 30 s, uniform within it


@dataclass(frozen=True)
class Scrape:
    interval: float = 1.0  # seconds
    primed: bool = False
    history: float = 900.0  # seconds of stable-only traffic before exposure
    other_cohort_factor: float = 3.0  # `everyone` traffic, in cohort-traffic units


def arrivals(
    rng: np.random.Generator, per_30s: float, t0: float, t1: float, mode: str
) -> FloatArray:
    """Sorted event times in (t0, t1] at `per_30s` events per 30 s."""
    if per_30s <= 0 or t1 <= t0:
        return np.empty(0)
    if mode == "poisson":
        n = int(rng.poisson(per_30s * (t1 - t0) / PER))
        return np.sort(rng.uniform(t0, t1, n))
    if mode != "fixed":
        raise ValueError(f"unknown arrivals mode {mode!r}")
    # A whole count per 30 s block (rounded from the rate); a cut block gets its share.
    starts = np.arange(t0, t1, PER)
    lengths = np.minimum(starts + PER, t1) - starts
    counts = np.round(per_30s * lengths / PER).astype(np.int64)
    times = np.repeat(starts, counts) + rng.uniform(0, 1, int(counts.sum())) * np.repeat(
        lengths, counts
    )
    return np.sort(times)


class _Builder:
    def __init__(self, rng: np.random.Generator, scrape: Scrape, horizon: float) -> None:
        self.rng = rng
        self.scrape = scrape
        step = round(scrape.interval * 1000)
        phase = int(rng.integers(0, step))  # where the scrape grid falls
        k0 = -int(scrape.history * 1000 // step) - 1
        k1 = int(horizon * 1000 // step) + 1
        self.grid: IntArray = phase + step * np.arange(k0, k1 + 1, dtype=np.int64)
        self.series: list[Series] = []

    def start_index(self, events_ms: FloatArray, primed_at: float | None) -> int | None:
        """Grid index of a child's first sample (None: it never exists)."""
        first = float(events_ms[0]) if len(events_ms) else None
        if primed_at is not None:
            first = min(first, primed_at * 1000) if first is not None else primed_at * 1000
        if first is None:
            return None
        return int(np.searchsorted(self.grid, first, "left"))

    def counter(
        self,
        labels: dict[str, str],
        events: FloatArray,
        start: int | None,
        weights: FloatArray | None = None,
    ) -> None:
        if start is None or start >= len(self.grid):
            return
        times = self.grid[start:]
        seen = np.searchsorted(events * 1000, times, "right")
        if weights is None:
            values = seen.astype(np.float64)
        else:
            values = np.concatenate(([0.0], np.cumsum(weights)))[seen]
        self.series.append(Series(labels, times, values))


def _marks(rng: np.random.Generator, n: int, probs: tuple[float, ...]) -> IntArray:
    """A category per event, drawn from `probs`."""
    return rng.choice(len(probs), size=n, p=np.asarray(probs) / sum(probs))


def _split(
    rng: np.random.Generator,
    times: FloatArray,
    probs: tuple[float, ...],
) -> list[FloatArray]:
    """Times per category, each event's category drawn from `probs`."""
    marks = _marks(rng, len(times), probs)
    return [times[marks == i] for i in range(len(probs))]


def _release(
    b: _Builder,
    *,
    release: str,
    cohort: str,
    windows: list[tuple[float, float, float]],
    positive: float,
    errors: float,
    scores: tuple[float, ...],
    t: Traffic,
    primed_at: float | None,
) -> None:
    """Series of one release in one cohort; `windows` are (t0, t1, share of the rates)."""
    rng, mode = b.rng, t.arrivals

    def stream(rate: float) -> FloatArray:
        parts = [arrivals(rng, rate * share, t0, t1, mode) for t0, t1, share in windows]
        return np.concatenate(parts) if parts else np.empty(0)

    dep = {"namespace": NAMESPACE, "deployment": NAME, "release": release, "cohort": cohort}
    requests = stream(t.requests)
    ok, bad = _split(rng, requests, (1 - errors, errors))
    for code, events in (("200", ok), ("500", bad), ("502", np.empty(0))):
        labels = {"__name__": "llm_router_requests_total", **dep, "code": code}
        primed = primed_at if code != "500" else None  # the router primes 200 and 502 only
        b.counter(labels, events, b.start_index(events * 1000, primed))
    labels = {"__name__": "llm_router_assignments_total", **dep}
    b.counter(labels, requests, b.start_index(requests * 1000, primed_at))
    thumbs = _split(rng, stream(t.feedback), (positive, 1 - positive))
    expert = stream(t.experts)
    values = _marks(rng, len(expert), scores).astype(np.float64) + 1.0  # score 1..5
    expert_ratings = {
        "positive": expert[values >= 4],
        "neutral": expert[values == 3],
        "negative": expert[values <= 2],
    }
    for source, ratings in (
        ("user", {"positive": thumbs[0], "negative": thumbs[1], "neutral": np.empty(0)}),
        ("expert", expert_ratings),
    ):
        for rating, events in ratings.items():
            labels = {"__name__": "llm_feedback_total", **dep, "source": source, "rating": rating}
            b.counter(labels, events, b.start_index(events * 1000, primed_at))
    if not len(expert) and primed_at is None:
        return
    # One histogram child: every bucket, _sum and _count appear together.
    start = b.start_index(expert * 1000, primed_at)
    hist = {**dep, "source": "expert", "criterion": "overall"}
    for i, le in enumerate(SCORE_BUCKETS):
        inside = expert[values <= i + 1]
        b.counter({"__name__": "llm_feedback_score_bucket", **hist, "le": le}, inside, start)
    b.counter({"__name__": "llm_feedback_score_count", **hist}, expert, start)
    b.counter({"__name__": "llm_feedback_score_sum", **hist}, expert, start, weights=values)


def build(
    rng: np.random.Generator,
    t: Traffic,
    scrape: Scrape,
    *,
    candidate: str,
    stable: str,
    percent: int,
    horizon: float,
    left_open: bool = False,
    epoch: float = 0.0,
) -> Prometheus:
    """Every series of one rollout whose candidate is exposed at time 0."""
    b = _Builder(rng, scrape, horizon)
    primed_at = 0.0 if scrape.primed else None
    whole = 100.0 / percent  # the cohort's traffic in units of the candidate's
    _release(
        b,
        release=candidate,
        cohort=COHORT,
        windows=[(0.0, horizon, 1.0)],
        positive=t.positive,
        errors=t.errors,
        scores=t.scores,
        t=t,
        primed_at=primed_at,
    )
    _release(
        b,
        release=stable,
        cohort=COHORT,
        windows=[(-scrape.history, 0.0, whole), (0.0, horizon, whole - 1.0)],
        positive=t.stable_positive,
        errors=t.stable_errors,
        scores=t.stable_scores,
        t=t,
        primed_at=-scrape.history if scrape.primed else None,
    )
    _release(
        b,
        release=stable,
        cohort=OTHER_COHORT,
        windows=[(-scrape.history, horizon, whole * scrape.other_cohort_factor)],
        positive=t.stable_positive,
        errors=t.stable_errors,
        scores=t.stable_scores,
        t=t,
        primed_at=-scrape.history if scrape.primed else None,
    )
    return Prometheus(b.series, left_open=left_open, epoch=epoch)

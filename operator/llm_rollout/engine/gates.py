"""Gate verdicts from observations: Pass, Fail, Inconclusive or Error.

Count-based metrics (ratios, score histograms) are judged on anytime-valid confidence
sequences (engine.sequential) over the whole step's evidence; value metrics (latency,
eval scores) on their value over the recent window.

Error means the metrics are broken (unreachable, bad query, several series...):
the rollout must not move on it. No data (no series, NaN) is not an error: counts
read as 0 and values as missing, so the gate is Inconclusive until data arrives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llm_rollout.api.spec import Direction, Gate, GateKind, LLMDeploymentSpec, Stage
from llm_rollout.api.status import GateResult, Verdict
from llm_rollout.engine.plan import (
    ResolvedMetric,
    gate_metrics,
    query_key,
    resolve_metric,
)
from llm_rollout.engine.sequential import Counts, difference_bounds, mean_bounds
from llm_rollout.engine.types import (
    ObservationError,
    ObservationErrorKind,
    Observations,
    Part,
    Role,
)
from llm_rollout.metrics.presets import MetricKind


def _num(x: float) -> str:
    return f"{x:.4g}"


@dataclass(frozen=True)
class _Reading:
    """What the observations say about one metric of one release."""

    error: str | None = None  # broken metrics
    value: float | None = None  # value, mean or proportion; None: no data
    counts: Counts | None = None  # count-based metrics: the step's evidence, on [0, 1]
    samples: float | None = None  # None: the metric has no sample count

    def too_few(self, min_samples: int) -> bool:
        if self.samples is None:
            return False
        return self.samples < max(min_samples, 1)


def _get(observations: Observations, key: str) -> float | ObservationError:
    obs = observations.get(key)
    if obs is None:
        return ObservationError(ObservationErrorKind.MISSING, f"no observation for {key}")
    if isinstance(obs, ObservationError):
        return obs
    if math.isnan(obs) or math.isinf(obs):
        return ObservationError(ObservationErrorKind.NAN, f"{key} is {obs}")
    return float(obs)


def _read(
    metric: ResolvedMetric,
    gate: str,
    role: Role,
    component: int | None,
    observations: Observations,
) -> _Reading:
    numbers: dict[tuple[Part, float | None], float | None] = {}
    for part, level, _template in metric.parts():
        key = query_key(gate, metric.name, role, part, component, level)
        obs = _get(observations, key)
        if isinstance(obs, ObservationError):
            if not obs.no_data:
                return _Reading(error=f"{metric.name} ({role}): {obs.kind}: {obs.message}")
            numbers[(part, level)] = None
        else:
            numbers[(part, level)] = obs
    if metric.kind is MetricKind.RATIO:
        total = max(numbers[(Part.TOTAL, None)] or 0.0, 0.0)
        successes = min(max(numbers[(Part.SUCCESS, None)] or 0.0, 0.0), total)
        counts = Counts.bernoulli(successes, total)
        return _Reading(value=counts.mean, counts=counts, samples=total)
    if metric.kind is MetricKind.SCORES:
        return _read_scores(metric, numbers)
    samples = None
    if (Part.SAMPLES, None) in numbers:
        samples = max(numbers[(Part.SAMPLES, None)] or 0.0, 0.0)
    return _Reading(value=numbers[(Part.VALUE, None)], samples=samples)


def _read_scores(
    metric: ResolvedMetric, numbers: dict[tuple[Part, float | None], float | None]
) -> _Reading:
    # Cumulative bucket counts -> a count per score. Each bucket's increase() is
    # extrapolated on its own, so a difference can dip below zero: read it as 0.
    per_score: list[tuple[float, float]] = []
    below = 0.0
    for level, _template in metric.buckets:
        cumulative = max(numbers[(Part.BUCKET, level)] or 0.0, below)
        per_score.append((level, cumulative - below))
        below = cumulative
    low, high = metric.scale
    counts = Counts.scores(low, high, per_score)
    mean = counts.mean
    value = None if mean is None else low + mean * (high - low)
    return _Reading(value=value, counts=counts, samples=counts.n)


def _bounds_text(gate: Gate, what: str = "") -> str:
    parts = []
    if gate.min_value is not None:
        parts.append(f"{what}>= {_num(gate.min_value)}")
    if gate.max_value is not None:
        parts.append(f"{what}<= {_num(gate.max_value)}")
    return " and ".join(parts)


def _within(gate: Gate, value: float) -> bool:
    return (gate.min_value is None or value >= gate.min_value) and (
        gate.max_value is None or value <= gate.max_value
    )


def _samples(x: float | None) -> int | None:
    return None if x is None else round(x)


def _fmt_interval(lo: float, hi: float) -> str:
    return f"[{_num(lo)}, {_num(hi)}]"


def direction_of(gate: Gate, metric: ResolvedMetric) -> Direction:
    if gate.direction is not None:
        return gate.direction
    return Direction.LOWER_IS_BETTER if metric.lower_is_better else Direction.HIGHER_IS_BETTER


def evaluate_gate(
    spec: LLMDeploymentSpec,
    gate: Gate,
    observations: Observations,
    previous: GateResult | None = None,
) -> GateResult:
    """The verdict of one gate (consecutiveFailures left at 0 for the caller to carry).

    `previous` is the gate's result at the step's last analysis: count-based gates
    keep the intersection of their confidence sequences, so a bound once crossed stays
    crossed (the sequence holds at every look, so their intersection does too).
    """
    base = GateResult(name=gate.name, kind=gate.kind, verdict=Verdict.INCONCLUSIVE)
    metrics: list[tuple[int | None, float, ResolvedMetric]] = []
    for index, component, name in gate_metrics(gate):
        resolved = resolve_metric(spec, name)
        if resolved is None:
            return base.model_copy(
                update={"verdict": Verdict.ERROR, "message": f"unknown metric {name}"}
            )
        metrics.append((index, component.weight if component else 1.0, resolved))
    alpha = 1.0 - spec.analysis.confidence
    metric = metrics[0][2]
    match gate.kind:
        case GateKind.THRESHOLD if metric.counted:
            return _bounded(base, gate, metric, observations, alpha, previous)
        case GateKind.THRESHOLD:
            return _threshold(base, gate, metric, observations)
        case GateKind.RATIO:
            if not metric.counted:
                return base.model_copy(
                    update={
                        "threshold": _bounds_text(gate),
                        "verdict": Verdict.ERROR,
                        "message": f"{metric.name} is not a ratio or scores metric",
                    }
                )
            return _bounded(base, gate, metric, observations, alpha, previous)
        case GateKind.COMPARE:
            return _compare(base, gate, metric, observations, alpha, previous)
        case GateKind.COMPOSITE:
            return _composite(base, gate, metrics, observations)


def _threshold(
    base: GateResult, gate: Gate, metric: ResolvedMetric, observations: Observations
) -> GateResult:
    """A value metric (latency, eval score) over the recent window, judged as it is."""
    r = _read(metric, gate.name, Role.CANDIDATE, None, observations)
    result = base.model_copy(
        update={"threshold": _bounds_text(gate), "value": r.value, "samples": _samples(r.samples)}
    )
    if r.error:
        return result.model_copy(update={"verdict": Verdict.ERROR, "message": r.error})
    if r.value is None:
        return result.model_copy(update={"message": f"no data for {metric.name}"})
    if r.too_few(gate.min_samples):
        return result.model_copy(
            update={"message": f"{_samples(r.samples)} samples, need {max(gate.min_samples, 1)}"}
        )
    ok = _within(gate, r.value)
    return result.model_copy(
        update={
            "verdict": Verdict.PASS if ok else Verdict.FAIL,
            "message": f"{metric.name} = {_num(r.value)}",
        }
    )


def _sequence_text(alpha: float) -> str:
    return f"{1 - alpha:.3g} confidence sequence"


def _kept(previous: GateResult | None, threshold: str, lo: float, hi: float) -> tuple[float, float]:
    """The running intersection with the step's previous interval for the same test."""
    if previous is None or previous.interval is None or previous.threshold != threshold:
        return lo, hi
    kept_lo, kept_hi = max(lo, previous.interval[0]), min(hi, previous.interval[1])
    # Disjoint: the sequences disagree (they miss together with probability <= 2 alpha,
    # or a counter went back); trust the current look alone rather than neither.
    return (kept_lo, kept_hi) if kept_lo <= kept_hi else (lo, hi)


def _bounded(
    base: GateResult,
    gate: Gate,
    metric: ResolvedMetric,
    observations: Observations,
    alpha: float,
    previous: GateResult | None,
) -> GateResult:
    """A count-based metric held to [min, max] on its confidence sequence.

    Pass: the lower (upper) bound clears min (max); Fail: the upper (lower) bound is on
    the wrong side. Each error has probability at most alpha, at any number of looks.
    """
    threshold = f"{metric.name} {_bounds_text(gate)} ({_sequence_text(alpha)})"
    result = base.model_copy(update={"threshold": threshold})
    r = _read(metric, gate.name, Role.CANDIDATE, None, observations)
    if r.error:
        return result.model_copy(update={"verdict": Verdict.ERROR, "message": r.error})
    assert r.counts is not None
    result = result.model_copy(update={"value": r.value, "samples": _samples(r.samples)})
    low, high = metric.scale
    span = high - low
    lo01, hi01 = mean_bounds(r.counts, alpha)
    lo, hi = _kept(previous, threshold, low + lo01 * span, low + hi01 * span)
    result = result.model_copy(update={"interval": [lo, hi]})
    if r.too_few(gate.min_samples):
        return result.model_copy(
            update={"message": f"{_samples(r.samples)} samples, need {max(gate.min_samples, 1)}"}
        )
    passes = (gate.min_value is None or lo >= gate.min_value) and (
        gate.max_value is None or hi <= gate.max_value
    )
    fails = (gate.min_value is not None and hi < gate.min_value) or (
        gate.max_value is not None and lo > gate.max_value
    )
    verdict = Verdict.PASS if passes else Verdict.FAIL if fails else Verdict.INCONCLUSIVE
    what = {
        Verdict.PASS: "clears",
        Verdict.FAIL: "is confidently outside",
        Verdict.INCONCLUSIVE: "straddles",
    }[verdict]
    value = "no data" if r.value is None else _num(r.value)
    message = (
        f"{metric.name} = {value} over {_samples(r.samples)} samples, interval "
        f"{_fmt_interval(lo, hi)} {what} the bounds"
    )
    return result.model_copy(update={"verdict": verdict, "message": message})


# A Compare gate's difference sequence is tightest where a fixed-sample test would just
# show the candidate `margin` away from the bound; with margin 0 (candidate at least as
# good as stable), at this share of the metric's range.
ZERO_MARGIN_PLANNED_GAP = 0.05


def _compare(
    base: GateResult,
    gate: Gate,
    metric: ResolvedMetric,
    observations: Observations,
    alpha: float,
    previous: GateResult | None,
) -> GateResult:
    direction = direction_of(gate, metric)
    higher = direction is Direction.HIGHER_IS_BETTER
    sign = "-" if higher else "+"
    cmp = ">=" if higher else "<="
    threshold = f"{metric.name}: candidate {cmp} stable {sign} {_num(gate.margin)}"
    if metric.counted:
        threshold += f" ({_sequence_text(alpha)} of the difference)"
    result = base.model_copy(update={"threshold": threshold})
    cand = _read(metric, gate.name, Role.CANDIDATE, None, observations)
    stab = _read(metric, gate.name, Role.STABLE, None, observations)
    if cand.error or stab.error:
        message = "; ".join(e for e in (cand.error, stab.error) if e)
        return result.model_copy(update={"verdict": Verdict.ERROR, "message": message})
    result = result.model_copy(
        update={
            "samples": _samples(cand.samples),
            "stable_samples": _samples(stab.samples),
            "stable_value": stab.value,
        }
    )
    if cand.value is None or stab.value is None:
        role = "candidate" if cand.value is None else "stable"
        return result.model_copy(
            update={"value": cand.value, "message": f"no data for {metric.name} ({role})"}
        )
    diff = cand.value - stab.value
    interval: list[float] | None = None
    if metric.counted:
        assert cand.counts is not None and stab.counts is not None
        span = metric.scale[1] - metric.scale[0]
        planned_gap = gate.margin / span if gate.margin > 0 else ZERO_MARGIN_PLANNED_GAP
        lo01, hi01 = difference_bounds(cand.counts, stab.counts, alpha, planned_gap)
        interval = list(_kept(previous, threshold, lo01 * span, hi01 * span))
        result = result.model_copy(update={"value": diff, "interval": interval})
    else:
        result = result.model_copy(update={"value": cand.value})
    for role, reading in (("candidate", cand), ("stable", stab)):
        if reading.too_few(gate.min_samples):
            return result.model_copy(
                update={
                    "message": f"{role}: {_samples(reading.samples)} samples, "
                    f"need {max(gate.min_samples, 1)}",
                }
            )
    margin = gate.margin
    if interval is not None:
        lo, hi = interval
        if higher:
            passes, fails = lo >= -margin, hi < -margin
        else:
            passes, fails = hi <= margin, lo > margin
        verdict = Verdict.PASS if passes else Verdict.FAIL if fails else Verdict.INCONCLUSIVE
        message = (
            f"candidate {_num(cand.value)} vs stable {_num(stab.value)}: difference "
            f"{_num(diff)}, interval {_fmt_interval(lo, hi)}"
        )
        return result.model_copy(update={"verdict": verdict, "message": message})
    ok = cand.value >= stab.value - margin if higher else cand.value <= stab.value + margin
    return result.model_copy(
        update={
            "verdict": Verdict.PASS if ok else Verdict.FAIL,
            "message": f"candidate {_num(cand.value)} vs stable {_num(stab.value)}",
        }
    )


def _composite(
    base: GateResult,
    gate: Gate,
    metrics: list[tuple[int | None, float, ResolvedMetric]],
    observations: Observations,
) -> GateResult:
    result = base.model_copy(update={"threshold": _bounds_text(gate, "weighted score ")})
    readings = [
        (weight, metric, _read(metric, gate.name, Role.CANDIDATE, index, observations))
        for index, weight, metric in metrics
    ]
    if errors := [r.error for _, _, r in readings if r.error]:
        return result.model_copy(update={"verdict": Verdict.ERROR, "message": "; ".join(errors)})
    for _, metric, r in readings:
        if r.value is None:
            return result.model_copy(update={"message": f"no data for {metric.name}"})
        if r.too_few(gate.min_samples):
            return result.model_copy(
                update={
                    "message": f"{metric.name}: {_samples(r.samples)} samples, "
                    f"need {max(gate.min_samples, 1)}"
                }
            )
    total_weight = sum(w for w, _, _ in readings)
    score = sum(w * (r.value or 0.0) for w, _, r in readings) / total_weight
    parts = ", ".join(f"{m.name}={_num(r.value or 0.0)}x{_num(w)}" for w, m, r in readings)
    ok = _within(gate, score)
    return result.model_copy(
        update={
            "verdict": Verdict.PASS if ok else Verdict.FAIL,
            "value": score,
            "message": f"weighted score {_num(score)} ({parts})",
        }
    )


def evaluate_stage(
    spec: LLMDeploymentSpec,
    stage: Stage,
    observations: Observations,
    previous: list[GateResult],
) -> list[GateResult]:
    """All gates of a stage, given their results at the step's previous analysis.

    A gate's failure count grows with each Fail and resets only on Pass: an
    Inconclusive or Error look in between cannot wipe out evidence of failure (with
    confidence sequences a crossed bound stays crossed anyway, so failureLimit only
    delays the rollback and cannot make a false promotion likelier).
    """
    before = {r.name: r for r in previous}
    results = []
    for gate in stage.gates:
        last = before.get(gate.name)
        r = evaluate_gate(spec, gate, observations, last)
        failures = last.consecutive_failures if last is not None else 0
        if r.verdict is Verdict.FAIL:
            failures += 1
        elif r.verdict is Verdict.PASS:
            failures = 0
        results.append(r.model_copy(update={"consecutive_failures": failures}))
    return results


Bounds = tuple[float | None, float | None]


def gate_bounds(spec: LLMDeploymentSpec, stage: Stage) -> dict[str, Bounds]:
    """(min, max) each gate of a stage holds its value to, for dashboards and pictures.

    Compare gates hold candidate minus stable to -margin (higher is better) or
    +margin (lower is better).
    """
    bounds: dict[str, Bounds] = {}
    for gate in stage.gates:
        if gate.kind is GateKind.COMPARE and gate.metric is not None:
            metric = resolve_metric(spec, gate.metric)
            if metric is not None and direction_of(gate, metric) is Direction.LOWER_IS_BETTER:
                bounds[gate.name] = (None, gate.margin)
            else:
                bounds[gate.name] = (-gate.margin, None)
        else:
            bounds[gate.name] = (gate.min_value, gate.max_value)
    return bounds

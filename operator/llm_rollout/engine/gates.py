"""Gate verdicts from observations: Pass, Fail, Inconclusive or Error.

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
from llm_rollout.engine.stats import newcombe_interval, wilson_interval
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
    value: float | None = None  # value, or proportion of a ratio; None: no data
    successes: float = 0.0
    total: float = 0.0
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
    numbers: dict[Part, float | None] = {}
    for part, _template in metric.parts():
        obs = _get(observations, query_key(gate, metric.name, role, part, component))
        if isinstance(obs, ObservationError):
            if not obs.no_data:
                return _Reading(error=f"{metric.name} ({role}): {obs.kind}: {obs.message}")
            numbers[part] = None
        else:
            numbers[part] = obs
    if metric.kind is MetricKind.RATIO:
        total = max(numbers[Part.TOTAL] or 0.0, 0.0)
        successes = min(max(numbers[Part.SUCCESS] or 0.0, 0.0), total)
        value = successes / total if total > 0 else None
        return _Reading(value=value, successes=successes, total=total, samples=total)
    samples = None
    if Part.SAMPLES in numbers:
        samples = max(numbers[Part.SAMPLES] or 0.0, 0.0)
    return _Reading(value=numbers[Part.VALUE], samples=samples)


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


def evaluate_gate(spec: LLMDeploymentSpec, gate: Gate, observations: Observations) -> GateResult:
    """The verdict of one gate (consecutiveFailures left at 0 for the caller to carry)."""
    base = GateResult(name=gate.name, kind=gate.kind, verdict=Verdict.INCONCLUSIVE)
    metrics: list[tuple[int | None, float, ResolvedMetric]] = []
    for index, component, name in gate_metrics(gate):
        resolved = resolve_metric(spec, name)
        if resolved is None:
            return base.model_copy(
                update={"verdict": Verdict.ERROR, "message": f"unknown metric {name}"}
            )
        metrics.append((index, component.weight if component else 1.0, resolved))
    confidence = spec.analysis.confidence
    match gate.kind:
        case GateKind.THRESHOLD:
            return _threshold(base, gate, metrics[0][2], observations)
        case GateKind.RATIO:
            return _ratio(base, gate, metrics[0][2], observations, confidence)
        case GateKind.COMPARE:
            return _compare(base, gate, metrics[0][2], observations, confidence)
        case GateKind.COMPOSITE:
            return _composite(base, gate, metrics, observations)


def _threshold(
    base: GateResult, gate: Gate, metric: ResolvedMetric, observations: Observations
) -> GateResult:
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


def _ratio(
    base: GateResult,
    gate: Gate,
    metric: ResolvedMetric,
    observations: Observations,
    confidence: float,
) -> GateResult:
    threshold = f"{_bounds_text(gate)} ({confidence:.0%} Wilson interval)"
    result = base.model_copy(update={"threshold": threshold})
    if metric.kind is not MetricKind.RATIO:
        return result.model_copy(
            update={"verdict": Verdict.ERROR, "message": f"{metric.name} is not a ratio metric"}
        )
    r = _read(metric, gate.name, Role.CANDIDATE, None, observations)
    if r.error:
        return result.model_copy(update={"verdict": Verdict.ERROR, "message": r.error})
    result = result.model_copy(update={"value": r.value, "samples": _samples(r.total)})
    if r.too_few(gate.min_samples):
        return result.model_copy(
            update={"message": f"{_samples(r.total)} samples, need {max(gate.min_samples, 1)}"}
        )
    lo, hi = wilson_interval(r.successes, r.total, confidence)
    result = result.model_copy(update={"interval": [lo, hi]})
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
    message = (
        f"{metric.name} = {_num(r.value or 0.0)}, interval {_fmt_interval(lo, hi)} "
        f"{what} the bounds"
    )
    return result.model_copy(update={"verdict": verdict, "message": message})


def _compare(
    base: GateResult,
    gate: Gate,
    metric: ResolvedMetric,
    observations: Observations,
    confidence: float,
) -> GateResult:
    direction = direction_of(gate, metric)
    higher = direction is Direction.HIGHER_IS_BETTER
    sign = "-" if higher else "+"
    cmp = ">=" if higher else "<="
    threshold = f"candidate {cmp} stable {sign} {_num(gate.margin)}"
    if metric.kind is MetricKind.RATIO:
        threshold += f" ({confidence:.0%} Newcombe interval of the difference)"
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
    for role, reading in (("candidate", cand), ("stable", stab)):
        if reading.too_few(gate.min_samples):
            return result.model_copy(
                update={
                    "value": cand.value,
                    "message": f"{role}: {_samples(reading.samples)} samples, "
                    f"need {max(gate.min_samples, 1)}",
                }
            )
    margin = gate.margin
    if metric.kind is MetricKind.RATIO:
        lo, hi = newcombe_interval(
            cand.successes, cand.total, stab.successes, stab.total, confidence
        )
        diff = cand.value - stab.value
        if higher:
            passes, fails = lo >= -margin, hi < -margin
        else:
            passes, fails = hi <= margin, lo > margin
        verdict = Verdict.PASS if passes else Verdict.FAIL if fails else Verdict.INCONCLUSIVE
        message = (
            f"candidate {_num(cand.value)} vs stable {_num(stab.value)}: difference "
            f"{_num(diff)}, interval {_fmt_interval(lo, hi)}"
        )
        return result.model_copy(
            update={"verdict": verdict, "value": diff, "interval": [lo, hi], "message": message}
        )
    ok = cand.value >= stab.value - margin if higher else cand.value <= stab.value + margin
    return result.model_copy(
        update={
            "verdict": Verdict.PASS if ok else Verdict.FAIL,
            "value": cand.value,
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
    """All gates of a stage, carrying each gate's consecutive-failure count by name."""
    before = {r.name: r.consecutive_failures for r in previous}
    results = []
    for gate in stage.gates:
        r = evaluate_gate(spec, gate, observations)
        failures = before.get(gate.name, 0) + 1 if r.verdict is Verdict.FAIL else 0
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

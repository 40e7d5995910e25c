"""Which PromQL queries the current stage's gates need, fully rendered."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from llm_rollout.api.durations import format_duration
from llm_rollout.api.spec import Gate, GateComponent, GateKind, LLMDeploymentSpec, Stage, release_id
from llm_rollout.api.status import LLMDeploymentStatus, Phase
from llm_rollout.engine.types import MetricQuery, Part, Role
from llm_rollout.metrics.presets import PRESETS, MetricKind
from llm_rollout.metrics.promql import TemplateError, TemplateValues, render


@dataclass(frozen=True)
class ResolvedMetric:
    """A metric by name: the user's definition, else the preset."""

    name: str
    kind: MetricKind
    query: str = ""
    success: str = ""
    total: str = ""
    samples: str = ""
    lower_is_better: bool = False
    parameter_defaults: Mapping[str, str] = field(default_factory=dict)

    def parts(self) -> list[tuple[Part, str]]:
        if self.kind is MetricKind.RATIO:
            return [(Part.SUCCESS, self.success), (Part.TOTAL, self.total)]
        parts = [(Part.VALUE, self.query)]
        return [*parts, (Part.SAMPLES, self.samples)] if self.samples else parts


def resolve_metric(spec: LLMDeploymentSpec, name: str) -> ResolvedMetric | None:
    if (user := spec.metric(name)) is not None:
        ratio = user.ratio
        return ResolvedMetric(
            name=name,
            kind=user.kind,
            query=user.query or "",
            success=ratio.success if ratio else "",
            total=ratio.total if ratio else "",
            samples=user.samples or "",
            lower_is_better=user.lower_is_better,
        )
    if (preset := PRESETS.get(name)) is None:
        return None
    return ResolvedMetric(
        name=name,
        kind=preset.kind,
        query=preset.query,
        success=preset.success,
        total=preset.total,
        samples=preset.samples,
        lower_is_better=preset.lower_is_better,
        parameter_defaults=preset.parameter_defaults,
    )


def current_stage(spec: LLMDeploymentSpec, status: LLMDeploymentStatus) -> Stage | None:
    if 0 <= status.stage_index < len(spec.stages):
        return spec.stages[status.stage_index]
    return None


def exposed_cohorts(spec: LLMDeploymentSpec, stage_index: int) -> tuple[str, ...]:
    """Cohorts stages 0..stage_index expose (cumulative), in order, without repeats."""
    seen: dict[str, None] = {}
    for stage in spec.stages[: stage_index + 1]:
        seen.update(dict.fromkeys(stage.cohorts))
    return tuple(seen)


def earlier_cohorts(spec: LLMDeploymentSpec, stage_index: int) -> frozenset[str]:
    """Cohorts fully exposed by the stages before `stage_index`."""
    return frozenset(exposed_cohorts(spec, stage_index - 1)) if stage_index > 0 else frozenset()


def query_key(gate: str, metric: str, role: Role, part: Part, component: int | None = None) -> str:
    where = metric if component is None else f"{component}.{metric}"
    return f"{gate}/{where}/{role}/{part}"


def _parameters(
    metric: ResolvedMetric, gate: Gate, component: GateComponent | None
) -> tuple[str | None, str | None]:
    source = component if component is not None else gate
    suite = source.suite or metric.parameter_defaults.get("suite")
    criterion = source.criterion or metric.parameter_defaults.get("criterion")
    return suite, criterion


def gate_metrics(gate: Gate) -> list[tuple[int | None, GateComponent | None, str]]:
    """(component index, component, metric name) of each metric a gate reads."""
    if gate.kind is GateKind.COMPOSITE:
        return [(i, c, c.metric) for i, c in enumerate(gate.components)]
    assert gate.metric is not None  # guaranteed by Gate's validator
    return [(None, None, gate.metric)]


def gate_roles(gate: Gate) -> tuple[Role, ...]:
    return (Role.CANDIDATE, Role.STABLE) if gate.kind is GateKind.COMPARE else (Role.CANDIDATE,)


def exposed_stage(spec: LLMDeploymentSpec, status: LLMDeploymentStatus) -> Stage | None:
    """The current stage while a rollout progresses with its candidate exposed there (and
    no newer release pending in the spec); None otherwise."""
    stage = current_stage(spec, status)
    if (
        status.phase is not Phase.PROGRESSING
        or not status.exposed
        or status.candidate is None
        or status.stable is None
        or stage is None
        or status.candidate.id != release_id(spec)
    ):
        return None
    return stage


def plan_queries(
    spec: LLMDeploymentSpec, status: LLMDeploymentStatus, namespace: str, name: str
) -> list[MetricQuery]:
    """The queries of the current stage's gates, for the next analysis.

    Empty when no analysis can happen: no rollout in progress, paused, candidate not
    yet exposed, a newer release in the spec (the rollout restarts first), or a
    stage without gates.
    """
    stage = exposed_stage(spec, status)
    if stage is None:
        return []
    assert status.candidate is not None and status.stable is not None
    releases = {Role.CANDIDATE: status.candidate.id, Role.STABLE: status.stable.id}
    cohorts = exposed_cohorts(spec, status.stage_index)
    window = format_duration(spec.analysis.window_seconds)
    queries: list[MetricQuery] = []
    for gate in stage.gates:
        for index, component, metric_name in gate_metrics(gate):
            metric = resolve_metric(spec, metric_name)
            if metric is None:
                continue  # validate_semantics reports it
            suite, criterion = _parameters(metric, gate, component)
            for role in gate_roles(gate):
                values = TemplateValues(
                    namespace=namespace,
                    name=name,
                    release=releases[role],
                    stable_release=status.stable.id,
                    cohorts=cohorts,
                    window=window,
                    suite=suite,
                    criterion=criterion,
                )
                for part, template in metric.parts():
                    try:
                        promql = render(template, values)
                    except TemplateError:
                        continue  # validate_semantics reports it
                    queries.append(
                        MetricQuery(
                            key=query_key(gate.name, metric_name, role, part, index),
                            promql=promql,
                            gate=gate.name,
                            metric=metric_name,
                            role=role,
                            part=part,
                            component=index,
                        )
                    )
    return queries

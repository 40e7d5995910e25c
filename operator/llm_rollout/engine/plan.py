"""Which PromQL queries the current stage's gates need, fully rendered.

Count queries (ratio and scores metrics) cover the time since the step's evidence
began, so a gate judges all of the step's evidence and none of the previous step's;
value queries (latency, eval scores) cover the recent `analysis.window`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from llm_rollout.api.durations import format_duration
from llm_rollout.api.spec import Gate, GateComponent, GateKind, LLMDeploymentSpec, Stage, release_id
from llm_rollout.api.status import LLMDeploymentStatus, Phase
from llm_rollout.engine.types import MetricQuery, Part, Role
from llm_rollout.metrics.batch import CountSince
from llm_rollout.metrics.names import ASSIGNMENTS
from llm_rollout.metrics.presets import COUNT_FORMS, PRESETS, MetricKind, live_count
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
    buckets: tuple[tuple[float, str], ...] = ()
    lower_is_better: bool = False
    parameter_defaults: Mapping[str, str] = field(default_factory=dict)

    @property
    def counted(self) -> bool:
        """Whether the metric is counts judged with confidence sequences over the step."""
        return self.kind in (MetricKind.RATIO, MetricKind.SCORES)

    @property
    def scale(self) -> tuple[float, float]:
        """The range of the values: [0, 1] for proportions, the score scale for scores."""
        if self.kind is MetricKind.SCORES:
            return self.buckets[0][0], self.buckets[-1][0]
        return 0.0, 1.0

    def parts(self) -> list[tuple[Part, float | None, str]]:
        """(part, score level or None, PromQL template) of each query the metric needs."""
        if self.kind is MetricKind.RATIO:
            return [(Part.SUCCESS, None, self.success), (Part.TOTAL, None, self.total)]
        if self.kind is MetricKind.SCORES:
            return [(Part.BUCKET, le, template) for le, template in self.buckets]
        parts: list[tuple[Part, float | None, str]] = [(Part.VALUE, None, self.query)]
        return [*parts, (Part.SAMPLES, None, self.samples)] if self.samples else parts


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
        buckets=preset.buckets,
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


def query_key(
    gate: str,
    metric: str,
    role: Role,
    part: Part,
    component: int | None = None,
    level: float | None = None,
) -> str:
    where = metric if component is None else f"{component}.{metric}"
    what = part.value if level is None else f"{part.value}:{level:g}"
    return f"{gate}/{where}/{role}/{what}"


def evidence_start(status: LLMDeploymentStatus) -> datetime | None:
    return status.evidence_start_time or status.step_start_time


def _whole_seconds_since(start: datetime | None, now: datetime) -> int:
    """Rounded down (nothing from before `start` leaks into a range), at least 1."""
    if start is None:
        return 1
    return max(math.floor((now - start).total_seconds()), 1)


def evidence_seconds(status: LLMDeploymentStatus, now: datetime) -> int:
    """Whole seconds since the step's evidence began: the range of count queries."""
    return _whole_seconds_since(evidence_start(status), now)


def _timestamp(moment: datetime | None) -> str:
    return "0" if moment is None else f"{moment.timestamp():.3f}"


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


SAMPLE_RATIO_GATE = "@sample-ratio"  # not a valid gate name: cannot collide with a gate's
_ASSIGNMENTS_QUERY = live_count(ASSIGNMENTS)


def sample_ratio_key(role: Role) -> str:
    return f"{SAMPLE_RATIO_GATE}/{role}"


def sample_ratio_share(spec: LLMDeploymentSpec, status: LLMDeploymentStatus) -> float | None:
    """The candidate share of the current stage's own cohorts the step promises, when
    the sample-ratio check applies (a partial step of an analysed stage), else None."""
    stage = exposed_stage(spec, status)
    if stage is None or not stage.gates or not spec.analysis.sample_ratio_check:
        return None
    percent = stage.percents[min(status.step_index, len(stage.percents) - 1)]
    return percent / 100 if 0 < percent < 100 else None


def sample_ratio_since(spec: LLMDeploymentSpec, status: LLMDeploymentStatus) -> datetime | None:
    """When the sample-ratio check starts counting: two analysis intervals into the
    step, so the routers have switched to the step's routing and Prometheus has scraped
    their counters in it (else the last scrape before the step, at the old split,
    would count as a mismatch)."""
    start = evidence_start(status)
    if start is None:
        return None
    return start + timedelta(seconds=2 * spec.analysis.interval_seconds)


def _sample_ratio_queries(
    spec: LLMDeploymentSpec,
    status: LLMDeploymentStatus,
    namespace: str,
    name: str,
    now: datetime,
) -> list[MetricQuery]:
    stage = exposed_stage(spec, status)
    since = sample_ratio_since(spec, status)
    if stage is None or since is None or sample_ratio_share(spec, status) is None:
        return []
    if now <= since:
        return []
    window = f"{_whole_seconds_since(since, now)}s"
    assert status.candidate is not None and status.stable is not None
    queries = []
    for role, release in ((Role.CANDIDATE, status.candidate.id), (Role.STABLE, status.stable.id)):
        values = TemplateValues(
            namespace=namespace,
            name=name,
            release=release,
            stable_release=status.stable.id,
            cohorts=tuple(stage.cohorts),  # the step's percentage applies to these only
            window=window,
            start=_timestamp(since),
        )
        queries.append(
            MetricQuery(
                key=sample_ratio_key(role),
                promql=render(_ASSIGNMENTS_QUERY, values),
                gate=SAMPLE_RATIO_GATE,
                metric=ASSIGNMENTS,
                role=role,
                part=Part.TOTAL,
                count=_count_since(_ASSIGNMENTS_QUERY, values, name, since),
            )
        )
    return queries


def _count_since(
    template: str, values: TemplateValues, name: str, start: datetime | None
) -> CountSince | None:
    """The batchable form of a count query built by presets.live_count (None for any
    other template: user PromQL is asked as written)."""
    form = COUNT_FORMS.get(template)
    if form is None or start is None:
        return None
    subs = values.substitutions()
    return CountSince(
        metric=form.metric,
        shared=render(form.shared, subs),
        namespace=values.namespace,
        deployment=name,
        release=values.release,
        cohorts=values.cohorts,
        window_seconds=int(values.window.removesuffix("s")),
        baseline=render(form.baseline, subs),
        start=start.timestamp(),
    )


def plan_queries(
    spec: LLMDeploymentSpec,
    status: LLMDeploymentStatus,
    namespace: str,
    name: str,
    *,
    now: datetime,
) -> list[MetricQuery]:
    """The queries of the current stage's gates, for an analysis at `now` (the caller
    evaluates them at that time).

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
    evidence = f"{evidence_seconds(status, now)}s"
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
                    window=evidence if metric.counted else window,
                    suite=suite,
                    criterion=criterion,
                    start=_timestamp(evidence_start(status)),
                )
                for part, level, template in metric.parts():
                    try:
                        promql = render(template, values)
                    except TemplateError:
                        continue  # validate_semantics reports it
                    queries.append(
                        MetricQuery(
                            key=query_key(gate.name, metric_name, role, part, index, level),
                            promql=promql,
                            gate=gate.name,
                            metric=metric_name,
                            role=role,
                            part=part,
                            component=index,
                            level=level,
                            count=_count_since(template, values, name, evidence_start(status)),
                        )
                    )
    return queries + _sample_ratio_queries(spec, status, namespace, name, now)

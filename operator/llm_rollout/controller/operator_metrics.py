"""The operator's own metrics: where each rollout is, every gate's value against its
threshold, conditions, decisions by outcome, analysis time, Prometheus query errors and
whether this replica leads.

Labelled by namespace and deployment (and gate, stage) — bounded by the number of
LLMDeployments, never by users or requests. Only the current stage's gates are
exported: series of a stage the rollout left are dropped, so a dashboard never shows
a frozen value of a gate nobody evaluates any more. Decision counters exist at zero
for every outcome (query errors for every kind) from the first observation on, so
`increase()` sees the first Rollback too.

`/metrics` is `render()`: each rollout's lines are rendered when that rollout changes
(its status exported, a decision or query error counted) and joined under one header
per metric at scrape time, so a scrape costs a join, not a pass over every series
(bench/operator_metrics.py: 7 s at 5,000 rollouts rendered whole).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

from llm_rollout.api.durations import parse_duration
from llm_rollout.api.status import ConditionStatus, LLMDeploymentStatus, Phase, Verdict
from llm_rollout.engine.types import ObservationErrorKind, Outcome
from llm_rollout.metrics import names as metric_names
from llm_rollout.metrics.names import registered

_ROLLOUT = ["namespace", "deployment"]
_GATE = [*_ROLLOUT, "stage", "gate"]


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        # (namespace, name) -> id(metric) -> the label sets observe_status made.
        self._series: dict[tuple[str, str], dict[int, set[tuple[str, ...]]]] = {}
        self.phase = Gauge(
            metric_names.PHASE,
            "1 for the rollout's current phase, else 0",
            [*_ROLLOUT, "phase"],
            registry=r,
        )
        self.info = Gauge(
            metric_names.INFO,
            "Stable and candidate release of a rollout (1)",
            [*_ROLLOUT, "stable", "candidate"],
            registry=r,
        )
        self.stage_index = Gauge(
            metric_names.STAGE_INDEX, "Index of the current stage (0-based)", _ROLLOUT, registry=r
        )
        self.step_percent = Gauge(
            metric_names.STEP_PERCENT,
            "Percent of the current stage's cohorts on the candidate",
            [*_ROLLOUT, "stage"],
            registry=r,
        )
        self.gate_value = Gauge(
            metric_names.GATE_VALUE, "Latest value of a gate", _GATE, registry=r
        )
        self.gate_lower = Gauge(
            metric_names.GATE_INTERVAL_LOWER,
            "Lower end of a gate's confidence sequence",
            _GATE,
            registry=r,
        )
        self.gate_upper = Gauge(
            metric_names.GATE_INTERVAL_UPPER,
            "Upper end of a gate's confidence sequence",
            _GATE,
            registry=r,
        )
        self.gate_samples = Gauge(
            metric_names.GATE_SAMPLES, "Samples behind a gate's value", _GATE, registry=r
        )
        self.gate_threshold = Gauge(
            metric_names.GATE_THRESHOLD,
            "A gate's bound (bound=min|max)",
            [*_GATE, "bound"],
            registry=r,
        )
        self.gate_verdict = Gauge(
            metric_names.GATE_VERDICT,
            "1 for a gate's latest verdict, else 0",
            [*_GATE, "verdict"],
            registry=r,
        )
        self.decisions = Counter(
            registered(metric_names.DECISIONS),
            "Decisions by outcome",
            [*_ROLLOUT, "outcome"],
            registry=r,
        )
        self.analysis_seconds = Histogram(
            metric_names.ANALYSIS_DURATION,
            "Time of one analysis (queries + decision)",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        # One series for the whole operator (no rollout labels): how far behind it is.
        self.analysis_lag = Histogram(
            metric_names.ANALYSIS_LAG,
            "How long after it was due an analysis started (0: on time); one per analysis",
            buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600),
            registry=r,
        )
        # The operator's own requests to the Kubernetes API (reconciles, eval runs, the
        # Lease; not kopf's watches) by verb; over the rate of analyses
        # (llm_rollout_analysis_lag_seconds_count) it is the API cost of one analysis.
        self.kube_requests = Counter(
            registered(metric_names.KUBE_REQUESTS),
            "Requests the operator sent to the Kubernetes API, by HTTP verb (not watches)",
            ["verb"],
            registry=r,
        )
        self.trace_spans = Counter(
            registered(metric_names.OPERATOR_TRACE_SPANS),
            "Decision and analysis spans by outcome: exported, or dropped (queue_full: the "
            "exporter is behind or the backend is down; export_failed: it refused or did "
            "not answer). Only with tracing on.",
            ["outcome"],
            registry=r,
        )
        # Operator-wide (no rollout labels): with batching, grouped queries per tick
        # depend on the counters read, not on the number of rollouts.
        self.prometheus_queries = Counter(
            registered(metric_names.PROMETHEUS_QUERIES),
            "Queries sent to Prometheus by form: grouped (one per counter and tick, for "
            "every rollout analysed then), baseline (once per step and count), single "
            "(a rollout's own query)",
            ["form"],
            registry=r,
        )
        self.query_errors = Counter(
            registered(metric_names.QUERY_ERRORS),
            "Failed metric queries by kind",
            [*_ROLLOUT, "kind"],
            registry=r,
        )
        self.condition = Gauge(
            metric_names.CONDITION,
            "1 for a status condition's current status, else 0",
            [*_ROLLOUT, "condition", "status"],
            registry=r,
        )
        self.step_start = Gauge(
            metric_names.STEP_START,
            "When the current step began (Unix time; pauses shift it)",
            _ROLLOUT,
            registry=r,
        )
        self.step_max_duration = Gauge(
            metric_names.STEP_MAX_DURATION,
            "maxDuration of the current stage (each step must advance within it)",
            _ROLLOUT,
            registry=r,
        )
        self.last_analysis = Gauge(
            metric_names.LAST_ANALYSIS,
            "When the gates were last evaluated (Unix time)",
            _ROLLOUT,
            registry=r,
        )
        # The stable release's snapshot time, not its age: age is `time() - ...` in PromQL,
        # right at any scrape, and the series changes only with the release.
        self.knowledge_base_created = Gauge(
            metric_names.KNOWLEDGE_BASE_CREATED,
            "When the stable release's knowledge-base snapshot was built (Unix time)",
            [*_ROLLOUT, "release", "snapshot"],
            registry=r,
        )
        self.knowledge_base_max_age = Gauge(
            metric_names.KNOWLEDGE_BASE_MAX_AGE,
            "spec.freshness.knowledgeBaseMaxAge: how old the stable knowledge base may get",
            _ROLLOUT,
            registry=r,
        )
        self.leader = Gauge(
            metric_names.LEADER,
            "1 while this operator replica acts (holds the leader Lease)",
            registry=r,
        )
        # Stage name -> maxDuration seconds, per rollout, from the latest spec seen.
        self._max_durations: dict[tuple[str, str], dict[str, float]] = {}
        # The metrics labelled by rollout, in the order /metrics shows them.
        self._per_rollout: tuple[Gauge | Counter, ...] = (
            self.phase,
            self.info,
            self.stage_index,
            self.step_percent,
            self.gate_value,
            self.gate_lower,
            self.gate_upper,
            self.gate_samples,
            self.gate_threshold,
            self.gate_verdict,
            self.decisions,
            self.query_errors,
            self.condition,
            self.step_start,
            self.step_max_duration,
            self.last_analysis,
            self.knowledge_base_created,
            self.knowledge_base_max_age,
        )
        # (namespace, name) -> exposed name -> that rollout's sample lines; None: stale.
        self._pages: dict[tuple[str, str], dict[bytes, bytes] | None] = {}
        self._headers: dict[bytes, bytes] = {}  # exposed name -> its HELP and TYPE lines
        self._render_rollout("", "")  # every metric's header, shown with no rollout yet

    def count_decision(self, namespace: str, name: str, outcome: str) -> None:
        self._child(self.decisions, namespace, name, outcome).inc()

    def count_query_error(self, namespace: str, name: str, kind: str) -> None:
        self._child(self.query_errors, namespace, name, kind).inc()

    def render(self) -> bytes:
        """The /metrics page: the same text as `generate_latest(self.registry)`, with the
        rollouts' lines from their cached renders."""
        per_rollout = set(self._per_rollout)
        head = generate_latest(_Without(self.registry, per_rollout))
        lines: dict[bytes, list[bytes]] = {}
        for key, page in self._pages.items():
            if page is None:
                page = self._pages[key] = self._render_rollout(*key)
            for exposed, text in page.items():
                lines.setdefault(exposed, []).append(text)
        body = [head]
        for exposed, header in self._headers.items():
            body.append(header)
            body.extend(lines.get(exposed, ()))
        return b"".join(body)

    def _render_rollout(self, namespace: str, name: str) -> dict[bytes, bytes]:
        """One rollout's sample lines per exposed name, rendered by prometheus-client from
        its own series only (the index `_child` keeps)."""
        series = self._series.get((namespace, name), {})
        page = generate_latest(_Only(self._per_rollout, series))
        out: dict[bytes, bytes] = {}
        exposed = b""
        header: list[bytes] = []
        for line in page.splitlines(keepends=True):
            if line.startswith(b"# HELP "):
                exposed = line.split(b" ", 3)[2]
                header = [line]
            elif line.startswith(b"# "):
                header.append(line)
                self._headers.setdefault(exposed, b"".join(header))
            else:
                out[exposed] = out.get(exposed, b"") + line
        return out

    def count_kube_request(self, verb: str) -> None:
        self.kube_requests.labels(verb).inc()

    def count_prometheus_query(self, form: str) -> None:
        self.prometheus_queries.labels(form).inc()

    def count_spans(self, outcome: str, count: int) -> None:
        self.trace_spans.labels(outcome).inc(count)

    def observe_spec(self, namespace: str, name: str, spec: Mapping[str, Any]) -> None:
        """Remember the stages' maxDuration of a rollout's spec (raw, as stored)."""
        durations: dict[str, float] = {}
        for stage in spec.get("stages") or []:
            try:
                durations[str(stage["name"])] = parse_duration(str(stage["maxDuration"]))
            except (KeyError, TypeError, ValueError):
                continue  # admission or the engine reports a bad spec; no metric for it
        self._max_durations[(namespace, name)] = durations
        try:
            max_age = parse_duration(str(spec["freshness"]["knowledgeBaseMaxAge"]))
        except (KeyError, TypeError, ValueError):
            self._drop(self.knowledge_base_max_age, namespace, name)
        else:
            self._child(self.knowledge_base_max_age, namespace, name).set(max_age)

    def observe_status(
        self,
        namespace: str,
        name: str,
        status: LLMDeploymentStatus,
        bounds: dict[str, tuple[float | None, float | None]],
    ) -> None:
        """Export a rollout's status; `bounds` maps gate name -> (min, max)."""
        self._pages[(namespace, name)] = None
        for phase in Phase:
            self._child(self.phase, namespace, name, phase.value).set(
                1 if status.phase == phase else 0
            )
        self._drop(self.info, namespace, name)  # one series per rollout: old release pairs go
        self._child(
            self.info,
            namespace,
            name,
            status.stable.id if status.stable else "",
            status.candidate.id if status.candidate else "",
        ).set(1)
        self._child(self.stage_index, namespace, name).set(status.stage_index)
        current = {(namespace, name, status.stage, g.name) for g in status.gates}
        for metric in (
            self.step_percent,
            self.gate_value,
            self.gate_lower,
            self.gate_upper,
            self.gate_samples,
            self.gate_threshold,
            self.gate_verdict,
        ):
            self._drop(
                metric,
                namespace,
                name,
                keep=lambda labels: (
                    labels[2] == status.stage and (len(labels) == 3 or tuple(labels[:4]) in current)
                ),
            )
        self._child(self.step_percent, namespace, name, status.stage).set(status.step_percent)
        # At zero from the start: increase() sees the first Rollback or query error too.
        for outcome in Outcome:
            self._child(self.decisions, namespace, name, outcome.value)
        for kind in ObservationErrorKind:
            self._child(self.query_errors, namespace, name, kind.value)
        self._drop(self.condition, namespace, name)
        for cond in status.conditions:
            for value in ConditionStatus:
                self._child(self.condition, namespace, name, cond.type.value, value.value).set(
                    1 if cond.status == value else 0
                )
        self._set_time(self.step_start, namespace, name, status.step_start_time)
        self._set_time(self.last_analysis, namespace, name, status.last_analysis_time)
        self._drop(self.knowledge_base_created, namespace, name)  # the stable release's only
        stable = status.stable
        if stable is not None and stable.knowledge_base_created is not None:
            self._child(
                self.knowledge_base_created, namespace, name, stable.id, stable.knowledge_base
            ).set(stable.knowledge_base_created.timestamp())
        max_duration = self._max_durations.get((namespace, name), {}).get(status.stage)
        if max_duration is None:
            self._drop(self.step_max_duration, namespace, name)
        else:
            self._child(self.step_max_duration, namespace, name).set(max_duration)
        for gate in status.gates:
            labels = (namespace, name, status.stage, gate.name)
            if gate.value is not None:
                self._child(self.gate_value, *labels).set(gate.value)
            if gate.interval:
                self._child(self.gate_lower, *labels).set(gate.interval[0])
                self._child(self.gate_upper, *labels).set(gate.interval[1])
            if gate.samples is not None:
                self._child(self.gate_samples, *labels).set(gate.samples)
            low, high = bounds.get(gate.name, (None, None))
            if low is not None:
                self._child(self.gate_threshold, *labels, "min").set(low)
            if high is not None:
                self._child(self.gate_threshold, *labels, "max").set(high)
            for verdict in Verdict:
                self._child(self.gate_verdict, *labels, verdict.value).set(
                    1 if gate.verdict == verdict else 0
                )

    def forget(self, namespace: str, name: str) -> None:
        """Drop every series of a deleted LLMDeployment."""
        for metric in self._per_rollout:
            _drop(metric, namespace, name)  # every series, indexed or not: once per deletion
        self._max_durations.pop((namespace, name), None)
        self._series.pop((namespace, name), None)
        self._pages.pop((namespace, name), None)

    def _child(self, metric: Any, *labels: str) -> Any:
        """`metric.labels(*labels)`, remembered under its rollout (the first two labels),
        whose rendered lines are then stale."""
        self._pages[(labels[0], labels[1])] = None
        self._series.setdefault((labels[0], labels[1]), {}).setdefault(id(metric), set()).add(
            labels
        )
        return metric.labels(*labels)

    def _drop(
        self,
        metric: Gauge | Counter,
        namespace: str,
        name: str,
        keep: Any = lambda _labels: False,
    ) -> None:
        """Remove a rollout's series of `metric` except those `keep(labels)` accepts: only
        the rollout's own (indexed) series are looked at, so the cost does not grow
        with the number of LLMDeployments (prometheus-client itself can only scan all)."""
        known = self._series.get((namespace, name), {}).get(id(metric))
        if not known:
            return
        for labels in [labels for labels in known if not keep(labels)]:
            with contextlib.suppress(KeyError):
                metric.remove(*labels)
            known.discard(labels)

    def _set_time(self, metric: Gauge, namespace: str, name: str, moment: Any) -> None:
        if moment is None:
            self._drop(metric, namespace, name)
        else:
            self._child(metric, namespace, name).set(moment.timestamp())


def _drop(
    metric: Gauge | Counter, namespace: str, name: str, keep: Any = lambda _labels: False
) -> None:
    """Remove a rollout's series of `metric`, except those `keep(labels)` accepts."""
    # prometheus-client has no public way to list a metric's label sets.
    for labels in list(metric._metrics):
        if labels[:2] == (namespace, name) and not keep(labels):
            metric.remove(*labels)


class _Without:
    """A registry's collectors but some, for `generate_latest`."""

    def __init__(self, registry: CollectorRegistry, skip: set[Gauge | Counter]) -> None:
        self._registry = registry
        self._skip = skip

    def collect(self) -> Iterator[Metric]:
        # prometheus-client has no public way to collect part of a registry.
        for collector in list(self._registry._collector_to_names):
            if collector not in self._skip:
                yield from collector.collect()


class _Only:
    """Some series of some metrics, as those metrics would collect them, for
    `generate_latest`: `series` maps id(metric) -> the label sets to show."""

    def __init__(
        self, metrics: tuple[Gauge | Counter, ...], series: Mapping[int, set[tuple[str, ...]]]
    ) -> None:
        self._metrics = metrics
        self._series = series

    def collect(self) -> Iterator[Metric]:
        for metric in self._metrics:
            # The private parts prometheus-client's own collect() reads.
            family = Metric(
                metric._name, metric._documentation, str(metric._type), metric._unit or ""
            )
            children = metric._metrics
            for labels in sorted(self._series.get(id(metric), ())):
                child = children.get(labels)
                if child is None:
                    continue
                named = dict(zip(metric._labelnames, labels, strict=True))
                for sample in child._samples():
                    family.samples.append(
                        Sample(
                            metric._name + sample.name,
                            {**named, **sample.labels},
                            sample.value,
                            sample.timestamp,
                            sample.exemplar,
                        )
                    )
            yield family

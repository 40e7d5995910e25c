"""The operator's own metrics: where each rollout is, every gate's value against its
threshold, decisions by outcome, analysis time and Prometheus query errors.

Labelled by namespace and deployment (and gate, stage) — bounded by the number of
LLMDeployments, never by users or requests.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from llm_rollout.api.status import LLMDeploymentStatus, Phase, Verdict

_ROLLOUT = ["namespace", "deployment"]
_GATE = [*_ROLLOUT, "stage", "gate"]


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.phase = Gauge("llm_rollout_phase", "1 for the rollout's current phase, else 0",
                           [*_ROLLOUT, "phase"], registry=r)
        self.info = Gauge("llm_rollout_info", "Stable and candidate release of a rollout (1)",
                          [*_ROLLOUT, "stable", "candidate"], registry=r)
        self.stage_index = Gauge("llm_rollout_stage_index",
                                 "Index of the current stage (0-based)", _ROLLOUT, registry=r)
        self.step_percent = Gauge("llm_rollout_step_percent",
                                  "Percent of the current stage's cohorts on the candidate",
                                  [*_ROLLOUT, "stage"], registry=r)
        self.gate_value = Gauge("llm_rollout_gate_value", "Latest value of a gate", _GATE,
                                registry=r)
        self.gate_lower = Gauge("llm_rollout_gate_interval_lower",
                                "Lower end of a gate's confidence interval", _GATE, registry=r)
        self.gate_upper = Gauge("llm_rollout_gate_interval_upper",
                                "Upper end of a gate's confidence interval", _GATE, registry=r)
        self.gate_samples = Gauge("llm_rollout_gate_samples", "Samples behind a gate's value",
                                  _GATE, registry=r)
        self.gate_threshold = Gauge("llm_rollout_gate_threshold",
                                    "A gate's bound (bound=min|max)", [*_GATE, "bound"],
                                    registry=r)
        self.gate_verdict = Gauge("llm_rollout_gate_verdict",
                                  "1 for a gate's latest verdict, else 0", [*_GATE, "verdict"],
                                  registry=r)
        self.decisions = Counter("llm_rollout_decisions_total", "Decisions by outcome",
                                 [*_ROLLOUT, "outcome"], registry=r)
        self.analysis_seconds = Histogram(
            "llm_rollout_analysis_duration_seconds", "Time of one analysis (queries + decision)",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=r)
        self.query_errors = Counter("llm_rollout_prometheus_query_errors_total",
                                    "Failed metric queries by kind", [*_ROLLOUT, "kind"],
                                    registry=r)

    def observe_status(self, namespace: str, name: str, status: LLMDeploymentStatus,
                       bounds: dict[str, tuple[float | None, float | None]]) -> None:
        """Export a rollout's status; `bounds` maps gate name -> (min, max)."""
        for phase in Phase:
            self.phase.labels(namespace, name, phase.value).set(
                1 if status.phase == phase else 0)
        _drop(self.info, namespace, name)  # one series per rollout: old release pairs go
        self.info.labels(namespace, name, status.stable.id if status.stable else "",
                         status.candidate.id if status.candidate else "").set(1)
        self.stage_index.labels(namespace, name).set(status.stage_index)
        self.step_percent.labels(namespace, name, status.stage).set(status.step_percent)
        for gate in status.gates:
            labels = (namespace, name, status.stage, gate.name)
            if gate.value is not None:
                self.gate_value.labels(*labels).set(gate.value)
            if gate.interval:
                self.gate_lower.labels(*labels).set(gate.interval[0])
                self.gate_upper.labels(*labels).set(gate.interval[1])
            if gate.samples is not None:
                self.gate_samples.labels(*labels).set(gate.samples)
            low, high = bounds.get(gate.name, (None, None))
            if low is not None:
                self.gate_threshold.labels(*labels, "min").set(low)
            if high is not None:
                self.gate_threshold.labels(*labels, "max").set(high)
            for verdict in Verdict:
                self.gate_verdict.labels(*labels, verdict.value).set(
                    1 if gate.verdict == verdict else 0)

    def forget(self, namespace: str, name: str) -> None:
        """Drop every series of a deleted LLMDeployment."""
        for metric in (self.phase, self.info, self.stage_index, self.step_percent,
                       self.gate_value, self.gate_lower, self.gate_upper, self.gate_samples,
                       self.gate_threshold, self.gate_verdict):
            _drop(metric, namespace, name)


def _drop(metric: Gauge, namespace: str, name: str) -> None:
    # prometheus-client has no public way to list a metric's label sets.
    for labels in list(metric._metrics):
        if labels[:2] == (namespace, name):
            metric.remove(*labels)

"""Semantic checks admission cannot make: PromQL templates, metric kinds per gate."""

from __future__ import annotations

from llm_rollout.api.spec import GateKind, LLMDeploymentSpec
from llm_rollout.engine.plan import resolve_metric
from llm_rollout.metrics.presets import MetricKind
from llm_rollout.metrics.promql import validate_template


def validate_semantics(spec: LLMDeploymentSpec) -> list[str]:
    """Problems that make the spec Invalid (empty: fine)."""
    problems: list[str] = []
    for metric in spec.metrics:
        templates = {"query": metric.query, "samples": metric.samples}
        if metric.ratio is not None:
            templates |= {"ratio.success": metric.ratio.success, "ratio.total": metric.ratio.total}
        for field, template in templates.items():
            if template is not None:
                prefix = f"metric {metric.name} {field}"
                problems += [f"{prefix}: {p}" for p in validate_template(template)]
    for stage in spec.stages:
        for gate in stage.gates:
            where = f"stage {stage.name} gate {gate.name}"
            for name in gate.metric_names():
                resolved = resolve_metric(spec, name)
                if resolved is None:
                    problems.append(f"{where}: unknown metric {name}")
                    continue
                if gate.kind is GateKind.RATIO and resolved.kind is not MetricKind.RATIO:
                    problems.append(f"{where}: Ratio gates need a ratio metric, {name} is a value")
                if (
                    gate.min_samples > 0
                    and resolved.kind is MetricKind.VALUE
                    and not resolved.samples
                ):
                    problems.append(
                        f"{where}: minSamples needs a sample count, metric {name} has no "
                        "samples query"
                    )
    return problems

"""The eval results the operator exports on its /metrics, for gates to read from
Prometheus like any other metric (the `eval-score` preset).

Rebuilt from the LLMEvalRun objects at every reconcile, so a restarted operator
exports the same series. Only Succeeded runs count: nothing of a failed run is
exported.

- `llm_eval_score{namespace,deployment,release,suite,criterion}` (gauge, 0..1): the
  latest finished run of the suite that evaluated the release; one series per check,
  per judge and `criterion="composite"` (the weighted score).
- `llm_eval_cases_total{namespace,deployment,release,suite,result}` (counter):
  cases by `pass|fail|invalid|error`, summed over the release's runs of the suite.
- `llm_eval_runs_total{namespace,deployment,suite,phase}` (counter): finished runs,
  `Succeeded` or `Failed`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import ValidationError

from llm_rollout.api.evalrun import (
    FINISHED_PHASES,
    EvalPhase,
    LLMEvalRunSpec,
    LLMEvalRunStatus,
)
from llm_rollout.metrics import names as metric_names
from llm_rollout.metrics.names import registered

EVAL_SCORE = metric_names.EVAL_SCORE
EVAL_CASES = registered(metric_names.EVAL_CASES)  # _total is added on exposition
EVAL_RUNS = registered(metric_names.EVAL_RUNS)
COMPOSITE = "composite"
_EPOCH = datetime.min.replace(tzinfo=UTC)

_Key = tuple[str, str]  # namespace, deployment


class EvalResultsCollector(Collector):
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self._runs: dict[_Key, list[tuple[LLMEvalRunSpec, LLMEvalRunStatus]]] = {}
        if registry is not None:
            registry.register(self)

    def update(self, namespace: str, name: str, runs: Iterable[dict[str, Any]]) -> None:
        """The finished LLMEvalRun objects of one LLMDeployment (others are skipped)."""
        finished = []
        for run in runs:
            try:
                status = LLMEvalRunStatus.from_object(run.get("status"))
                if status.phase in FINISHED_PHASES:
                    finished.append((LLMEvalRunSpec.model_validate(run["spec"]), status))
            except (ValidationError, KeyError):
                continue  # not ours to judge; the runner or a human wrote something odd
        self._runs[(namespace, name)] = finished

    def forget(self, namespace: str, name: str) -> None:
        self._runs.pop((namespace, name), None)

    def describe(self) -> Iterator[Metric]:
        return iter(())  # the series come and go with the runs; no fixed description

    def collect(self) -> Iterator[Metric]:
        labels = ["namespace", "deployment", "release", "suite"]
        score = GaugeMetricFamily(
            EVAL_SCORE,
            "Offline eval score (0..1) of a release by suite and criterion "
            "(criterion=composite: the weighted score), from its latest succeeded run",
            labels=[*labels, "criterion"],
        )
        cases = CounterMetricFamily(
            EVAL_CASES,
            "Eval cases by result (pass, fail, invalid, error), succeeded runs",
            labels=[*labels, "result"],
        )
        runs = CounterMetricFamily(
            EVAL_RUNS,
            "Finished eval runs by phase",
            labels=["namespace", "deployment", "suite", "phase"],
        )
        for (namespace, name), items in sorted(self._runs.items()):
            latest: dict[tuple[str, str], tuple[datetime, dict[str, float]]] = {}
            counts: dict[tuple[str, str, str], int] = defaultdict(int)
            phases: dict[tuple[str, str], int] = defaultdict(int)
            for spec, status in items:
                suite = spec.suite.name
                assert status.phase is not None
                phases[(suite, status.phase.value)] += 1
                if status.phase is not EvalPhase.SUCCEEDED:
                    continue
                when = status.completion_time or _EPOCH
                for result in (status.candidate, status.stable):
                    if result is None:
                        continue
                    values = {c.name: c.score for c in result.criteria if c.score is not None}
                    if result.composite is not None:
                        values[COMPOSITE] = result.composite
                    key = (result.release, suite)
                    if key not in latest or when >= latest[key][0]:
                        latest[key] = (when, values)
                    for case_result, count in result.cases.by_result().items():
                        counts[(result.release, suite, case_result.value)] += count
            for (release, suite), (_when, values) in sorted(latest.items()):
                for criterion, value in sorted(values.items()):
                    score.add_metric([namespace, name, release, suite, criterion], value)
            for (release, suite, outcome), count in sorted(counts.items()):
                cases.add_metric([namespace, name, release, suite, outcome], count)
            for (suite, phase), count in sorted(phases.items()):
                runs.add_metric([namespace, name, suite, phase], count)
        yield score
        yield cases
        yield runs

"""The pure rollout engine: no I/O, no clock reads, no randomness; time is an argument.

queries = plan_queries(spec, status, namespace, name, now=...)  # PromQL to run at now
decision = decide(spec, status, now=..., name=..., generation=...,
                  observations={q.key: value_or_error, ...},
                  ready_releases=frozenset({...}), action=action_from_annotations(...))
# patch decision.status if it differs; an Event for each notable decision
"""

from llm_rollout.engine.analysis import ANALYSIS_TOLERANCE, analysis_due
from llm_rollout.engine.durations import elapsed_in_step
from llm_rollout.engine.exposure import build_routing
from llm_rollout.engine.gates import evaluate_gate, evaluate_stage
from llm_rollout.engine.machine import decide, mark_failed, mark_invalid
from llm_rollout.engine.plan import exposed_cohorts, plan_queries, query_key, resolve_metric
from llm_rollout.engine.sequential import (
    Counts,
    difference_bounds,
    log_split_evidence,
    mean_bounds,
)
from llm_rollout.engine.transitions import next_position
from llm_rollout.engine.types import (
    Decision,
    MetricQuery,
    Observation,
    ObservationError,
    ObservationErrorKind,
    Observations,
    Outcome,
    Part,
    Role,
)
from llm_rollout.engine.validate import validate_semantics

__all__ = [
    "ANALYSIS_TOLERANCE",
    "Counts",
    "Decision",
    "MetricQuery",
    "Observation",
    "ObservationError",
    "ObservationErrorKind",
    "Observations",
    "Outcome",
    "Part",
    "Role",
    "analysis_due",
    "build_routing",
    "decide",
    "difference_bounds",
    "elapsed_in_step",
    "evaluate_gate",
    "evaluate_stage",
    "exposed_cohorts",
    "log_split_evidence",
    "mark_failed",
    "mark_invalid",
    "mean_bounds",
    "next_position",
    "plan_queries",
    "query_key",
    "resolve_metric",
    "validate_semantics",
]

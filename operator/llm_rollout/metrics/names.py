"""Every metric name the project exports, as Prometheus shows it: one place for the
router, the operator, the eval runner, the presets, the dashboard and the plot.

prometheus_client adds `_total` to a counter's name on exposition, so counters are
registered as `registered(NAME)`.
"""

from __future__ import annotations

# The router (router/metrics.py)
REQUESTS = "llm_router_requests_total"
REQUEST_DURATION = "llm_router_request_duration_seconds"
TTFT = "llm_router_time_to_first_token_seconds"
TOKENS = "llm_router_tokens_total"
FEEDBACK = "llm_feedback_total"
FEEDBACK_SCORE = "llm_feedback_score"
HEURISTIC_CHECKS = "llm_heuristic_checks_total"
FALLBACKS = "llm_router_fallbacks_total"
UPSTREAM_ERRORS = "llm_router_upstream_errors_total"
ASSIGNMENTS = "llm_router_assignments_total"
UNSTICKY_REQUESTS = "llm_router_unsticky_requests_total"
FEEDBACK_REJECTED = "llm_router_feedback_rejected_total"
TRACE_SPANS = "llm_router_trace_spans_total"

# The eval runner (evals/metrics.py)
EVAL_SCORE = "llm_eval_score"
EVAL_CASES = "llm_eval_cases_total"
EVAL_RUNS = "llm_eval_runs_total"

# The operator (controller/operator_metrics.py)
PHASE = "llm_rollout_phase"
INFO = "llm_rollout_info"
STAGE_INDEX = "llm_rollout_stage_index"
STEP_PERCENT = "llm_rollout_step_percent"
GATE_VALUE = "llm_rollout_gate_value"
GATE_INTERVAL_LOWER = "llm_rollout_gate_interval_lower"
GATE_INTERVAL_UPPER = "llm_rollout_gate_interval_upper"
GATE_SAMPLES = "llm_rollout_gate_samples"
GATE_THRESHOLD = "llm_rollout_gate_threshold"
GATE_VERDICT = "llm_rollout_gate_verdict"
DECISIONS = "llm_rollout_decisions_total"
ANALYSIS_DURATION = "llm_rollout_analysis_duration_seconds"
ANALYSIS_LAG = "llm_rollout_analysis_lag_seconds"
KUBE_REQUESTS = "llm_rollout_kube_requests_total"
OPERATOR_TRACE_SPANS = "llm_rollout_trace_spans_total"
QUERY_ERRORS = "llm_rollout_prometheus_query_errors_total"
PROMETHEUS_QUERIES = "llm_rollout_prometheus_queries_total"
CONDITION = "llm_rollout_condition"
STEP_START = "llm_rollout_step_start_time_seconds"
STEP_MAX_DURATION = "llm_rollout_step_max_duration_seconds"
LAST_ANALYSIS = "llm_rollout_last_analysis_time_seconds"
LEADER = "llm_rollout_leader"
KNOWLEDGE_BASE_CREATED = "llm_rollout_knowledge_base_created_time_seconds"
KNOWLEDGE_BASE_MAX_AGE = "llm_rollout_knowledge_base_max_age_seconds"


def registered(name: str) -> str:
    """The name to register a metric under: a counter's without its `_total`."""
    return name.removesuffix("_total")

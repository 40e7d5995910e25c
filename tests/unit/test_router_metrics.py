"""The router's metric names and labels are a contract (the engine's presets query them)."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from llm_rollout.router.metrics import MAX_CRITERIA, RouterMetrics

EXPECTED = {
    "llm_router_requests": ("counter", {"namespace", "deployment", "release", "cohort", "code"}),
    "llm_router_request_duration_seconds": (
        "histogram",
        {"namespace", "deployment", "release", "cohort"},
    ),
    "llm_router_time_to_first_token_seconds": (
        "histogram",
        {"namespace", "deployment", "release", "cohort"},
    ),
    "llm_router_tokens": ("counter", {"namespace", "deployment", "release", "cohort", "direction"}),
    "llm_feedback": (
        "counter",
        {"namespace", "deployment", "release", "cohort", "source", "rating"},
    ),
    "llm_feedback_score": (
        "histogram",
        {"namespace", "deployment", "release", "cohort", "source", "criterion"},
    ),
    "llm_heuristic_checks": (
        "counter",
        {"namespace", "deployment", "release", "cohort", "check", "result"},
    ),
    "llm_router_fallbacks": ("counter", {"namespace", "deployment", "cohort", "release"}),
    "llm_router_upstream_errors": ("counter", {"namespace", "deployment", "release", "kind"}),
    "llm_router_unsticky_requests": ("counter", {"namespace", "deployment"}),
    "llm_router_assignments": ("counter", {"namespace", "deployment", "release", "cohort"}),
    "llm_router_feedback_rejected": ("counter", {"reason"}),
    "llm_router_trace_spans": ("counter", {"outcome"}),
}


def test_names_types_and_labels() -> None:
    m = RouterMetrics()
    for metric in (
        m.requests,
        m.duration,
        m.ttft,
        m.tokens,
        m.feedback,
        m.feedback_score,
        m.checks,
        m.fallbacks,
        m.upstream_errors,
        m.unsticky,
        m.feedback_rejected,
        m.assignments,
        m.trace_spans,
    ):
        names = metric._labelnames
        child = metric.labels(*(f"v-{n}" for n in names))
        (child.observe if hasattr(child, "observe") else child.inc)(1)
    families = {
        f.name: f for f in text_string_to_metric_families(generate_latest(m.registry).decode())
    }
    for name, (kind, labels) in EXPECTED.items():
        fam = families.pop(name)
        assert fam.type == kind, name
        sample_labels = {k for s in fam.samples for k in s.labels} - {"le"}
        assert sample_labels == labels, name
    extra = sorted(n for n in families if not n.endswith("_created"))
    assert not extra, f"undocumented metrics: {extra}"


def test_score_buckets_are_1_to_5() -> None:
    m = RouterMetrics()
    m.feedback_score.labels("n", "d", "r", "c", "user", "overall").observe(3)
    text = generate_latest(m.registry).decode()
    for le in ("1.0", "2.0", "3.0", "4.0", "5.0", "+Inf"):
        assert f'le="{le}"' in text


def test_registries_are_independent() -> None:
    a, b = RouterMetrics(), RouterMetrics()
    a.unsticky.labels("n", "d").inc()
    assert b"llm_router_unsticky_requests_total{" not in generate_latest(b.registry)


def test_criterion_label_cardinality_is_capped() -> None:
    m = RouterMetrics()
    names = [m.criterion(f"c{i}") for i in range(MAX_CRITERIA + 10)]
    assert names[0] == "c0" and names[-1] == "other"
    assert len(set(names)) == MAX_CRITERIA  # 63 names + "other" (+ "overall" reserved)
    assert m.criterion("overall") == "overall" and m.criterion("c0") == "c0"


def test_the_router_exports_exactly_the_router_names_of_metrics_names() -> None:
    from llm_rollout.metrics import names

    exported = {f"{n}_total" if k == "counter" else n for n, (k, _) in EXPECTED.items()}
    router_names = {
        value
        for key, value in vars(names).items()
        if key.isupper()
        and isinstance(value, str)
        and value.startswith(("llm_router", "llm_feedback", "llm_heuristic"))
    }
    assert router_names == exported

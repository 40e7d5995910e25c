"""plan_queries: which PromQL the current stage needs, rendered for the right releases."""

from __future__ import annotations

from engine_support import NAME, NS, Driver, make_spec, started

from llm_rollout.api import LLMDeploymentStatus, Phase, release_id
from llm_rollout.engine import Part, Role, exposed_cohorts, plan_queries, query_key
from llm_rollout.metrics.promql import string_literals, syntax_problems


def test_queries_of_the_first_stage() -> None:
    drv = started()
    queries = plan_queries(drv.spec, drv.status, NS, NAME)
    assert [(q.key, q.role, q.part) for q in queries] == [
        ("feedback/feedback-positive-rate/candidate/success", Role.CANDIDATE, Part.SUCCESS),
        ("feedback/feedback-positive-rate/candidate/total", Role.CANDIDATE, Part.TOTAL),
    ]
    assert drv.status.candidate is not None
    for q in queries:
        assert not syntax_problems(q.promql)
        assert set(string_literals(q.promql)) >= {NS, NAME, drv.status.candidate.id, "experts"}
        assert "[5m]" in q.promql and q.gate == "feedback"


def test_cohorts_are_cumulative_across_stages() -> None:
    spec = make_spec()
    assert exposed_cohorts(spec, 0) == ("experts",)
    assert exposed_cohorts(spec, 2) == ("experts", "beta", "everyone")
    drv = started()
    drv.call(30)
    drv.call(30)
    queries = plan_queries(drv.spec, drv.status, NS, NAME)
    assert all("experts|beta" in string_literals(q.promql) for q in queries)


def test_compare_gates_query_both_releases_on_the_same_cohorts() -> None:
    stages = [
        {
            "name": "s",
            "cohorts": ["everyone"],
            "gates": [{"name": "err", "kind": "Compare", "metric": "error-rate"}],
        }
    ]
    drv = started(stages=stages)
    queries = plan_queries(drv.spec, drv.status, NS, NAME)
    assert drv.status.stable is not None and drv.status.candidate is not None
    by_role = {(q.role, q.part): string_literals(q.promql) for q in queries}
    assert len(by_role) == 4
    assert drv.status.candidate.id in by_role[(Role.CANDIDATE, Part.TOTAL)]
    assert drv.status.stable.id in by_role[(Role.STABLE, Part.TOTAL)]
    assert drv.status.candidate.id not in by_role[(Role.STABLE, Part.TOTAL)]


def test_composite_components_get_their_own_keys_and_parameters() -> None:
    stages = [
        {
            "name": "s",
            "cohorts": ["everyone"],
            "gates": [
                {
                    "name": "mix",
                    "kind": "Composite",
                    "min": 0.5,
                    "components": [
                        {"metric": "eval-score", "suite": "golden", "criterion": "accuracy"},
                        {"metric": "eval-score", "suite": "safety.v2"},
                        {"metric": "expert-rating"},
                    ],
                }
            ],
        }
    ]
    drv = started(stages=stages)
    queries = plan_queries(drv.spec, drv.status, NS, NAME)
    keys = [q.key for q in queries]
    assert keys == [
        query_key("mix", "eval-score", Role.CANDIDATE, Part.VALUE, 0),
        query_key("mix", "eval-score", Role.CANDIDATE, Part.VALUE, 1),
        query_key("mix", "expert-rating", Role.CANDIDATE, Part.VALUE, 2),
        query_key("mix", "expert-rating", Role.CANDIDATE, Part.SAMPLES, 2),
    ]
    assert len(set(keys)) == len(keys)
    lits = [string_literals(q.promql) for q in queries]
    assert "golden" in lits[0] and "accuracy" in lits[0]
    assert "safety\\.v2" in lits[1] and ".*" in lits[1]  # regex-escaped; criterion: any
    assert "overall" in lits[2]  # expert-rating's default criterion


def test_gate_level_suite_and_criterion() -> None:
    stages = [
        {
            "name": "s",
            "cohorts": ["everyone"],
            "gates": [
                {
                    "name": "golden",
                    "kind": "Threshold",
                    "metric": "eval-score",
                    "min": 0.8,
                    "suite": "golden",
                    "criterion": "faithfulness",
                }
            ],
        }
    ]
    drv = started(stages=stages)
    (q,) = plan_queries(drv.spec, drv.status, NS, NAME)
    assert {"golden", "faithfulness"} <= set(string_literals(q.promql))


def test_no_queries_when_no_analysis_can_happen() -> None:
    spec = make_spec()
    assert plan_queries(spec, LLMDeploymentStatus(), NS, NAME) == []
    drv = started()
    paused = drv.status.model_copy(update={"phase": Phase.PAUSED})
    assert plan_queries(drv.spec, paused, NS, NAME) == []
    newer = make_spec("3")  # a newer release is pending: the rollout restarts first
    assert plan_queries(newer, drv.status, NS, NAME) == []
    no_gates = started(stages=[{"name": "s", "cohorts": ["everyone"]}])
    assert plan_queries(no_gates.spec, no_gates.status, NS, NAME) == []


def test_user_metric_shadows_a_preset() -> None:
    metrics = [
        {
            "name": "error-rate",
            "ratio": {
                "success": 'sum(istio_errors{app="{{ name }}",rel="{{ release }}"})',
                "total": 'sum(istio_total{app="{{ name }}",rel="{{ release }}"})',
            },
        }
    ]
    stages = [
        {
            "name": "s",
            "cohorts": ["everyone"],
            "gates": [{"name": "e", "kind": "Ratio", "metric": "error-rate", "max": 0.1}],
        }
    ]
    drv = started(stages=stages, metrics=metrics)
    queries = plan_queries(drv.spec, drv.status, NS, NAME)
    assert [q.promql.split("{")[0] for q in queries] == ["sum(istio_errors", "sum(istio_total"]


def test_first_release_driver_sanity() -> None:
    spec = make_spec()
    d = Driver(spec, ready={release_id(spec)}).call()
    assert plan_queries(spec, d.status, NS, NAME) == []

"""plan_queries: which PromQL the current stage needs, rendered for the right releases."""

from __future__ import annotations

from engine_support import FB_GATE, NAME, NS, Driver, at, make_spec, started

from llm_rollout.api import LLMDeploymentStatus, Phase, release_id
from llm_rollout.engine import Part, Role, exposed_cohorts, plan_queries, query_key
from llm_rollout.engine.plan import evidence_seconds
from llm_rollout.metrics.promql import string_literals, syntax_problems


def test_queries_of_the_first_stage() -> None:
    drv = started()
    queries = plan_queries(drv.spec, drv.status, NS, NAME, now=at(60))
    assert [(q.key, q.role, q.part) for q in queries] == [
        ("feedback/feedback-positive-rate/candidate/success", Role.CANDIDATE, Part.SUCCESS),
        ("feedback/feedback-positive-rate/candidate/total", Role.CANDIDATE, Part.TOTAL),
    ]
    assert drv.status.candidate is not None
    for q in queries:
        assert not syntax_problems(q.promql)
        assert set(string_literals(q.promql)) >= {NS, NAME, drv.status.candidate.id, "experts"}
        # Counts range over the step so far (started at 0), not the 5m window.
        assert q.promql.endswith("[60s]))") and q.gate == "feedback"


def test_count_queries_range_over_the_step_and_value_queries_over_the_window() -> None:
    gates = [
        FB_GATE,
        {"name": "latency", "kind": "Threshold", "metric": "latency-p95", "max": 2},
        {"name": "rating", "kind": "Threshold", "metric": "expert-rating", "min": 3.5},
    ]
    drv = started(stages=[{"name": "s", "cohorts": ["everyone"], "gates": gates}])
    queries = {q.key: q.promql for q in plan_queries(drv.spec, drv.status, NS, NAME, now=at(157.9))}
    assert queries["feedback/feedback-positive-rate/candidate/total"].endswith("[157s]))")
    latency = queries["latency/latency-p95/candidate/value"]
    assert "[5m]" in latency and "histogram_quantile" in latency
    assert queries["latency/latency-p95/candidate/samples"].endswith("[5m]))")
    buckets = [k for k in queries if k.startswith("rating/")]
    assert buckets == [f"rating/expert-rating/candidate/bucket:{le}" for le in range(1, 6)]
    assert 'le="3.0"' in queries["rating/expert-rating/candidate/bucket:3"]
    assert all(queries[k].endswith("[157s]))") for k in buckets)


def test_evidence_range_ignores_pauses_and_starts_anew_each_step() -> None:
    drv = started()
    start = drv.status.evidence_start_time
    assert start == at(0) and drv.status.step_start_time == at(0)
    # A resumed pause shifts stepStartTime (durations exclude paused time) but the
    # evidence, gathered while paused too, still counts from the step's real start.
    paused = drv.status.model_copy(update={"step_start_time": at(40)})
    assert evidence_seconds(paused, at(100)) == 100
    drv.call(30)
    drv.call(30)  # advanced to beta at 60
    assert drv.status.evidence_start_time == at(60)
    assert evidence_seconds(drv.status, at(90.5)) == 30
    assert evidence_seconds(drv.status, at(60)) == 1  # never an empty range


def test_cohorts_are_cumulative_across_stages() -> None:
    spec = make_spec()
    assert exposed_cohorts(spec, 0) == ("experts",)
    assert exposed_cohorts(spec, 2) == ("experts", "beta", "everyone")
    drv = started()
    drv.call(30)
    drv.call(30)
    queries = plan_queries(drv.spec, drv.status, NS, NAME, now=at(60))
    gates = [q for q in queries if q.gate == "feedback"]
    assert gates and all("experts|beta" in string_literals(q.promql) for q in gates)
    assert len(gates) == len(queries)  # the sample-ratio check waits two intervals
    # beta at 50%: then the check counts the users of beta alone, from 60 s + 2 x 30 s
    queries = plan_queries(drv.spec, drv.status, NS, NAME, now=at(130))
    ratio = [q for q in queries if q.gate == "@sample-ratio"]
    assert all(q.promql.count("@ 1735732920.000") == 1 and "[10s]" in q.promql for q in ratio), (
        ratio
    )
    assert [q.role for q in ratio] == [Role.CANDIDATE, Role.STABLE]
    assert all("beta" in string_literals(q.promql) for q in ratio)
    assert all("experts|beta" not in string_literals(q.promql) for q in ratio)
    assert all("llm_router_assignments_total" in q.promql for q in ratio)


def test_compare_gates_query_both_releases_on_the_same_cohorts() -> None:
    stages = [
        {
            "name": "s",
            "cohorts": ["everyone"],
            "gates": [{"name": "err", "kind": "Compare", "metric": "error-rate"}],
        }
    ]
    drv = started(stages=stages)
    queries = plan_queries(drv.spec, drv.status, NS, NAME, now=at(60))
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
    queries = plan_queries(drv.spec, drv.status, NS, NAME, now=at(60))
    keys = [q.key for q in queries]
    assert keys == [
        query_key("mix", "eval-score", Role.CANDIDATE, Part.VALUE, 0),
        query_key("mix", "eval-score", Role.CANDIDATE, Part.VALUE, 1),
        *(
            query_key("mix", "expert-rating", Role.CANDIDATE, Part.BUCKET, 2, float(le))
            for le in range(1, 6)
        ),
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
    (q,) = plan_queries(drv.spec, drv.status, NS, NAME, now=at(60))
    assert {"golden", "faithfulness"} <= set(string_literals(q.promql))


def test_no_queries_when_no_analysis_can_happen() -> None:
    spec = make_spec()
    assert plan_queries(spec, LLMDeploymentStatus(), NS, NAME, now=at(60)) == []
    drv = started()
    paused = drv.status.model_copy(update={"phase": Phase.PAUSED})
    assert plan_queries(drv.spec, paused, NS, NAME, now=at(60)) == []
    newer = make_spec("3")  # a newer release is pending: the rollout restarts first
    assert plan_queries(newer, drv.status, NS, NAME, now=at(60)) == []
    no_gates = started(stages=[{"name": "s", "cohorts": ["everyone"]}])
    assert plan_queries(no_gates.spec, no_gates.status, NS, NAME, now=at(60)) == []


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
    queries = plan_queries(drv.spec, drv.status, NS, NAME, now=at(60))
    assert [q.promql.split("{")[0] for q in queries] == ["sum(istio_errors", "sum(istio_total"]


def test_first_release_driver_sanity() -> None:
    spec = make_spec()
    d = Driver(spec, ready={release_id(spec)}).call()
    assert plan_queries(spec, d.status, NS, NAME, now=at(60)) == []

"""The Grafana dashboard: generated from llm_rollout.gen.dashboard, shipped in the chart and in
docs/ without drift, laid out and filtered the way Grafana and users need."""

from __future__ import annotations

import json
import re

from llm_rollout.gen import dashboard as grafana


def test_shipped_copies_equal_the_generator_output() -> None:
    text = grafana.dashboard_json()
    for path in grafana.OUTPUTS:
        assert path.read_text() == text, f"{path} is stale: run `make dashboard`"
    assert grafana.main(["--check"]) == 0


def test_template_variables_and_annotations() -> None:
    board = grafana.build_dashboard()
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert {"datasource", "namespace", "deployment", "window"} <= set(variables)
    assert variables["deployment"]["definition"].startswith("label_values(llm_rollout_phase{")
    assert "$namespace" in variables["deployment"]["definition"]
    names = [a["name"] for a in board["annotations"]["list"]]
    assert names == ["Annotations & Alerts", "Decisions", "Rollbacks"]
    for annotation in board["annotations"]["list"][1:]:
        assert "llm_rollout_decisions_total" in annotation["expr"]
        assert "$namespace" in annotation["expr"] and "$deployment" in annotation["expr"]


def test_every_rollout_query_filters_on_namespace_and_deployment() -> None:
    board = grafana.build_dashboard()
    operator_wide = {"Operator replicas leading", "Analysis time (p95)"}
    for title, ref, expr in grafana.panel_queries(board):
        if title in operator_wide:
            continue
        for selector in re.findall(r"[a-z_:]+\{[^}]*\}", expr):
            assert 'namespace=~"$namespace"' in selector, (title, ref, selector)
            assert 'deployment=~"$deployment"' in selector, (title, ref, selector)
        assert expr.count("(") == expr.count(")"), (title, ref)


def test_the_issue_asks_for_these_panels() -> None:
    board = grafana.build_dashboard()
    exprs = "\n".join(e for _t, _r, e in grafana.panel_queries(board))
    for metric in (
        "llm_rollout_stage_index",
        "llm_rollout_step_percent",
        "llm_rollout_phase",
        "llm_rollout_gate_value",
        "llm_rollout_gate_threshold",
        "llm_rollout_gate_interval_lower",
        "llm_rollout_gate_interval_upper",
        "llm_feedback_total",
        "llm_feedback_score_sum",
        "llm_eval_score",
        "llm_router_requests_total",
        "llm_router_request_duration_seconds_bucket",
        "llm_router_time_to_first_token_seconds_bucket",
        "llm_router_fallbacks_total",
    ):
        assert metric in exprs, metric
    assert "sum by (release, cohort)" in exprs  # feedback and ratings by release and cohort


def test_layout_fits_the_grid_without_overlaps() -> None:
    board = grafana.build_dashboard()
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps at {(x, y)}"
                cells.add((x, y))
        for target in panel.get("targets", []):
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    json.dumps(board)  # serialisable

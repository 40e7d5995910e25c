"""`llm-rollout status` (and `kubectl llm-rollout status`): the readable table."""

from __future__ import annotations

from typing import Any

from llm_rollout.cli.statusview import render_status


def rollout(**status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "rollout.llmops.io/v1alpha1",
        "kind": "LLMDeployment",
        "metadata": {"namespace": "team", "name": "chat"},
        "status": status,
    }


def history(n: int) -> list[dict[str, Any]]:
    return [
        {
            "time": f"2026-11-28T12:{i:02d}:05Z",
            "decision": "Advance" if i else "Start",
            "stage": "experts" if i < 3 else "beta",
            "step": i,
            "reason": f"Reason{i}",
            "message": f"message {i}",
        }
        for i in range(n)
    ]


PROGRESSING = rollout(
    phase="Progressing",
    stage="beta",
    stageIndex=1,
    step="1/2 (50%)",
    stepIndex=0,
    stepPercent=50,
    exposed=True,
    message="holding: thumbs-up inconclusive",
    stable={"id": "aaaaaaaaaa"},
    candidate={"id": "bbbbbbbbbb"},
    gates=[
        {
            "name": "thumbs-up",
            "kind": "Ratio",
            "verdict": "Inconclusive",
            "value": 0.7234,
            "interval": [0.6512, 0.7861],
            "samples": 152,
            "threshold": ">= 0.7",
            "message": "interval straddles 0.7",
        },
        {
            "name": "errors",
            "kind": "Ratio",
            "verdict": "Pass",
            "value": 0.0012,
            "interval": [0.0001, 0.0066],
            "samples": 1830,
            "threshold": "<= 0.02",
        },
        {
            "name": "latency",
            "kind": "Threshold",
            "verdict": "Error",
            "message": "Prometheus unreachable",
        },
    ],
    routing={
        "stable": {"id": "aaaaaaaaaa"},
        "candidate": {"id": "bbbbbbbbbb"},
        "routes": [
            {"cohort": "experts", "candidatePercent": 100},
            {"cohort": "beta", "candidatePercent": 50},
            {"cohort": "everyone", "candidatePercent": 0},
        ],
    },
    conditions=[
        {
            "type": "Ready",
            "status": "True",
            "reason": "Progressing",
            "lastTransitionTime": "2026-11-28T12:00:00Z",
        },
        {
            "type": "MetricsAvailable",
            "status": "False",
            "reason": "QueryFailed",
            "lastTransitionTime": "2026-11-28T12:05:00Z",
        },
    ],
    history=history(11),
)


def section(text: str, title: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    out = []
    for line in lines[start + 1 :]:
        if not line:
            break
        out.append(line)
    return out


def test_header_shows_phase_stage_step_and_releases() -> None:
    text = render_status(PROGRESSING)
    first, second, third = text.splitlines()[:3]
    assert first == "team/chat   phase: Progressing   stage: beta   step: 1/2 (50%)"
    assert second == "stable: aaaaaaaaaa   candidate: bbbbbbbbbb   exposed: yes"
    assert third == "message: holding: thumbs-up inconclusive"


def test_gates_are_an_aligned_table_with_value_interval_samples_threshold_verdict() -> None:
    rows = section(render_status(PROGRESSING), "GATES")
    header, thumbs, errors, latency = rows
    assert header.split() == [
        "NAME",
        "KIND",
        "VALUE",
        "INTERVAL",
        "SAMPLES",
        "THRESHOLD",
        "VERDICT",
        "MESSAGE",
    ]
    # every column starts where its header starts
    for column in ("KIND", "VALUE", "INTERVAL", "SAMPLES", "THRESHOLD", "VERDICT"):
        at = header.index(column)
        for row in (thumbs, errors, latency):
            assert row[at - 2 : at] == "  " and row[at] != " ", (column, row)
    assert "0.7234" in thumbs and "[0.6512, 0.7861]" in thumbs and "152" in thumbs
    assert "Inconclusive" in thumbs and "interval straddles 0.7" in thumbs
    assert "0.0012" in errors and "<= 0.02" in errors and "Pass" in errors
    # a gate without a value shows dashes, not "None"
    assert latency.split()[:6] == ["latency", "Threshold", "-", "-", "-", "-"]
    assert "None" not in render_status(PROGRESSING)


def test_routing_conditions_and_only_the_recent_decisions() -> None:
    text = render_status(PROGRESSING)
    routes = section(text, "ROUTING")
    assert [r.split() for r in routes[1:]] == [
        ["experts", "100"],
        ["beta", "50"],
        ["everyone", "0"],
    ]
    conditions = section(text, "CONDITIONS")
    assert conditions[2].split() == ["MetricsAvailable", "False", "QueryFailed"]
    decisions = section(text, "RECENT DECISIONS")
    assert len(decisions) == 1 + 8, "the last 8 decisions"
    assert decisions[1].split()[:4] == ["12:03:05", "Advance", "beta", "Reason3"]
    assert decisions[-1].startswith("12:10:05")
    assert len(section(render_status(PROGRESSING, history=3), "RECENT DECISIONS")) == 4


def test_a_new_object_without_status_renders() -> None:
    text = render_status(rollout())
    assert text.splitlines() == [
        "team/chat   phase: Pending   stage: -   step: -",
        "stable: -   candidate: -   exposed: no",
    ]


def test_docs_cli_shows_the_exact_patch_of_every_action() -> None:
    from tests.conftest import REPO_ROOT

    from llm_rollout.api.actions import ACTIONS, kubectl_equivalent

    doc = (REPO_ROOT / "docs" / "cli.md").read_text()
    for action in ACTIONS:
        assert kubectl_equivalent(action, "NAME", "NAMESPACE") in doc, action


def test_the_sample_ratio_check_has_its_line() -> None:
    check = {
        "verdict": "Error",
        "expected": 0.5,
        "observed": 0.2,
        "candidate": 100,
        "stable": 400,
        "message": "sample ratio mismatch: candidate got 20.0% of 500 "
        "users placed in this step (100 candidate, 400 stable), the routing promises 50%",
    }
    text = render_status({**PROGRESSING, "status": {**PROGRESSING["status"], "sampleRatio": check}})
    (line,) = [ln for ln in text.splitlines() if ln.startswith("SAMPLE RATIO")]
    assert "Error: sample ratio mismatch: candidate got 20.0% of 500 users" in line
    assert len(section(text, "GATES")) == 4  # its own block, after the gates
    assert "SAMPLE RATIO" not in render_status(PROGRESSING)

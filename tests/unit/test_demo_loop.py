"""The demo's pure parts around the trace backend: which answer its screenshot shows, and
when the dataset loop (B'' rolled back, its bad answers a golden set) counts as working."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llm_rollout.demo.loop import loop_problems
from llm_rollout.demo.scenario import (
    BAD_ANSWERS,
    REGRESSION_SUITE,
    DatasetLoop,
    LoopRun,
    regression_run,
)
from llm_rollout.demo.screenshot import output_text, regressed_answer
from llm_rollout.telemetry.genai import ContentPolicy


def answer(span_id: str, *, release: str = "bad", failed: tuple[str, ...] = ("brand-names",),
           at: str = "2026-12-03T10:00:00") -> dict[str, Any]:  # fmt: skip
    return {
        "name": "chat assistant",
        "context": {"trace_id": "t" + span_id, "span_id": span_id},
        "parent_id": None,
        "start_time": at,
        "attributes": {
            "llm_rollout.release.id": release,
            "llm_rollout.request_id": "r" + span_id,
            "llm_rollout.checks.failed": list(failed),
            "gen_ai.output.messages": ContentPolicy(capture=True).output(
                "Teilen die Globex", "stop"
            ),
        },
        "events": [],
    }


def feedback(parent: str, label: str) -> dict[str, Any]:
    attrs = {"gen_ai.evaluation.name": "expert_feedback", "gen_ai.evaluation.score.label": label}
    event = {"name": "gen_ai.evaluation.result", "attributes": attrs}
    return {"name": "feedback expert", "context": {"span_id": "f" + parent}, "parent_id": parent,
            "start_time": "2026-12-03T10:00:01", "attributes": {}, "events": [event]}  # fmt: skip


def test_the_screenshot_shows_a_regressed_answer_with_a_failed_check_and_a_negative_rating() -> (
    None
):
    spans = [
        answer("a1", at="2026-12-03T10:00:05"),
        feedback("a1", "negative"),
        answer("a2", failed=()),  # no failed check
        feedback("a2", "negative"),
        answer("a3"),
        feedback("a3", "positive"),  # not a negative rating
        answer("a4", release="good"),  # another release
        feedback("a4", "negative"),
        answer("a5", at="2026-12-03T10:00:09"),  # later than a1
        feedback("a5", "negative"),
    ]
    found = regressed_answer(spans, "bad")
    assert found is not None and found["context"]["span_id"] == "a1"
    assert regressed_answer(spans[2:8], "bad") is None
    assert output_text(found) == "Teilen die Globex"
    assert output_text({"attributes": {}}) == ""


def loop(bad: LoopRun, good: LoopRun, cases: int = 4) -> DatasetLoop:
    return DatasetLoop(cases, f"{cases} cases", Path("x.jsonl"), [bad, good])


def run(label: str, composite: float | None, phase: str = "Succeeded") -> LoopRun:
    return LoopRun(label, label, f"run-{label}", phase, composite, 0, 4)


def test_the_golden_set_fails_the_regressed_release_and_passes_the_good_one() -> None:
    assert loop_problems(loop(run("B''", 0.31), run("B'", 0.93))) == []
    [wrong] = loop_problems(loop(run("B''", 0.85), run("B'", 0.93)))
    assert "on B'': expected it to fail" in wrong
    [wrong] = loop_problems(loop(run("B''", 0.31), run("B'", 0.93, phase="Failed")))
    assert "on B': expected it to pass, got Failed" in wrong
    assert loop_problems(loop(run("B''", 0.31), run("B'", None)))  # no score is no pass
    [empty] = loop_problems(DatasetLoop(0, "0 cases from 0 bad answers", Path("x")))
    assert "no bad answer of B'' became an eval case" in empty


def test_the_regression_run_uses_the_demo_suite_on_the_bad_answers() -> None:
    suite = {"name": "translation", "dataset": {"configMapRef": {"name": "golden", "key": "k"}},
             "judges": [{"name": "accuracy"}], "compareStable": True}  # fmt: skip
    obj = regression_run("assistant-bad-production-regressions", "bad", suite, model="m", port=9)
    spec = obj["spec"]
    assert obj["kind"] == "LLMEvalRun" and spec["release"] == "bad" and spec["port"] == 9
    assert spec["suite"]["name"] == REGRESSION_SUITE
    assert spec["suite"]["dataset"] == {"configMapRef": {"name": BAD_ANSWERS, "key": "cases.jsonl"}}
    assert spec["suite"]["judges"] == suite["judges"] and spec["suite"]["compareStable"] is False
    assert suite["name"] == "translation"  # the demo's own suite is left as it was

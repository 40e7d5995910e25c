"""An eval run as spans: in its rollout's trace, a span per case, every check and judge
score as a `gen_ai.evaluation.result` event, content only when switched on."""

from __future__ import annotations

import argparse
import json
from typing import Any

import pytest

from llm_rollout.api.evalrun import LLMEvalRunSpec
from llm_rollout.evals import cli as eval_cli
from llm_rollout.evals.aggregate import CaseOutcome
from llm_rollout.evals.client import CallError
from llm_rollout.evals.dataset import Case
from llm_rollout.evals.judge import InvalidScore, JudgeScore
from llm_rollout.evals.worker import run as run_eval
from llm_rollout.heuristics import CheckResult
from llm_rollout.telemetry import genai
from llm_rollout.telemetry.evalrun import RunEnd, eval_run_spans, eval_run_trace
from llm_rollout.telemetry.rollout import RolloutKey
from llm_rollout.telemetry.spans import SpanRecord

NS, RUN = "team", "bot-abc-experts-golden-1"
T0 = 1_800_000_000.0


def run_spec() -> LLMEvalRunSpec:
    judge = {"endpoint": "http://j/v1", "model": "sim-judge", "rubric": "r"}
    return LLMEvalRunSpec.model_validate(
        {
            "deployment": "bot",
            "release": "abc",
            "stage": "experts",
            "attempt": 2,
            "stableRelease": "def",
            "suite": {
                "name": "golden",
                "stages": ["experts"],
                "dataset": {"configMapRef": {"name": "d", "key": "k"}},
                "checks": [{"name": "brand", "type": "preservedNames", "names": ["Acme"]}],
                "judges": [{"name": "accuracy", **judge}, {"name": "tone", **judge}],
                "passThreshold": 0.6,
            },
        }
    )


def case(i: int, text: str = "Is the Acme Widget in stock? mail me: ann@example.org") -> Case:
    return Case(f"c{i}", ({"role": "user", "content": text},), line=i)


def outcomes() -> dict[str, list[CaseOutcome]]:
    good = CaseOutcome(
        case(1),
        "abc",
        answer="Yes, the Acme Widget is in stock.",
        checks=[CheckResult("brand", True)],
        scores={"accuracy": JudgeScore(5, "correct"), "tone": JudgeScore(4)},
        started=T0,
        finished=T0 + 0.4,
    )
    bad = CaseOutcome(
        case(2),
        "abc",
        answer="Yes, the widget is in stock.",
        checks=[CheckResult("brand", False, "missing: Acme")],
        scores={"accuracy": JudgeScore(2, "drops the name"), "tone": InvalidScore("malformed")},
        started=T0 + 0.1,
        finished=T0 + 0.9,
    )
    down = CaseOutcome(
        case(3), "abc", error=CallError("timeout", "no answer"), started=T0, finished=T0 + 5
    )
    on_stable = CaseOutcome(
        case(1),
        "def",
        answer="Yes, the Acme Widget is in stock.",
        checks=[CheckResult("brand", True)],
        scores={"accuracy": JudgeScore(5), "tone": JudgeScore(5)},
        started=T0,
        finished=T0 + 0.3,
    )
    return {"abc": [good, bad, down], "def": [on_stable]}


def spans(capture: bool = False, owner_uid: str | None = "uid-1") -> list[SpanRecord]:
    spec = run_spec()
    return eval_run_spans(
        eval_run_trace(NS, RUN, spec, owner_uid),
        namespace=NS,
        run_name=RUN,
        spec=spec,
        outcomes=outcomes(),
        started_ns=int(T0 * 1e9) - 1000,
        ended_ns=int((T0 + 6) * 1e9),
        end=RunEnd("Succeeded", "Completed", "1/3 cases passed", 0.41, 3, 1),
        content=genai.ContentPolicy(capture=capture, max_chars=200),
    )


def by_name(records: list[SpanRecord]) -> dict[tuple[str, str], SpanRecord]:
    return {(s.name, s.attributes[genai.RELEASE_ID]): s for s in records}


def evaluations(span: SpanRecord) -> dict[str, dict[str, Any]]:
    assert {e.name for e in span.events} == {genai.EVALUATION_EVENT}
    return {e.attributes[genai.EVALUATION_NAME]: dict(e.attributes) for e in span.events}


def test_a_rollouts_run_is_in_the_rollouts_trace_under_its_root() -> None:
    key = RolloutKey("uid-1", "abc", 2)
    records = spans()
    run = by_name(records)[("eval golden", "abc")]
    assert run.trace_id == key.trace_id and run.parent_span_id == key.root_span_id
    assert {s.trace_id for s in records} == {key.trace_id}
    cases = [s for s in records if s is not run]
    assert len(cases) == 4 and {s.parent_span_id for s in cases} == {run.span_id}
    assert len({s.span_id for s in records}) == 5
    assert run.attributes | {} == run.attributes | {
        "llm_rollout.eval.run": RUN,
        "llm_rollout.eval.suite": "golden",
        "llm_rollout.eval.phase": "Succeeded",
        "llm_rollout.eval.composite": 0.41,
        "llm_rollout.eval.cases.total": 3,
        "llm_rollout.attempt": 2,
        genai.DEPLOYMENT: "bot",
    }
    assert run.error is None
    # The same run gives the same ids, wherever and whenever it is traced.
    assert [s.span_id for s in spans()] == [s.span_id for s in records]


def test_a_run_made_by_hand_is_a_trace_of_its_own() -> None:
    records = spans(owner_uid=None)
    run = by_name(records)[("eval golden", "abc")]
    assert run.parent_span_id is None
    assert run.trace_id != RolloutKey("uid-1", "abc", 2).trace_id
    assert {s.trace_id for s in records} == {run.trace_id}


def test_each_case_carries_its_checks_and_judge_scores_as_evaluation_events() -> None:
    records = by_name(spans())
    good = records[("eval case c1", "abc")]
    assert good.start_ns == int(T0 * 1e9) and good.end_ns == int((T0 + 0.4) * 1e9)
    assert good.attributes["llm_rollout.eval.case.result"] == "pass"
    events = evaluations(good)
    assert events["brand"] == {
        genai.EVALUATION_NAME: "brand",
        genai.EVALUATION_LABEL: "pass",
        genai.EVALUATION_SCORE: 1.0,
        genai.EVALUATION_SOURCE: "heuristic",  # the same as the router's online checks
    }
    assert events["accuracy"] | {} == events["accuracy"] | {
        genai.EVALUATION_SCORE: 5.0,
        genai.EVALUATION_LABEL: "pass",
        genai.EVALUATION_EXPLANATION: "correct",
        genai.EVALUATION_SOURCE: "judge",
        "llm_rollout.judge.model": "sim-judge",
    }

    bad = records[("eval case c2", "abc")]
    assert bad.attributes[genai.CHECKS_FAILED] == ("brand",)
    assert bad.attributes["llm_rollout.eval.case.result"] == "fail"
    assert bad.attributes["llm_rollout.eval.case.criterion"] == "brand"
    events = evaluations(bad)
    assert events["brand"][genai.EVALUATION_LABEL] == "fail"
    assert events["brand"][genai.EVALUATION_EXPLANATION] == "missing: Acme"
    # 2 of 1..5 normalises to 0.25, under the suite's pass threshold of 0.6
    assert events["accuracy"][genai.EVALUATION_LABEL] == "fail"
    assert events["accuracy"][genai.EVALUATION_SCORE] == 2.0
    assert events["tone"][genai.EVALUATION_LABEL] == "invalid"
    assert genai.EVALUATION_SCORE not in events["tone"]
    assert events["tone"][genai.ERROR_TYPE] == "malformed"


def test_a_case_the_release_did_not_answer_is_an_error_span() -> None:
    down = by_name(spans())[("eval case c3", "abc")]
    assert down.error == "timeout: no answer"
    assert down.attributes[genai.ERROR_TYPE] == "timeout"
    assert down.attributes["llm_rollout.eval.case.result"] == "error"
    assert down.events == ()


def test_stables_answers_are_cases_of_their_own_release() -> None:
    records = by_name(spans())
    assert ("eval case c1", "def") in records
    assert records[("eval case c1", "def")].span_id != records[("eval case c1", "abc")].span_id


def test_content_only_when_switched_on_and_cut_to_size() -> None:
    assert not any(genai.INPUT_MESSAGES in s.attributes for s in spans())
    assert not any(genai.OUTPUT_MESSAGES in s.attributes for s in spans())
    good = by_name(spans(capture=True))[("eval case c1", "abc")]
    assert "Acme Widget in stock?" in good.attributes[genai.INPUT_MESSAGES]
    assert "Yes, the Acme Widget" in good.attributes[genai.OUTPUT_MESSAGES]
    # The conventions require a finish reason; this outcome's release did not give one.
    [out] = json.loads(good.attributes[genai.OUTPUT_MESSAGES])
    assert out["finish_reason"] == "unknown" and out["role"] == "assistant"
    long = eval_run_spans(
        eval_run_trace(NS, RUN, run_spec(), "uid-1"),
        namespace=NS,
        run_name=RUN,
        spec=run_spec(),
        outcomes={"abc": [CaseOutcome(case(9, "x" * 500), "abc", answer="y")]},
        started_ns=0,
        ended_ns=1,
        end=RunEnd("Succeeded", "Completed", ""),
        content=genai.ContentPolicy(capture=True, max_chars=50),
    )
    assert "[truncated 450 chars]" in long[1].attributes[genai.INPUT_MESSAGES]


def test_the_release_request_carries_the_case_spans_trace_context() -> None:
    spec = run_spec()
    trace = eval_run_trace(NS, RUN, spec, "uid-1")
    good = by_name(spans())[("eval case c1", "abc")]
    assert trace.traceparent("abc", "c1") == f"00-{good.trace_id:032x}-{good.span_id:016x}-01"


def test_a_failed_run_is_an_error_span() -> None:
    spec = run_spec()
    [run] = eval_run_spans(
        eval_run_trace(NS, RUN, spec, "uid-1"),
        namespace=NS,
        run_name=RUN,
        spec=spec,
        outcomes={},
        started_ns=5,
        ended_ns=2,  # a clock step back: the span still ends after it starts
        end=RunEnd("Failed", "DatasetMissing", "ConfigMap team/d not found"),
        content=genai.ContentPolicy(),
    )
    assert run.error == "DatasetMissing: ConfigMap team/d not found"
    assert run.end_ns >= run.start_ns


def test_the_runner_refuses_an_endpoint_that_is_no_url(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    eval_cli.add_arguments(parser)
    args = parser.parse_args(["--run", f"{NS}/{RUN}", "--otlp-endpoint", "collector:4318"])
    assert run_eval(args) == 2
    assert "is not an http(s) URL" in capsys.readouterr().err

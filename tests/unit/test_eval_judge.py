"""LLM-as-judge: the prompt's sections and robust parsing of the judge's answer."""

from __future__ import annotations

import pytest

from llm_rollout.api.spec import Judge, JudgeScale
from llm_rollout.evals.dataset import Case
from llm_rollout.evals.judge import (
    ANSWER,
    QUESTION,
    REFERENCE,
    RUBRIC,
    SCALE,
    InvalidScore,
    JudgeScore,
    judge_messages,
    parse_judge_output,
    split_sections,
)

SCALE_1_5 = JudgeScale()


@pytest.mark.parametrize(
    ("text", "score", "reason"),
    [
        ('{"score": 4, "reason": "fine"}', 4, "fine"),
        ('  {"score": 5}\n', 5, ""),
        ('{"score": 3.5, "reason": "half"}', 3.5, "half"),
        ('{"score": "4", "reason": "a string number"}', 4, "a string number"),
        ('```json\n{"score": 2, "reason": "fenced"}\n```', 2, "fenced"),
        ('Verdict:\n```\n{"score": 1, "reason": "bare fence"}\n```\nThanks.', 1, "bare fence"),
        ('I think {"score": 4, "reason": "amid prose"} is right.', 4, "amid prose"),
        ('{"score": 4, "reason": "x"} and again {"score": 4, "reason": "y"}', 4, "x"),
        ('{"score": 1, "reason": 7}', 1, ""),
    ],
)
def test_valid_scores(text: str, score: float, reason: str) -> None:
    assert parse_judge_output(text, SCALE_1_5) == JudgeScore(score, reason)


@pytest.mark.parametrize(
    ("text", "kind", "detail"),
    [
        ("The answer is great!", "malformed", "no JSON object with a score"),
        ("", "malformed", "no JSON object"),
        ('{"rating": 4}', "malformed", "no JSON object with a score"),
        ('[{"score": 4}]', "malformed", "no JSON object with a score"),
        ('{"score": "four"}', "malformed", "score is not a number"),
        ('{"score": true}', "malformed", "score is not a number"),
        ('{"score": null}', "malformed", "score is not a number"),
        ('{"score": NaN}', "malformed", "score is not a number"),
        ('{"score": 1} or maybe {"score": 5}', "malformed", "several different scores"),
        ('{"score": 6, "reason": "generous"}', "out_of_scale", "score 6 outside 1..5"),
        ('{"score": 0}', "out_of_scale", "outside 1..5"),
        ('{"score": -3}', "out_of_scale", "outside"),
        ('```json\n{"score": 9}\n```', "out_of_scale", "outside"),
        ('{"score": 4', "malformed", "no JSON object"),
    ],
)
def test_invalid_scores_never_raise(text: str, kind: str, detail: str) -> None:
    result = parse_judge_output(text, SCALE_1_5)
    assert isinstance(result, InvalidScore)
    assert result.kind == kind and detail in result.detail


def test_other_scales() -> None:
    ten = JudgeScale.model_validate({"min": 0, "max": 10})
    assert parse_judge_output('{"score": 0}', ten) == JudgeScore(0)
    assert parse_judge_output('{"score": 10}', ten) == JudgeScore(10)
    assert isinstance(parse_judge_output('{"score": 11}', ten), InvalidScore)
    assert ten.normalise(7.5) == 0.75


def test_garbage_of_any_size_is_invalid() -> None:
    huge = "{" * 200_000 + '"score": 3}'
    assert isinstance(parse_judge_output(huge, SCALE_1_5), InvalidScore)
    assert isinstance(parse_judge_output("\x00\xff" * 1000, SCALE_1_5), InvalidScore)


def test_prompt_has_every_section_and_a_strict_format() -> None:
    judge = Judge.model_validate(
        {
            "name": "accuracy",
            "endpoint": "http://j/v1",
            "model": "m",
            "rubric": "Is it accurate?\nBe strict.",
            "scale": {"min": 1, "max": 10},
        }
    )
    case = Case("c", ({"role": "user", "content": "Translate: hello"},), reference="hallo")
    system, user = judge_messages(judge, case, "Hallo!")
    assert system["role"] == "system" and '{"score": <integer from 1 to 10>' in system["content"]
    sections = split_sections(user["content"])
    assert sections == {
        RUBRIC: "Is it accurate?\nBe strict.",
        SCALE: "An integer from 1 (worst) to 10 (best).",
        QUESTION: "Translate: hello",
        REFERENCE: "hallo",
        ANSWER: "Hallo!",
    }
    conversation = Case(
        "d", ({"role": "system", "content": "be nice"}, {"role": "user", "content": "hi"})
    )
    sections = split_sections(judge_messages(judge, conversation, "x")[1]["content"])
    assert sections[QUESTION] == "system: be nice\nuser: hi"
    assert sections[REFERENCE] == "(none)"

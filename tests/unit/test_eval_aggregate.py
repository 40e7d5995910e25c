"""From case outcomes to criteria, composite, case counts and the run's verdict."""

from __future__ import annotations

from typing import Any

import pytest

from llm_rollout.api.evalrun import CaseResult, CriterionKind
from llm_rollout.api.spec import EvalSuite
from llm_rollout.evals.aggregate import (
    CaseOutcome,
    aggregate,
    case_result,
    composite,
    failures,
    run_problem,
)
from llm_rollout.evals.client import CallError
from llm_rollout.evals.dataset import Case
from llm_rollout.evals.judge import InvalidScore, JudgeScore
from llm_rollout.heuristics import CheckResult


def make_suite(**overrides: Any) -> EvalSuite:
    return EvalSuite.model_validate(
        {
            "name": "s",
            "stages": ["experts"],
            "dataset": {"configMapRef": {"name": "d", "key": "k"}},
            "checks": [{"name": "brand", "type": "preservedNames", "names": ["Acme"]}],
            "judges": [
                {"name": "accuracy", "endpoint": "http://j/v1", "model": "m", "rubric": "r"},
                {
                    "name": "tone",
                    "endpoint": "http://j/v1",
                    "model": "m",
                    "rubric": "r",
                    "scale": {"min": 0, "max": 10},
                    "weight": 3,
                },
            ],
            **overrides,
        }
    )


def outcome(
    i: int,
    *,
    brand: bool = True,
    accuracy: float | InvalidScore = 5,
    tone: float | InvalidScore = 10,
    error: CallError | None = None,
) -> CaseOutcome:
    case = Case(f"c{i}", ({"role": "user", "content": "x"},), line=i)
    if error is not None:
        return CaseOutcome(case, "r1", error=error)

    def score(v: float | InvalidScore) -> JudgeScore | InvalidScore:
        return v if isinstance(v, InvalidScore) else JudgeScore(v, "because")

    return CaseOutcome(
        case,
        "r1",
        answer="a",
        seconds=0.5 + i,
        checks=[CheckResult("brand", brand, "" if brand else "lost 'Acme'")],
        scores={"accuracy": score(accuracy), "tone": score(tone)},
    )


MALFORMED = InvalidScore("malformed", "no JSON")


def test_case_results_in_order_of_precedence() -> None:
    suite = make_suite()
    assert case_result(suite, outcome(0)) == (CaseResult.PASS, "", "")
    assert case_result(suite, outcome(0, error=CallError("timeout", "slow")))[0] is (
        CaseResult.ERROR
    )
    assert case_result(suite, outcome(0, brand=False, accuracy=MALFORMED)) == (
        CaseResult.FAIL,
        "brand",
        "lost 'Acme'",
    )
    result, criterion, detail = case_result(suite, outcome(0, accuracy=MALFORMED, tone=2))
    assert (result, criterion) == (CaseResult.FAIL, "tone")  # a real failure wins
    assert detail == "score 2 below the pass threshold: because"
    assert case_result(suite, outcome(0, accuracy=MALFORMED)) == (
        CaseResult.INVALID,
        "accuracy",
        "malformed: no JSON",
    )
    # 0.75 on 1..5 is 4: a 4 passes, a 3 fails
    assert case_result(suite, outcome(0, accuracy=4))[0] is CaseResult.PASS
    assert case_result(suite, outcome(0, accuracy=3))[0] is CaseResult.FAIL


def test_aggregate_per_criterion_and_counts() -> None:
    suite = make_suite()
    outcomes = [
        outcome(0),
        outcome(1, brand=False, accuracy=3, tone=5),
        outcome(2, accuracy=MALFORMED),
        outcome(3, accuracy=InvalidScore("http_401", "denied")),
        outcome(4, error=CallError("unreachable", "refused")),
    ]
    result = aggregate(suite, "r1", outcomes)
    assert result.release == "r1"
    assert (
        result.cases.total,
        result.cases.passed,
        result.cases.fail,
        result.cases.invalid,
        result.cases.error,
    ) == (5, 1, 1, 2, 1)
    brand, accuracy, tone = result.criteria
    assert (brand.name, brand.kind, brand.count, brand.score, brand.pass_rate) == (
        "brand",
        CriterionKind.CHECK,
        4,
        0.75,
        0.75,
    )
    assert (accuracy.count, accuracy.invalid, accuracy.mean) == (2, 2, 4.0)
    assert accuracy.score == 0.75  # (4 - 1) / (5 - 1)
    assert accuracy.pass_rate == 0.25  # one 5 among four judged: invalid is never a pass
    assert accuracy.invalid_reasons == {"malformed": 1, "http_401": 1}
    assert accuracy.last_error == "http_401: denied"
    assert (tone.count, tone.mean, tone.score) == (4, 8.75, 0.875)
    # composite: brand 0.75 (weight 1), accuracy 0.75 (1), tone 0.875 (3)
    assert result.composite == pytest.approx((0.75 + 0.75 + 3 * 0.875) / 5, abs=1e-6)
    assert result.mean_answer_seconds == pytest.approx(2.0)


def test_composite_is_none_when_a_weighted_criterion_has_no_score() -> None:
    suite = make_suite()
    result = aggregate(suite, "r1", [outcome(0, tone=MALFORMED), outcome(1, tone=MALFORMED)])
    assert result.criterion("tone") is not None and result.criterion("tone").score is None  # type: ignore[union-attr]
    assert result.composite is None
    # ... unless it weighs nothing
    unweighted = make_suite(
        judges=[j.model_dump(by_alias=True) | {"weight": 0} for j in suite.judges]
    )
    assert composite(unweighted, result.criteria) == 1.0  # the brand check alone


def test_run_problems() -> None:
    suite = make_suite()
    fine = aggregate(suite, "r1", [outcome(i) for i in range(4)])
    assert run_problem(suite, fine) is None
    down = aggregate(suite, "r1", [outcome(i, error=CallError("timeout", "t")) for i in range(3)])
    assert run_problem(suite, down) == ("NoAnswers", "release r1 answered none of 3 cases")
    flaky = aggregate(
        suite,
        "r1",
        [outcome(0), *(outcome(i, error=CallError("http_503", "x")) for i in range(1, 4))],
    )
    reason, message = run_problem(suite, flaky) or ("", "")
    assert reason == "ReleaseErrors" and "no answer to 3 of 4 cases" in message
    garbled = aggregate(suite, "r1", [outcome(i, tone=MALFORMED) for i in range(4)])
    reason, message = run_problem(suite, garbled) or ("", "")
    assert reason == "JudgeInvalid"
    assert message.startswith("judge tone: 4 of 4 scores of release r1 invalid (4 malformed")
    tolerant = make_suite(maxInvalidRatio=1.0)
    assert run_problem(tolerant, garbled) is None


def test_failures_list_what_did_not_pass_bounded() -> None:
    suite = make_suite()
    items = [outcome(i, brand=i % 2 == 0) for i in range(60)]
    shown = failures(suite, {"r1": items, "r0": items})
    assert len(shown) == 20
    assert shown[0].case == "c1" and shown[0].criterion == "brand"
    assert shown[0].result is CaseResult.FAIL and shown[0].release == "r1"

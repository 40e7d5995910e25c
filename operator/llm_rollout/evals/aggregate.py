"""From per-case outcomes to what an LLMEvalRun reports (pure).

Per criterion (each check, each judge): a score normalised to 0..1, the mean on
the judge's own scale, the pass rate, the count of valid scores and of invalid
ones by reason. Then a weighted composite, the cases by result, and whether the
run as a whole can be trusted (`run_problem`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from llm_rollout.api.evalrun import (
    MAX_FAILURES_SHOWN,
    MAX_INVALID_REASONS,
    CaseCounts,
    CaseFailure,
    CaseResult,
    CriterionKind,
    CriterionResult,
    EvalResult,
)
from llm_rollout.api.spec import EvalSuite
from llm_rollout.evals.client import CallError
from llm_rollout.evals.dataset import Case
from llm_rollout.evals.judge import InvalidScore, JudgeScore
from llm_rollout.heuristics import CheckResult

DIGITS = 6


@dataclass
class CaseOutcome:
    """What happened to one case with one release."""

    case: Case
    release: str
    answer: str | None = None
    finish_reason: str = ""  # as the release said (empty: it did not)
    error: CallError | None = None  # the release gave no answer
    seconds: float | None = None
    checks: list[CheckResult] = field(default_factory=list)
    scores: dict[str, JudgeScore | InvalidScore] = field(default_factory=dict)
    # Wall-clock bounds of the case (answer, checks and judges), epoch seconds: its span.
    started: float | None = None
    finished: float | None = None


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, DIGITS)


def case_result(suite: EvalSuite, outcome: CaseOutcome) -> tuple[CaseResult, str, str]:
    """(result, criterion, detail): the first reason the case did not pass, if any."""
    if outcome.error is not None:
        return CaseResult.ERROR, "", str(outcome.error)
    for check in outcome.checks:
        if not check.passed:
            return CaseResult.FAIL, check.name, check.detail
    invalid: tuple[CaseResult, str, str] | None = None
    for judge in suite.judges:
        score = outcome.scores.get(judge.name)
        if isinstance(score, JudgeScore):
            if judge.scale.normalise(score.score) < suite.pass_threshold:
                detail = f"score {score.score:g} below the pass threshold"
                detail += f": {score.reason}" if score.reason else ""
                return CaseResult.FAIL, judge.name, detail
        elif invalid is None:
            why = f"{score.kind}: {score.detail}" if score else "no score"
            invalid = (CaseResult.INVALID, judge.name, why)
    return invalid or (CaseResult.PASS, "", "")


def _check_criterion(name: str, answered: Sequence[CaseOutcome]) -> CriterionResult:
    passed = [next((c.passed for c in o.checks if c.name == name), False) for o in answered]
    rate = sum(passed) / len(passed) if passed else None
    return CriterionResult(
        name=name,
        kind=CriterionKind.CHECK,
        score=_round(rate),
        mean=_round(rate),
        pass_rate=_round(rate),
        count=len(passed),
    )


def _judge_criterion(
    suite: EvalSuite, index: int, answered: Sequence[CaseOutcome]
) -> CriterionResult:
    judge = suite.judges[index]
    valid: list[float] = []
    invalid: list[InvalidScore] = []
    for outcome in answered:
        score = outcome.scores.get(judge.name, InvalidScore("missing", "not scored"))
        if isinstance(score, JudgeScore):
            valid.append(score.score)
        else:
            invalid.append(score)
    mean = sum(valid) / len(valid) if valid else None
    judged = len(valid) + len(invalid)
    passes = sum(1 for v in valid if judge.scale.normalise(v) >= suite.pass_threshold)
    reasons = Counter(i.kind for i in invalid).most_common(MAX_INVALID_REASONS)
    return CriterionResult(
        name=judge.name,
        kind=CriterionKind.JUDGE,
        score=_round(judge.scale.normalise(mean)) if mean is not None else None,
        mean=_round(mean),
        pass_rate=_round(passes / judged) if judged else None,
        count=len(valid),
        invalid=len(invalid),
        invalid_reasons=dict(reasons),
        last_error=f"{invalid[-1].kind}: {invalid[-1].detail}"[:500] if invalid else "",
    )


def composite(suite: EvalSuite, criteria: Sequence[CriterionResult]) -> float | None:
    """Weighted mean of the scores; None if a weighted criterion has none."""
    weights = {c.name: suite.check_weight for c in suite.checks}
    weights |= {j.name: j.weight for j in suite.judges}
    total = weighted = 0.0
    for criterion in criteria:
        weight = weights.get(criterion.name, 0.0)
        if weight <= 0:
            continue
        if criterion.score is None:
            return None
        total += weight
        weighted += weight * criterion.score
    return _round(weighted / total) if total > 0 else None


def aggregate(suite: EvalSuite, release: str, outcomes: Sequence[CaseOutcome]) -> EvalResult:
    answered = [o for o in outcomes if o.error is None]
    criteria = [_check_criterion(c.name, answered) for c in suite.checks]
    criteria += [_judge_criterion(suite, i, answered) for i in range(len(suite.judges))]
    counts = Counter(case_result(suite, o)[0] for o in outcomes)
    seconds = [o.seconds for o in answered if o.seconds is not None]
    return EvalResult(
        release=release,
        cases=CaseCounts(
            total=len(outcomes),
            passed=counts[CaseResult.PASS],
            fail=counts[CaseResult.FAIL],
            invalid=counts[CaseResult.INVALID],
            error=counts[CaseResult.ERROR],
        ),
        criteria=criteria,
        composite=composite(suite, criteria),
        mean_answer_seconds=_round(sum(seconds) / len(seconds)) if seconds else None,
    )


def failures(suite: EvalSuite, outcomes: Mapping[str, Sequence[CaseOutcome]]) -> list[CaseFailure]:
    """Up to MAX_FAILURES_SHOWN cases that did not pass, candidate first."""
    out: list[CaseFailure] = []
    for release, items in outcomes.items():
        for outcome in items:
            result, criterion, detail = case_result(suite, outcome)
            if result is CaseResult.PASS:
                continue
            out.append(
                CaseFailure(
                    case=outcome.case.id,
                    release=release,
                    result=result,
                    criterion=criterion,
                    detail=detail[:500],
                )
            )
            if len(out) >= MAX_FAILURES_SHOWN:
                return out
    return out


def _reasons(reasons: Mapping[str, int]) -> str:
    return ", ".join(f"{count} {kind}" for kind, count in reasons.items())


def run_problem(suite: EvalSuite, result: EvalResult) -> tuple[str, str] | None:
    """(reason, message) when the results of a release cannot be trusted, else None."""
    total, errors = result.cases.total, result.cases.error
    who = f"release {result.release}"
    if total and errors == total:
        return "NoAnswers", f"{who} answered none of {total} cases"
    if total and errors / total > suite.max_invalid_ratio:
        return (
            "ReleaseErrors",
            f"{who} gave no answer to {errors} of {total} cases "
            f"(more than maxInvalidRatio {suite.max_invalid_ratio:g})",
        )
    for criterion in result.criteria:
        judged = criterion.count + criterion.invalid
        if (
            criterion.kind is CriterionKind.JUDGE
            and judged
            and (criterion.invalid / judged > suite.max_invalid_ratio)
        ):
            return (
                "JudgeInvalid",
                f"judge {criterion.name}: {criterion.invalid} of {judged} scores of {who} "
                f"invalid ({_reasons(criterion.invalid_reasons)}; e.g. "
                f"{criterion.last_error[:200]})",
            )
    return None

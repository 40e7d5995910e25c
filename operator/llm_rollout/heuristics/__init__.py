"""Heuristic checks of LLM answers, shared by the router and the eval runner."""

from llm_rollout.heuristics.checks import (
    MAX_CHECKED_CHARS,
    CheckResult,
    CheckSpec,
    GlossaryCheck,
    HeuristicCheck,
    MaxLengthCheck,
    NotRegexCheck,
    PreservedNamesCheck,
    RegexCheck,
    RequiredTermsCheck,
    ValidJsonCheck,
    parse_checks,
    run_check,
    run_checks,
)

__all__ = [
    "MAX_CHECKED_CHARS",
    "CheckResult",
    "CheckSpec",
    "GlossaryCheck",
    "HeuristicCheck",
    "MaxLengthCheck",
    "NotRegexCheck",
    "PreservedNamesCheck",
    "RegexCheck",
    "RequiredTermsCheck",
    "ValidJsonCheck",
    "parse_checks",
    "run_check",
    "run_checks",
]

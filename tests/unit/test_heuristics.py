"""The heuristic-check library (pure)."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from llm_rollout.heuristics import (
    CheckResult,
    CheckSpec,
    MaxLengthCheck,
    NotRegexCheck,
    PreservedNamesCheck,
    RegexCheck,
    RequiredTermsCheck,
    ValidJsonCheck,
    parse_checks,
    run_checks,
)


def one(spec: dict[str, object], output: str, input_text: str = "") -> CheckResult:
    [result] = run_checks(parse_checks([spec]), output=output, input_text=input_text)
    return result


def test_parse_all_kinds_from_camel_case() -> None:
    checks = parse_checks(
        [
            {"name": "cites", "type": "regex", "pattern": r"\[\d+\]"},
            {"name": "no-apology", "type": "notRegex", "pattern": "sorry", "ignoreCase": True},
            {"name": "short", "type": "maxLength", "max": 10},
            {"name": "json", "type": "validJson"},
            {"name": "glossary", "type": "requiredTerms", "terms": ["SLA"], "caseSensitive": True},
            {"name": "brands", "type": "preservedNames", "names": ["ACME"]},
        ]
    )
    assert [type(c) for c in checks] == [
        RegexCheck,
        NotRegexCheck,
        MaxLengthCheck,
        ValidJsonCheck,
        RequiredTermsCheck,
        PreservedNamesCheck,
    ]
    assert isinstance(checks[4], RequiredTermsCheck) and checks[4].case_sensitive
    assert parse_checks(None) == []


@pytest.mark.parametrize(
    "bad",
    [
        [{"name": "x", "type": "nope"}],
        [{"name": "x", "type": "regex", "pattern": "("}],
        [{"name": "Bad Name", "type": "validJson"}],
        [{"name": "x", "type": "maxLength", "max": -1}],
        [{"name": "x", "type": "maxLength"}],
        [{"name": "x", "type": "validJson", "extra": 1}],
        [{"name": "x", "type": "requiredTerms", "terms": []}],
        [{"name": "x", "type": "validJson"}, {"name": "x", "type": "maxLength", "max": 1}],
        [{"name": "x", "type": "regex", "pattern": "a", "max": 3}],  # max: not for regex
        [{"name": "x", "type": "regex"}],  # no pattern
        "not a list",
    ],
)
def test_invalid_specs(bad: object) -> None:
    with pytest.raises((ValidationError, ValueError)):
        parse_checks(bad)


def test_flat_spec_tolerates_api_server_defaults() -> None:
    [check] = parse_checks(
        [{"name": "m", "type": "maxLength", "max": 5, "ignoreCase": False, "caseSensitive": False}]
    )
    assert check == MaxLengthCheck(name="m", max=5)
    spec = CheckSpec(name="r", type="regex", pattern="a")
    assert parse_checks([spec, check]) == [RegexCheck(name="r", pattern="a"), check]
    props = json.dumps(CheckSpec.model_json_schema(by_alias=True)["properties"])
    assert "oneOf" not in props and "discriminator" not in props  # CRD-friendly


def test_regex_and_not_regex() -> None:
    assert one({"name": "c", "type": "regex", "pattern": r"\[\d+\]"}, "see [3]").passed
    r = one({"name": "c", "type": "regex", "pattern": r"\[\d+\]"}, "no citation")
    assert not r.passed and "no match" in r.detail
    r = one(
        {"name": "a", "type": "notRegex", "pattern": "sorry", "ignoreCase": True}, "I'm SORRY, Dave"
    )
    assert not r.passed and "SORRY" in r.detail
    assert one({"name": "a", "type": "notRegex", "pattern": "sorry"}, "I'm SORRY").passed


def test_max_length_counts_characters() -> None:
    assert one({"name": "m", "type": "maxLength", "max": 3}, "ééé").passed
    r = one({"name": "m", "type": "maxLength", "max": 3}, "four")
    assert not r.passed and r.detail == "4 > 3 chars"


@pytest.mark.parametrize(
    ("output", "ok"),
    [
        ('{"a": 1}', True),
        ("  [1, 2]\n", True),
        ('```json\n{"a": [1]}\n```', True),
        ("```\n{}\n```", True),
        ("{'a': 1}", False),
        ("", False),
        ('{"a": 1} trailing', False),
    ],
)
def test_valid_json(output: str, ok: bool) -> None:
    assert one({"name": "j", "type": "validJson"}, output).passed is ok


def test_required_terms() -> None:
    spec = {"name": "g", "type": "requiredTerms", "terms": ["SLA", "uptime"]}
    assert one(spec, "our sla covers Uptime").passed
    r = one({**spec, "caseSensitive": True}, "our sla covers uptime")
    assert not r.passed and "'SLA'" in r.detail


def test_preserved_names() -> None:
    spec = {"name": "b", "type": "preservedNames", "names": ["ACME Widget", "Zorb"]}
    src = "Translate: the ACME Widget is great"
    assert one(spec, "Le ACME Widget est super", src).passed
    r = one(spec, "Le Widget ACME est super", src)
    assert not r.passed and "ACME Widget" in r.detail and "Zorb" not in r.detail
    assert one(spec, "anything", "no brands here").passed  # not in the input: no demand
    assert not one(spec, "the acme widget", "the acme widget").passed  # canonical spelling


def test_results_keep_order_and_never_raise() -> None:
    checks = parse_checks(
        [{"name": "a", "type": "validJson"}, {"name": "b", "type": "maxLength", "max": 0}]
    )
    for output in ("", "\x00\udcff", "x" * 1_000_000):
        assert [r.name for r in run_checks(checks, output=output)] == ["a", "b"]

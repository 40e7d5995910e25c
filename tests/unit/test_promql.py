"""PromQL templating: escaping (injection attempts included), variables, syntax checks."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llm_rollout.metrics.presets import PRESETS, MetricKind
from llm_rollout.metrics.promql import (
    TEMPLATE_VARIABLES,
    TemplateError,
    TemplateValues,
    escape_label_value,
    escape_regex,
    regex_alternation,
    render,
    string_literals,
    syntax_problems,
    template_variables,
    validate_template,
)

TEMPLATE = 'sum(rate(x{release="{{ release }}",suite=~"{{ suite }}"}[{{ window }}]))'
INJECTIONS = [
    '"} or vector(1) #',
    '"} or vector(1) # \n',
    'a\\"} or vector(1)',
    "\\",
    'x"\n} or on() vector(1) #',
    "{{ release }}",
    "'`",
]


def values(release: str = "abc", suite: str | None = None) -> TemplateValues:
    return TemplateValues(
        namespace="ns",
        name="app",
        release=release,
        stable_release="s0",
        cohorts=("experts",),
        window="5m",
        suite=suite,
    )


def test_escape_label_value() -> None:
    assert escape_label_value('a"b\\c\nd') == 'a\\"b\\\\c\\nd'


@pytest.mark.parametrize("attack", INJECTIONS)
def test_injection_stays_inside_the_label_value(attack: str) -> None:
    q = render(TEMPLATE, values(release=attack, suite=attack))
    assert syntax_problems(q) == []
    lits = string_literals(q)
    assert lits[0] == attack  # the release label value decodes to exactly the input
    assert re.fullmatch(lits[1], attack)  # the suite regex matches exactly the input
    assert "or vector" not in q.split('"')[0]  # nothing escaped into the query itself
    outside = re.sub(r'"(\\.|[^"\\])*"', '""', q)
    assert outside == 'sum(rate(x{release="",suite=~""}[5m]))'


@given(st.text())
def test_any_value_round_trips_through_a_label_value(value: str) -> None:
    q = render(TEMPLATE, values(release=value, suite=value or None))
    assert syntax_problems(q) == []
    lits = string_literals(q)
    assert lits[0] == value


@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), min_size=1))
def test_escaped_regex_matches_only_itself(value: str) -> None:
    pattern = escape_regex(value)
    assert re.fullmatch(pattern, value, flags=re.DOTALL)
    assert not re.fullmatch(pattern, value + "x", flags=re.DOTALL)


def test_regex_alternation_escapes_each_cohort() -> None:
    assert regex_alternation(["a.b", "c|d", "e"]) == "a\\.b|c\\|d|e"
    q = render(
        'x{cohort=~"{{ cohorts }}"}',
        values().__class__(
            namespace="n",
            name="n",
            release="r",
            stable_release="s",
            cohorts=("a.b", "c"),
            window="1m",
        ),
    )
    assert string_literals(q) == ["a\\.b|c"]
    assert q == 'x{cohort=~"a\\\\.b|c"}'  # and the backslash is escaped for the string


def test_unset_suite_and_criterion_match_anything() -> None:
    q = render('x{suite=~"{{ suite }}",criterion=~"{{criterion}}"}', values())
    assert string_literals(q) == [".*", ".*"]


def test_unknown_variable_is_an_error() -> None:
    with pytest.raises(TemplateError, match="unknown template variable"):
        render('x{a="{{ nope }}"}', values())


def test_template_variables() -> None:
    assert template_variables(TEMPLATE) == ["release", "suite", "window"]
    assert set(TEMPLATE_VARIABLES) == {
        "start",
        "namespace",
        "name",
        "release",
        "stable_release",
        "cohorts",
        "window",
        "suite",
        "criterion",
    }


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ('x{a="{{ nope }}"}', "unknown template variable {{ nope }}"),
        ("x{a={{ release }}}", "must be used inside a double-quoted label value"),
        ("x{a='{{ release }}'}", "must be used inside a double-quoted label value"),
        ('x{a="b"}["{{ window }}"]', "must be used outside strings"),
        ("x{{ release", "malformed template variable"),
        ("", "empty query"),
        ("   # just a comment", "empty query"),
        ("sum(rate(x[5m])", "unclosed '('"),
        ("sum(rate(x[5m)))", "unbalanced ')'"),
        ('x{a="b}', "unterminated string literal"),
        ("x{a=`b}", "unterminated string literal"),
        ('x{a="b\n"}', "unterminated string literal"),
    ],
)
def test_validate_template_problems(template: str, problem: str) -> None:
    problems = validate_template(template)
    assert any(problem in p for p in problems), problems


@pytest.mark.parametrize(
    "template",
    [
        TEMPLATE,
        'sum(x{a="}{)(]["}) / sum(y{b=\'"\'})  # comment with ( and "',
        "histogram_quantile(0.95, sum by (le) (rate(h_bucket[{{ window }}])))",
        'x{a=`raw \\ with "quotes"`}',
        'sum(x{release="{{release}}"})',
    ],
)
def test_validate_template_accepts(template: str) -> None:
    assert validate_template(template) == []


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_are_valid_templates(name: str) -> None:
    preset = PRESETS[name]
    templates = {
        MetricKind.VALUE: [preset.query, preset.samples],
        MetricKind.RATIO: [preset.success, preset.total],
        MetricKind.SCORES: [template for _, template in preset.buckets],
    }[preset.kind]
    for template in filter(None, templates):
        assert validate_template(template) == [], template
        assert {"namespace", "name", "release", "window"} <= set(template_variables(template))


def test_preset_names_and_kinds() -> None:
    assert {n: p.kind.value for n, p in PRESETS.items()} == {
        "feedback-positive-rate": "ratio",
        "expert-rating": "scores",
        "heuristic-pass-rate": "ratio",
        "error-rate": "ratio",
        "latency-p95": "value",
        "ttft-p95": "value",
        "eval-score": "value",
    }
    lower = {n for n, p in PRESETS.items() if p.lower_is_better}
    assert lower == {"error-rate", "latency-p95", "ttft-p95"}


def test_presets_query_the_router_metric_names() -> None:
    from llm_rollout.router.metrics import RouterMetrics

    registry = RouterMetrics().registry
    exported = {m.name for m in registry.collect()}  # counters without _total
    assert {
        "llm_router_requests",
        "llm_feedback",
        "llm_heuristic_checks",
        "llm_router_request_duration_seconds",
        "llm_router_time_to_first_token_seconds",
        "llm_feedback_score",
    } <= exported

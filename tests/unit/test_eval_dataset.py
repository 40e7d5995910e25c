"""Eval datasets: JSON Lines parsing with line numbers, and deterministic sampling."""

from __future__ import annotations

import json

import pytest

from llm_rollout.evals.dataset import Case, DatasetError, parse_dataset, sample_cases


def line(**fields: object) -> str:
    return json.dumps(fields)


GOOD = line(
    id="a",
    messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}],
    reference="hallo",
    tags=["greeting"],
)


def test_cases_with_all_fields_and_the_input_shorthand() -> None:
    text = "\n".join([GOOD, "", "   ", line(id=7, input="bye")]) + "\n"
    a, b = parse_dataset(text)
    assert a == Case(
        "a",
        ({"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}),
        "hallo",
        ("greeting",),
        1,
    )
    assert a.input_text == "hello"
    assert (b.id, b.messages, b.reference, b.tags, b.line) == (
        "7",
        ({"role": "user", "content": "bye"},),
        None,
        (),
        4,
    )


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ('{"id": "x", "messages": [', "not valid JSON"),
        ("[1, 2]", "a case must be a JSON object"),
        (line(messages=[{"role": "user", "content": "x"}]), "missing required field 'id'"),
        (line(id="", input="x"), "missing required field 'id'"),
        (line(id=True, input="x"), "missing required field 'id'"),
        (line(id="x", reference="r"), "missing required field 'messages'"),
        (line(id="x", messages=[]), "'messages' must be a non-empty list"),
        (line(id="x", messages=["hi"]), "messages[0] must be an object"),
        (line(id="x", messages=[{"content": "hi"}]), "messages[0] lacks a 'role'"),
        (line(id="x", messages=[{"role": "user", "content": 3}]), "lacks a string 'content'"),
        (line(id="x", input="i", reference=5), "'reference' must be a string"),
        (line(id="x", input="i", tags="a"), "'tags' must be a list of strings"),
        (line(id="a", input="again"), "duplicate case id 'a' (first on line 1)"),
    ],
)
def test_a_bad_line_is_named_by_its_number(bad: str, message: str) -> None:
    text = "\n".join([GOOD, "", bad, line(id="z", input="never read")])
    with pytest.raises(DatasetError) as err:
        parse_dataset(text)
    assert err.value.line == 3
    assert str(err.value).startswith("dataset line 3: ")
    assert message in str(err.value)


def test_an_empty_dataset_is_an_error() -> None:
    with pytest.raises(DatasetError, match="dataset: no cases"):
        parse_dataset("\n\n")


def test_sampling_is_a_fixed_subset_in_dataset_order() -> None:
    cases = parse_dataset("\n".join(line(id=f"c{i}", input=str(i)) for i in range(50)))
    some = sample_cases(cases, 10, seed="suite")
    assert len(some) == 10
    assert some == sample_cases(cases, 10, seed="suite")  # every run the same
    assert [c.line for c in some] == sorted(c.line for c in some)
    assert some != sample_cases(cases, 10, seed="other-suite")
    assert sample_cases(cases, 0, seed="s") == cases == sample_cases(cases, 80, seed="s")
    # a grown dataset keeps most of the old sample (ranks are per case)
    grown = cases + parse_dataset(line(id="new", input="n"))
    assert len({c.id for c in some} & {c.id for c in sample_cases(grown, 10, seed="suite")}) >= 9

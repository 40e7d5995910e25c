from __future__ import annotations

import pytest

from llm_rollout.engine import ObservationErrorKind
from llm_rollout.metrics.providers import MetricQueryError, parse_instant_vector


def vector(*values: str) -> dict[str, object]:
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [{"metric": {"i": str(i)}, "value": [0, v]} for i, v in enumerate(values)],
        },
    }


def test_single_series_value() -> None:
    assert parse_instant_vector(vector("0.25")) == 0.25


def test_scalar_value() -> None:
    assert (
        parse_instant_vector(
            {"status": "success", "data": {"resultType": "scalar", "result": [0, "3"]}}
        )
        == 3.0
    )


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (vector(), ObservationErrorKind.EMPTY),
        (vector("1", "2"), ObservationErrorKind.MULTIPLE_SERIES),
        (vector("NaN"), ObservationErrorKind.NAN),
        (vector("+Inf"), ObservationErrorKind.NAN),
        (
            {"status": "error", "errorType": "bad_data", "error": "parse error"},
            ObservationErrorKind.BAD_QUERY,
        ),
        (
            {"status": "success", "data": {"resultType": "matrix", "result": []}},
            ObservationErrorKind.BAD_QUERY,
        ),
    ],
)
def test_unusable_answers_are_classified(
    body: dict[str, object], kind: ObservationErrorKind
) -> None:
    with pytest.raises(MetricQueryError) as err:
        parse_instant_vector(body)
    assert err.value.kind == kind
    assert err.value.message

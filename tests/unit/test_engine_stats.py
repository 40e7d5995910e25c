"""Wilson and Newcombe intervals against published values (Newcombe 1998, Stat Med 17)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llm_rollout.engine.stats import newcombe_interval, wilson_interval, z_score


def test_z_score() -> None:
    assert z_score(0.95) == pytest.approx(1.959964, abs=1e-6)
    assert z_score(0.99) == pytest.approx(2.575829, abs=1e-6)
    assert z_score(0.90) == pytest.approx(1.644854, abs=1e-6)
    with pytest.raises(ValueError):
        z_score(1.0)


@pytest.mark.parametrize(
    ("successes", "total", "lo", "hi"),
    [
        (81, 263, 0.2553, 0.3662),  # Newcombe (1998a), table I
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
        (29, 29, 0.8830, 1.0),  # n / (n + z^2) when every trial succeeds
    ],
)
def test_wilson_known_values(successes: int, total: int, lo: float, hi: float) -> None:
    got = wilson_interval(successes, total, 0.95)
    assert got == pytest.approx((lo, hi), abs=5e-5)


@pytest.mark.parametrize(
    ("s1", "n1", "s2", "n2", "lo", "hi"),
    [
        (56, 70, 48, 80, 0.0524, 0.3339),  # Newcombe (1998b), method 10, examples a-d
        (9, 10, 3, 10, 0.1705, 0.8090),
        (6, 7, 2, 7, 0.0582, 0.8062),
        (5, 56, 0, 29, -0.0381, 0.1926),
    ],
)
def test_newcombe_known_values(s1: int, n1: int, s2: int, n2: int, lo: float, hi: float) -> None:
    assert newcombe_interval(s1, n1, s2, n2, 0.95) == pytest.approx((lo, hi), abs=5e-5)


def test_no_data_is_the_whole_range() -> None:
    assert wilson_interval(0, 0, 0.95) == (0.0, 1.0)


def test_counts_are_clamped() -> None:
    assert wilson_interval(12, 10, 0.95) == wilson_interval(10, 10, 0.95)
    assert wilson_interval(-1, 10, 0.95) == wilson_interval(0, 10, 0.95)


@given(
    st.integers(0, 10_000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
    st.floats(0.5, 0.999),
)
def test_wilson_contains_the_proportion_and_narrows_with_confidence(
    counts: tuple[int, int], confidence: float
) -> None:
    s, n = counts
    lo, hi = wilson_interval(s, n, confidence)
    assert 0.0 <= lo <= hi <= 1.0
    if n:
        assert lo - 1e-12 <= s / n <= hi + 1e-12
        lo2, hi2 = wilson_interval(s, n, min(confidence + 0.0005, 0.9995))
        assert lo2 <= lo + 1e-12 and hi2 >= hi - 1e-12
    assert not (math.isnan(lo) or math.isnan(hi))


@given(
    st.integers(1, 5000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
    st.integers(1, 5000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
)
def test_newcombe_contains_the_difference(a: tuple[int, int], b: tuple[int, int]) -> None:
    lo, hi = newcombe_interval(a[0], a[1], b[0], b[1], 0.95)
    d = a[0] / a[1] - b[0] / b[1]
    assert -1.0 <= lo <= d + 1e-12 and d - 1e-12 <= hi <= 1.0

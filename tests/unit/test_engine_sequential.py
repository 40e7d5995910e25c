"""The confidence sequences of engine.sequential, against values computed independently.

- exact: the probability that a sequence ever errs, by dynamic programming over every
  path of Bernoulli outcomes (no simulation), for each look n <= 400;
- brute force: bounds against a fine grid search, capital against the likelihood ratio;
- published: the sample ratio mismatch e-values printed by the official code of
  Lindon & Malek (2022), the `ssrm` package's tests;
- coverage at a fixed seed, over random truths.
"""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_rollout.engine.sequential import (
    BETS,
    MIN_EVENTS_FOR_NORMAL,
    Counts,
    asymptotic_difference_bounds,
    difference_bounds,
    log_capital_above,
    log_capital_below,
    log_split_evidence,
    lower_bound,
    mean_bounds,
    normal_mixture_radius,
    upper_bound,
)


def _wilson_low(s: int, n: int, z: float) -> float:
    """The fixed-sample Wilson lower bound: what gates used before (the peeking baseline)."""
    p, z2n = s / n, z * z / n
    return (p + z2n / 2 - z * math.sqrt(p * (1 - p) / n + z2n / (4 * n))) / (1 + z2n)


def _ever_crosses(m: float, horizon: int, crosses: object) -> float:
    """P(some look n <= horizon has crosses(successes, n)) for Bernoulli(m) outcomes,
    exactly: the distribution of paths that have not crossed yet, step by step."""
    assert callable(crosses)
    alive = {0: 1.0}  # successes -> probability of getting here without a crossing
    crossed = 0.0
    for n in range(1, horizon + 1):
        nxt: dict[int, float] = {}
        for s, prob in alive.items():
            for s2, q in ((s + 1, m), (s, 1 - m)):
                nxt[s2] = nxt.get(s2, 0.0) + prob * q
        alive = {}
        for s, prob in nxt.items():
            if crosses(s, n):
                crossed += prob
            else:
                alive[s] = prob
    return crossed


@pytest.mark.parametrize("m", [0.02, 0.3, 0.7, 0.95])
@pytest.mark.parametrize("alpha", [0.05, 0.2])
def test_the_lower_sequence_errs_at_most_alpha_over_every_look_exactly(
    m: float, alpha: float
) -> None:
    # The truth is exactly m: any look whose capital against m reaches 1/alpha is a
    # false "mean > m", the error that promotes a candidate at its threshold.
    level = math.log(1 / alpha)
    p = _ever_crosses(m, 400, lambda s, n: log_capital_above(Counts.bernoulli(s, n), m) >= level)
    assert p <= alpha
    assert p > alpha / 20  # the check can find something: it is not vacuous


@pytest.mark.parametrize("m", [0.02, 0.7])
def test_the_upper_sequence_errs_at_most_alpha_over_every_look_exactly(m: float) -> None:
    p = _ever_crosses(
        m, 400, lambda s, n: log_capital_below(Counts.bernoulli(s, n), m) >= math.log(20)
    )
    assert p <= 0.05


def test_a_fixed_sample_interval_rechecked_at_every_look_is_not_sound() -> None:
    # The same exact computation finds the peeking problem of the old gates: a 95%
    # Wilson bound (2.5% per side at one look) checked at every one of 400 looks.
    p = _ever_crosses(0.7, 400, lambda s, n: n >= 10 and _wilson_low(s, n, 1.96) > 0.7)
    assert p > 0.10


def test_capital_is_the_mixture_of_likelihood_ratios_for_bernoulli_data() -> None:
    # Each bet f on "mean > m" is the likelihood ratio of p1 = m + f (1 - m) against m.
    s, n, m = 37, 50, 0.6
    expected = sum(
        w * (((m + f * (1 - m)) / m) ** s) * (((1 - m - f * (1 - m)) / (1 - m)) ** (n - s))
        for f, w in BETS
    )
    assert log_capital_above(Counts.bernoulli(s, n), m) == pytest.approx(math.log(expected))
    assert sum(w for _, w in BETS) == pytest.approx(1.0)


def test_a_hand_computed_capital() -> None:
    # Two scores at the top of the scale tested against 0.5: each bet doubles its
    # stake on every win, so K = sum_f w_f (1 + f)^2.
    sample = Counts((1.0,), (2.0,))
    expected = sum(w * (1 + f) ** 2 for f, w in BETS)
    assert math.exp(log_capital_above(sample, 0.5)) == pytest.approx(expected)
    assert math.exp(log_capital_below(sample, 0.5)) == pytest.approx(
        sum(w * (1 - f) ** 2 for f, w in BETS)
    )


@pytest.mark.parametrize(
    ("values", "counts"),
    [
        ((0.0, 1.0), (20.0, 80.0)),
        ((0.0, 1.0), (995.0, 5.0)),
        ((0.0, 0.25, 0.5, 0.75, 1.0), (3.0, 5.0, 12.0, 20.0, 10.0)),
        ((0.0, 1.0), (0.0, 7.0)),
    ],
)
def test_bounds_match_a_brute_force_grid_search(
    values: tuple[float, ...], counts: tuple[float, ...]
) -> None:
    sample = Counts(values, counts)
    level = math.log(20)
    grid = [i / 20_000 for i in range(1, 20_000)]
    rejected_low = [m for m in grid if log_capital_above(sample, m) >= level]
    rejected_high = [m for m in grid if log_capital_below(sample, m) >= level]
    lo, hi = mean_bounds(sample, 0.05)
    assert lo == pytest.approx(max(rejected_low, default=0.0), abs=1e-4)
    assert hi == pytest.approx(min(rejected_high, default=1.0), abs=1e-4)
    # and on the safe side of what it finds
    assert log_capital_above(sample, lo) >= level or lo == 0.0
    assert log_capital_below(sample, hi) >= level or hi == 1.0
    mean = sample.mean
    assert mean is not None and lo <= mean <= hi


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=0, max_value=500),
    st.integers(min_value=1, max_value=500),
    st.floats(min_value=0.001, max_value=0.999),
    st.floats(min_value=0.001, max_value=0.998),
)
def test_capital_falls_as_the_tested_mean_rises(s: int, extra: int, m: float, dm: float) -> None:
    # What makes the bounds exact by bisection: K(m) is monotone in m.
    sample = Counts.bernoulli(s, s + extra)
    m2 = min(m + dm, 0.9999)
    assert log_capital_above(sample, m2) <= log_capital_above(sample, m) + 1e-9
    assert log_capital_below(sample, m2) >= log_capital_below(sample, m) - 1e-9


def test_no_data_says_nothing() -> None:
    assert mean_bounds(Counts.bernoulli(0, 0), 0.05) == (0.0, 1.0)
    assert Counts.bernoulli(0, 0).mean is None


def test_intervals_narrow_with_evidence() -> None:
    widths = [
        upper_bound(Counts.bernoulli(0.9 * n, n), 0.05)
        - lower_bound(Counts.bernoulli(0.9 * n, n), 0.05)
        for n in (100, 1000, 100_000)
    ]
    assert widths[0] > widths[1] > widths[2]
    assert widths[2] < 0.01  # still narrowing at a hundred thousand samples


def test_fractional_counts_from_extrapolated_counters_are_accepted() -> None:
    lo, hi = mean_bounds(Counts.bernoulli(80.4, 100.7), 0.05)
    assert 0 < lo < 80.4 / 100.7 < hi < 1
    with pytest.raises(ValueError):
        Counts((0.0, 1.0), (-1.0, 3.0))
    with pytest.raises(ValueError):
        Counts((2.0,), (1.0,))


def test_scores_scale_to_the_unit_interval() -> None:
    sample = Counts.scores(1, 5, [(1, 1.0), (3, 1.0), (5, 2.0)])
    assert sample.values == (0.0, 0.5, 1.0) and sample.mean == pytest.approx(0.625)


def test_coverage_at_a_fixed_seed() -> None:
    # 200 streams, random truths (proportions and 1..5 scores), 40 looks of 20 samples:
    # the share of streams whose interval ever misses the truth stays within
    # 2 alpha (each side alpha), with Monte Carlo slack.
    rng = random.Random(20261202)
    misses = 0
    runs = 200
    for i in range(runs):
        if i % 2:
            p = rng.uniform(0.01, 0.99)
            levels, probs = (0.0, 1.0), (1 - p, p)
        else:
            weights = [rng.random() for _ in range(5)]
            probs = tuple(w / sum(weights) for w in weights)
            levels = (0.0, 0.25, 0.5, 0.75, 1.0)
        truth = sum(v * q for v, q in zip(levels, probs, strict=True))
        counts = [0.0] * len(levels)
        for _ in range(40):
            for _ in range(20):
                counts[rng.choices(range(len(levels)), probs)[0]] += 1
            lo, hi = mean_bounds(Counts(levels, tuple(counts)), 0.05)
            if not lo <= truth <= hi:
                misses += 1
                break
    assert misses / runs <= 0.10 + 3 * math.sqrt(0.1 * 0.9 / runs)


def test_difference_bounds_hold_at_every_look_at_a_fixed_seed() -> None:
    rng = random.Random(7)
    misses, runs = 0, 150
    for _ in range(runs):
        pa, pb = rng.uniform(0.05, 0.95), rng.uniform(0.05, 0.95)
        sa = na = sb = nb = 0
        for _ in range(30):
            for _ in range(10):
                sa += rng.random() < pa
            for _ in range(40):  # stable gets more traffic than the candidate
                sb += rng.random() < pb
            na, nb = na + 10, nb + 40
            lo, hi = difference_bounds(Counts.bernoulli(sa, na), Counts.bernoulli(sb, nb), 0.05)
            if not lo <= pa - pb <= hi:
                misses += 1
                break
    assert misses / runs <= 0.10 + 3 * math.sqrt(0.1 * 0.9 / runs)


def _two_sided_radius(information: float, precision: float, alpha: float) -> float:
    """Waudby-Smith et al.'s closed form: the two-sided normal mixture boundary."""
    spread = information + precision
    return math.sqrt(spread * math.log(spread / (precision * alpha**2)))


@pytest.mark.parametrize("information", [1.0, 50.0, 900.0, 40_000.0])
@pytest.mark.parametrize("alpha", [0.05, 0.01])
def test_normal_mixture_radius_is_where_the_mixture_reaches_one_over_alpha(
    information: float, alpha: float
) -> None:
    precision = 120.0
    s = normal_mixture_radius(information, precision, alpha)
    # The mixture integral by quadrature (trapezoid over the half-normal prior).
    sd = 1 / math.sqrt(precision)
    steps, top = 200_000, 12 * sd + 3 * s / max(information, 1e-9)
    h = top / steps
    total = 0.0
    for i in range(steps + 1):
        lam = i * h
        value = (
            math.exp(lam * s - lam * lam * information / 2)
            * 2
            * math.exp(-precision * lam * lam / 2)
            / math.sqrt(2 * math.pi / precision)
        )
        total += value * (0.5 if i in (0, steps) else 1.0)
    assert total * h == pytest.approx(1 / alpha, rel=1e-4)
    # One-sided: between the two-sided boundaries at 2 alpha and at alpha.
    assert _two_sided_radius(information, precision, 2 * alpha) <= s
    assert s <= _two_sided_radius(information, precision, alpha)


def test_normal_mixture_boundary_holds_for_a_gaussian_random_walk() -> None:
    # The case where the mixture is an exact martingale: P(ever crossing) <= alpha.
    rng = random.Random(11)
    alpha, precision, looks, runs = 0.05, 30.0, 400, 2000
    radius = [normal_mixture_radius(v, precision, alpha) for v in range(1, looks + 1)]
    crossed = 0
    for _ in range(runs):
        walk = 0.0
        for v in range(looks):
            walk += rng.gauss(0.0, 1.0)
            if walk >= radius[v]:
                crossed += 1
                break
    assert crossed / runs <= alpha
    assert crossed / runs >= alpha / 4  # and the boundary is not far too wide


def test_asymptotic_difference_bounds_hold_at_every_look_at_a_fixed_seed() -> None:
    rng = random.Random(13)
    alpha, runs = 0.05, 300
    low_misses = high_misses = 0
    for run in range(runs):
        pa, pb = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8)
        share = (10, 10) if run % 2 else (5, 20)  # equal traffic, or stable with most
        sa = na = sb = nb = 0
        low_missed = high_missed = False
        for _ in range(60):
            sa += sum(rng.random() < pa for _ in range(share[0]))
            sb += sum(rng.random() < pb for _ in range(share[1]))
            na, nb = na + share[0], nb + share[1]
            a, b = Counts.bernoulli(sa, na), Counts.bernoulli(sb, nb)
            if min(sa, na - sa, sb, nb - sb) < MIN_EVENTS_FOR_NORMAL:
                continue
            lo, hi = asymptotic_difference_bounds(a, b, alpha, planned_gap=0.05)
            low_missed |= lo > pa - pb
            high_missed |= hi < pa - pb
        low_misses += low_missed
        high_misses += high_missed
    slack = 3 * math.sqrt(alpha * (1 - alpha) / runs)
    assert low_misses / runs <= alpha + slack
    assert high_misses / runs <= alpha + slack


def test_difference_bounds_take_the_asymptotic_sequence_only_past_the_rule_of_thumb() -> None:
    few = Counts.bernoulli(5, 400)  # 5 events: the normal approximation is not trusted
    many = Counts.bernoulli(320, 400)
    exact = difference_bounds(few, many, 0.05)
    assert difference_bounds(few, many, 0.05, planned_gap=0.03) == exact
    assert difference_bounds(many, many, 0.05) != difference_bounds(
        many, many, 0.05, planned_gap=0.03
    )
    a, b = Counts.bernoulli(1600, 2000), Counts.bernoulli(1600, 2000)
    lo_exact, hi_exact = difference_bounds(a, b, 0.05)
    lo, hi = difference_bounds(a, b, 0.05, planned_gap=0.03)
    assert lo < 0 < hi
    # The point of it: at 2,000 ratings a release, well under two thirds of the width.
    assert hi - lo < 0.6 * (hi_exact - lo_exact)


def test_asymptotic_difference_bounds_are_tightest_near_the_planned_information() -> None:
    a, b = Counts.bernoulli(1600, 2000), Counts.bernoulli(1560, 2000)
    widths = {
        gap: asymptotic_difference_bounds(a, b, 0.05, gap)[1]
        - asymptotic_difference_bounds(a, b, 0.05, gap)[0]
        for gap in (0.01, 0.05, 0.3)
    }
    # 2,000 a release is the information that shows a gap near 0.05 at 80% power.
    assert widths[0.05] < widths[0.01]
    assert widths[0.05] < widths[0.3]


def test_sample_ratio_evidence_matches_the_published_ssrm_values() -> None:
    # Lindon & Malek's ssrm package, test_sequential_posteriors: null [.4, .4, .2],
    # prior Dirichlet(1, 1, 1), batches [20,17,9], [18,21,8], [4,6,4], [18,19,11]; its
    # printed cumulative log marginal likelihoods under the mixture (M1) and the null
    # (M0). Their difference is the log e-value of the cumulative counts.
    null, prior = (0.4, 0.4, 0.2), (1.0, 1.0, 1.0)
    m1 = [-7.028201432058012, -11.947847738358888, -15.471401950257842, -19.96484521090386]
    m0 = [-4.0776406466061985, -8.265946861099877, -11.610743519545139, -15.781031228536165]
    batches = [(20, 17, 9), (18, 21, 8), (4, 6, 4), (18, 19, 11)]
    total = [0.0, 0.0, 0.0]
    for batch, a, b in zip(batches, m1, m0, strict=True):
        total = [t + x for t, x in zip(total, batch, strict=True)]
        assert log_split_evidence(total, null, prior) == pytest.approx(a - b, abs=1e-9)
    # Unit-level data from the same test: [1,0,0], [0,1,0], [1,0,0], [0,1,0], [0,0,1].
    assert log_split_evidence((2, 2, 1), null, prior) == pytest.approx(
        -6.4457198193855785 - -5.27460083993072, abs=1e-9
    )


def test_sample_ratio_evidence_grows_only_against_a_real_mismatch() -> None:
    prior = (50.0, 50.0)
    assert log_split_evidence((5_000, 5_000), (0.5, 0.5), prior) < 0
    assert log_split_evidence((4_500, 5_500), (0.5, 0.5), prior) > math.log(1000)
    with pytest.raises(ValueError):
        log_split_evidence((1, 2), (0.5, 0.6), prior)

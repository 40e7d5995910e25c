"""Anytime-valid confidence sequences for bounded means, by betting.

A gate looks at its evidence again at every analysis. A fixed-sample interval
re-checked at every look errs far more often than its confidence says (the peeking
problem), so every count-based gate is judged here with a *confidence sequence*: a
bound that holds at all looks simultaneously.

The construction is the betting one of Waudby-Smith & Ramdas (2024), "Estimating
means of bounded random variables by betting", JRSS-B 86(1), with the constant-bet
"diversified Kelly" capital of their section 5. To test H0: mean <= m for values x in
[0, 1], a gambler bets a fraction f of their wealth on each observation being above
m; their wealth after the observations is

    K(m) = prod_i (1 + f (x_i / m - 1)).

Under H0 every factor has expectation <= 1, so K is a non-negative supermartingale and,
by Ville's inequality, P(K ever reaches 1/alpha) <= alpha, however often one looks. We
average K over a small weighted grid of bet fractions (a mixture of supermartingales
is one).

Because the bets are constant, K depends on the data only through the count of each
value, which is exactly what Prometheus counters give: feedback thumbs (values 0/1),
expert scores (1..5 scaled to [0, 1]). K(m) decreases in m, so the lower confidence
bound, inf{m : K(m) < 1/alpha}, is found by bisection, exactly up to its tolerance.
For Bernoulli data each factor is the likelihood ratio of p1 = m + f (1 - m) against m,
so this is also the mixture sequential probability ratio test (Robbins, 1970).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# Bets (fraction f, weight): f is the share of the distance from the tested value to
# the far end of the range the gambler bets the truth lies. f = 1/3 is the Kelly bet
# for a proportion of 0.80 against 0.70 and 0.9 for an error rate of 0 against 2%:
# most weight sits on 0.1..0.9, the effects a few hundred samples can show. The small
# bets (0.001..0.065) let intervals keep narrowing at tens of thousands of samples.
# More bets, or more spread, decide later; docs/benchmarks.md has what it costs.
_MAIN = tuple(0.1 * 9 ** (k / 5) for k in range(6))
_SMALL = tuple(0.001 * 65 ** (k / 9) for k in range(10))
BETS: tuple[tuple[float, float], ...] = (
    *((f, 0.9 / len(_MAIN)) for f in _MAIN),
    *((f, 0.1 / len(_SMALL)) for f in _SMALL),
)

_TOLERANCE = 1e-8  # far below the 4 digits a gate reports
_HALVINGS = 4
_MAX_STEPS = 100


@dataclass(frozen=True)
class Counts:
    """A sample of values in [0, 1], as a count per distinct value.

    Counts may be fractional: Prometheus's increase() extrapolates counters to the
    ends of its range.
    """

    values: tuple[float, ...]
    counts: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.values) != len(self.counts):
            raise ValueError("values and counts differ in length")
        if any(not 0.0 <= v <= 1.0 for v in self.values):
            raise ValueError("values must lie in [0, 1]")
        if any(c < 0 or math.isnan(c) for c in self.counts):
            raise ValueError("counts must be non-negative")

    @classmethod
    def bernoulli(cls, successes: float, total: float) -> Counts:
        successes = min(max(successes, 0.0), max(total, 0.0))
        return cls((0.0, 1.0), (max(total, 0.0) - successes, successes))

    @classmethod
    def scores(cls, low: float, high: float, counts: Sequence[tuple[float, float]]) -> Counts:
        """(score, count) pairs of a score scale [low, high], scaled to [0, 1]."""
        span = high - low
        return cls(
            tuple((s - low) / span for s, _ in counts), tuple(max(c, 0.0) for _, c in counts)
        )

    @property
    def n(self) -> float:
        return sum(self.counts)

    @property
    def mean(self) -> float | None:
        n = self.n
        return sum(v * c for v, c in zip(self.values, self.counts, strict=True)) / n if n else None

    def reflected(self) -> Counts:
        """x -> 1 - x: turns upper bounds into lower bounds."""
        return Counts(tuple(1.0 - v for v in self.values), self.counts)


def _log_weighted_mean_exp(logs: Sequence[float], weights: Sequence[float]) -> float:
    top = max(logs)
    if top == -math.inf:
        return top
    return top + math.log(sum(w * math.exp(x - top) for x, w in zip(logs, weights, strict=True)))


def log_capital_above(sample: Counts, m: float) -> float:
    """log K(m): the evidence that the mean exceeds m (against H0: mean <= m)."""
    if m >= 1.0:
        return -math.inf if any(c > 0 and v < 1.0 for v, c in _pairs(sample)) else 0.0
    if m <= 0.0:
        return math.inf if any(c > 0 and v > 0.0 for v, c in _pairs(sample)) else 0.0
    pairs = [(v / m - 1.0, c) for v, c in _pairs(sample) if c > 0]
    logs = [sum(c * math.log1p(f * excess) for excess, c in pairs) for f, _ in BETS]
    return _log_weighted_mean_exp(logs, [w for _, w in BETS])


def log_capital_below(sample: Counts, m: float) -> float:
    """log of the evidence that the mean is below m (against H0: mean >= m)."""
    return log_capital_above(sample.reflected(), 1.0 - m)


def _pairs(sample: Counts) -> zip[tuple[float, float]]:
    return zip(sample.values, sample.counts, strict=True)


def _threshold(alpha: float) -> float:
    if not 0.0 < alpha < 1.0:
        raise ValueError("alpha must be in (0, 1)")
    return math.log(1.0 / alpha)


def lower_bound(sample: Counts, alpha: float) -> float:
    """A lower confidence sequence for the mean: P(ever above the mean) <= alpha.

    The largest m found with K(m) >= 1/alpha (0 when there is none): the root is
    bracketed and the lower end returned, so the bound errs on the safe side. The
    sample mean brackets it from above (K(mean) <= 1 by Jensen's inequality).
    """
    level = _threshold(alpha)
    mean = sample.mean
    if mean is None or mean <= 0.0:
        return 0.0
    lo, hi = 1e-12, mean
    f_lo = log_capital_above(sample, lo) - level
    if f_lo < 0:
        return 0.0
    f_hi = log_capital_above(sample, hi) - level
    # A few halvings tame the steep end near 0, then regula falsi with the Illinois
    # correction: a handful of evaluations instead of a bisection's dozens.
    side = 0
    for step in range(_MAX_STEPS):
        if hi - lo <= _TOLERANCE:
            break
        m = (lo + hi) / 2
        if step >= _HALVINGS and f_lo != f_hi:
            m = hi - f_hi * (hi - lo) / (f_hi - f_lo)
            if not lo < m < hi:
                m = (lo + hi) / 2
        f_m = log_capital_above(sample, m) - level
        if f_m >= 0:
            lo, f_lo = m, f_m
            if side == -1:
                f_hi /= 2
            side = -1
        else:
            hi, f_hi = m, f_m
            if side == 1:
                f_lo /= 2
            side = 1
    return lo


def upper_bound(sample: Counts, alpha: float) -> float:
    """An upper confidence sequence for the mean: P(ever below the mean) <= alpha."""
    return 1.0 - lower_bound(sample.reflected(), alpha)


def mean_bounds(sample: Counts, alpha: float) -> tuple[float, float]:
    """(lower, upper): each a one-sided confidence sequence at level alpha."""
    return lower_bound(sample, alpha), upper_bound(sample, alpha)


def difference_bounds(a: Counts, b: Counts, alpha: float) -> tuple[float, float]:
    """(lower, upper) bounds on mean(a) - mean(b) from two independent samples.

    Each side spends alpha/2 on each sample (a union bound), so each holds with
    probability >= 1 - alpha at every look; it asks nothing of how the two sample
    sizes grow. Wider than an asymptotic sequence when both samples are of a size, by
    at most a factor of about sqrt(2); close to it when stable has most traffic.
    """
    half = alpha / 2
    return (
        lower_bound(a, half) - upper_bound(b, half),
        upper_bound(a, half) - lower_bound(b, half),
    )


def log_split_evidence(
    observed: Sequence[float], expected: Sequence[float], prior: Sequence[float]
) -> float:
    """log e-value against "the counts follow the expected shares" (sample ratio mismatch).

    The Dirichlet-multinomial mixture of Lindon & Malek (2022), "Anytime-valid
    inference for multinomial count data" (NeurIPS): the marginal likelihood of the
    counts under a Dirichlet(prior) over the shares, divided by their likelihood under
    the expected shares. A martingale under the null, so e >= 1/alpha rejects it at
    level alpha at any look.
    """
    if not len(observed) == len(expected) == len(prior) or not observed:
        raise ValueError("observed, expected and prior differ in length")
    if any(p <= 0 for p in expected) or abs(sum(expected) - 1.0) > 1e-9:
        raise ValueError("expected shares must be positive and sum to 1")
    if any(a <= 0 for a in prior):
        raise ValueError("the prior's parameters must be positive")
    n = sum(observed)
    log_mixture = math.lgamma(sum(prior)) - math.lgamma(sum(prior) + n)
    log_mixture += sum(
        math.lgamma(a + x) - math.lgamma(a) for a, x in zip(prior, observed, strict=True)
    )
    log_null = sum(x * math.log(p) for x, p in zip(observed, expected, strict=True))
    return log_mixture - log_null


__all__ = [
    "BETS",
    "Counts",
    "difference_bounds",
    "log_capital_above",
    "log_capital_below",
    "log_split_evidence",
    "lower_bound",
    "mean_bounds",
    "upper_bound",
]

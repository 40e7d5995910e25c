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
from statistics import NormalDist

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


# The normal approximation behind the asymptotic sequence is trusted once each sample
# has this much mass on either side of its mean (n * mean and n * (1 - mean) on the
# [0, 1] scale): the textbook rule for a proportion. Below it, the exact union bound.
MIN_EVENTS_FOR_NORMAL = 10.0
_Z_POWER = NormalDist().inv_cdf(0.8)


def normal_mixture_radius(information: float, precision: float, alpha: float) -> float:
    """The one-sided normal mixture boundary: the s where the mixture reaches 1/alpha.

    For a sum S with variance V (the information), the mixture over drifts
    lambda >= 0 with a half-normal prior of precision rho,

        M(S) = 2 sqrt(rho / (V + rho)) Phi(S / sqrt(V + rho)) exp(S^2 / (2 (V + rho))),

    is a martingale for a Gaussian random walk in V, so by Ville's inequality S ever
    reaches the returned s with probability at most alpha (Robbins, 1970; the one-sided
    normal mixture of Howard, Ramdas, McAuliffe & Sekhon, 2021, "Time-uniform,
    nonparametric, nonasymptotic confidence sequences", Ann. Statist. 49(2), sec. 3.2).
    """
    if information < 0 or precision <= 0:
        raise ValueError("information must be >= 0 and precision > 0")
    level = _threshold(alpha)
    spread = information + precision
    cdf = NormalDist().cdf

    def log_mixture(s: float) -> float:
        return (
            math.log(2.0)
            + 0.5 * math.log(precision / spread)
            + math.log(max(cdf(s / math.sqrt(spread)), 1e-300))
            + s * s / (2 * spread)
        )

    # Phi >= 1/2 for s >= 0, so the two-sided boundary at alpha brackets the root.
    lo, hi = 0.0, math.sqrt(2 * spread * (level + 0.5 * math.log(spread / precision)))
    for _ in range(200):
        if hi - lo <= 1e-10 * max(hi, 1.0):
            break
        mid = (lo + hi) / 2
        if log_mixture(mid) >= level:
            hi = mid
        else:
            lo = mid
    return hi  # the upper end: the bound errs on the safe side


def _variance(sample: Counts) -> float:
    mean = sample.mean or 0.0
    n = sample.n
    return sum(c * (v - mean) ** 2 for v, c in _pairs(sample)) / n if n else 0.0


def _normal_applies(sample: Counts) -> bool:
    mean = sample.mean
    return (
        mean is not None
        and sample.n * mean >= MIN_EVENTS_FOR_NORMAL
        and sample.n * (1.0 - mean) >= MIN_EVENTS_FOR_NORMAL
    )


def asymptotic_difference_bounds(
    a: Counts, b: Counts, alpha: float, planned_gap: float
) -> tuple[float, float]:
    """(lower, upper) asymptotic confidence sequences for mean(a) - mean(b).

    The difference of the sample means, d, has variance v = var(a)/n_a + var(b)/n_b
    (estimated); with the information I = 1/v, (d - delta) * I behaves like a Gaussian
    random walk in I once both samples are large (Waudby-Smith, Arbour, Sinha, Kennedy
    & Ramdas, 2024, "Time-uniform central limit theory and asymptotic confidence
    sequences", Ann. Statist. 52(6)), so each side is the one-sided normal mixture
    boundary at level alpha divided by I. The mixture's precision puts the boundary's
    tightest point at the information a fixed-sample test needs to show `planned_gap`
    with 80% power, as they suggest tuning it: decisions at that effect come soonest.

    Valid as the samples grow, not at every size: use it where `_normal_applies`.
    """
    if planned_gap <= 0:
        raise ValueError("planned_gap must be positive")
    variance = _variance(a) / a.n + _variance(b) / b.n
    d = (a.mean or 0.0) - (b.mean or 0.0)
    if variance <= 0:
        return d, d
    information = 1.0 / variance
    z_alpha = NormalDist().inv_cdf(1 - alpha)
    planned_information = ((z_alpha + _Z_POWER) / planned_gap) ** 2
    # The boundary's width relative to sqrt(V) is least where V / rho = x solves
    # x = 2 log(1/alpha) + log(1 + x); 2 log(1/alpha) + log(1 + 2 log(1/alpha)) is close.
    two_log = 2 * math.log(1 / alpha)
    precision = planned_information / (two_log + math.log1p(two_log))
    radius = normal_mixture_radius(information, precision, alpha) / information
    return d - radius, d + radius


def difference_bounds(
    a: Counts, b: Counts, alpha: float, planned_gap: float | None = None
) -> tuple[float, float]:
    """(lower, upper) bounds on mean(a) - mean(b) from two independent samples.

    With a `planned_gap` and both samples past the normal approximation's rule of
    thumb (MIN_EVENTS_FOR_NORMAL on each side of the mean), the asymptotic sequence of
    `asymptotic_difference_bounds`: each side at alpha, about half the samples of the
    exact bound at the same confidence (docs/benchmarks.md). Otherwise the exact
    union bound: each side spends alpha/2 on each sample's betting sequence, holds with
    probability >= 1 - alpha at every look at any sample size, and asks nothing of how
    the two sample sizes grow; small samples and rates near 0 or 1 get this one.
    """
    if planned_gap is not None and _normal_applies(a) and _normal_applies(b):
        return asymptotic_difference_bounds(a, b, alpha, planned_gap)
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
    "MIN_EVENTS_FOR_NORMAL",
    "Counts",
    "asymptotic_difference_bounds",
    "difference_bounds",
    "log_capital_above",
    "log_capital_below",
    "log_split_evidence",
    "lower_bound",
    "mean_bounds",
    "normal_mixture_radius",
    "upper_bound",
]

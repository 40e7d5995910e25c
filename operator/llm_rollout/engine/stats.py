"""Confidence intervals for proportions: Wilson score and Newcombe's difference.

Wilson (1927) keeps its coverage at small counts and extreme proportions, where the
normal approximation fails; Newcombe's hybrid score interval (1998, method 10)
combines two Wilson intervals into one for p1 - p2.
"""

from __future__ import annotations

import math
from statistics import NormalDist


def z_score(confidence: float) -> float:
    """Two-sided standard normal quantile for `confidence` (0.95 -> 1.95996...)."""
    if not 0 < confidence < 1:
        raise ValueError("confidence must be in (0, 1)")
    return NormalDist().inv_cdf(1 - (1 - confidence) / 2)


def wilson_interval(successes: float, total: float, confidence: float) -> tuple[float, float]:
    """Wilson score interval of successes/total; (0, 1) when there is no data."""
    if total <= 0:
        return (0.0, 1.0)
    successes = min(max(successes, 0.0), total)
    z = z_score(confidence)
    p = successes / total
    z2n = z * z / total
    centre = (p + z2n / 2) / (1 + z2n)
    half = z * math.sqrt(p * (1 - p) / total + z2n / (4 * total)) / (1 + z2n)
    # Exact at the edges (the formula leaves rounding dust there).
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == total else min(1.0, centre + half)
    return (lo, hi)


def newcombe_interval(
    successes1: float, total1: float, successes2: float, total2: float, confidence: float
) -> tuple[float, float]:
    """Hybrid score interval of p1 - p2 from two independent samples."""
    l1, u1 = wilson_interval(successes1, total1, confidence)
    l2, u2 = wilson_interval(successes2, total2, confidence)
    p1 = min(max(successes1, 0.0), total1) / total1 if total1 > 0 else 0.5
    p2 = min(max(successes2, 0.0), total2) / total2 if total2 > 0 else 0.5
    d = p1 - p2
    lo = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    hi = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return (max(-1.0, lo), min(1.0, hi))

"""What sound gates cost in samples: a sizing table for docs/statistics.md.

For a Ratio gate with a bound (min or max) and a true proportion on the good side, the
number of samples until the gate's confidence sequence (the engine's own
llm_rollout.engine.sequential) clears the bound, looking every `--look` samples: the
median and 90th percentile over simulated streams, next to the fixed-horizon sample
size of a one-sided z-test with 80% power at the same truth.

    .venv/bin/python bench/sizing.py            # ~1 min
    .venv/bin/python bench/sizing.py --runs 200 # quick
"""

from __future__ import annotations

import argparse
import math
import random
from statistics import NormalDist

from llm_rollout.engine.sequential import (
    Counts,
    difference_bounds,
    log_capital_above,
    log_capital_below,
)

# (bound kind, bound, true proportion)
CELLS: tuple[tuple[str, float, float], ...] = (
    ("min", 0.70, 0.75),
    ("min", 0.70, 0.80),
    ("min", 0.70, 0.90),
    ("min", 0.90, 0.95),
    ("min", 0.50, 0.60),
    ("max", 0.02, 0.01),
    ("max", 0.02, 0.005),
    ("max", 0.02, 0.0),
    ("max", 0.05, 0.02),
)


def samples_to_pass(
    kind: str, bound: float, truth: float, alpha: float, look: int, cap: int, rng: random.Random
) -> int | None:
    successes = n = 0
    level = math.log(1 / alpha)
    while n < cap:
        successes += sum(rng.random() < truth for _ in range(look))
        n += look
        counts = Counts.bernoulli(successes, n)
        evidence = (
            log_capital_above(counts, bound) if kind == "min" else log_capital_below(counts, bound)
        )
        if evidence >= level:
            return n
    return None


def oracle_samples(
    bound: float, truth: float, alpha: float, look: int, rng: random.Random, cap: int = 200_000
) -> int | None:
    """Samples to pass for a single constant bet tuned to the true rate (the Kelly bet,
    i.e. Wald's SPRT of the truth against the bound), which no gate can know: about the
    least any anytime-valid test needs at this truth."""
    f = (truth - bound) / (1 - bound)
    win, lose = math.log1p(f * (1 / bound - 1)), math.log1p(-f)
    successes = n = 0
    while n < cap:
        successes += sum(rng.random() < truth for _ in range(look))
        n += look
        if successes * win + (n - successes) * lose >= math.log(1 / alpha):
            return n
    return None


def fixed_horizon(bound: float, truth: float, alpha: float, power: float = 0.8) -> int:
    z_a, z_b = NormalDist().inv_cdf(1 - alpha), NormalDist().inv_cdf(power)
    root = z_a * math.sqrt(bound * (1 - bound)) + z_b * math.sqrt(truth * (1 - truth))
    return math.ceil((root / abs(truth - bound)) ** 2)


COMPARE_MARGINS = (0.03, 0.05, 0.10, 0.15)


def compare_samples(
    margin: float, alpha: float, rate: float = 0.80, planned_gap: float | None = None
) -> int:
    """Samples per release until a Compare gate passes with both releases exactly at
    `rate` (counts at their expectation: no noise), by doubling then bisection."""

    def passes(n: int) -> bool:
        counts = Counts.bernoulli(rate * n, n)
        return difference_bounds(counts, counts, alpha, planned_gap)[0] >= -margin

    hi = 16
    while not passes(hi):
        hi *= 2
    lo = hi // 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if passes(mid) else (mid, hi)
    return hi


def compare_fixed_horizon(
    margin: float, alpha: float, rate: float = 0.80, power: float = 0.8
) -> int:
    z_a, z_b = NormalDist().inv_cdf(1 - alpha), NormalDist().inv_cdf(power)
    return math.ceil(2 * rate * (1 - rate) * ((z_a + z_b) / margin) ** 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--look", type=int, default=20, help="samples between analyses")
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    alpha = 1 - args.confidence
    rng = random.Random(args.seed)
    print(f"confidence {args.confidence}, a look every {args.look} samples, {args.runs} runs")
    print(
        "| gate | true rate | median samples to pass | 90th percentile | "
        "fixed horizon (80% power) |"
    )
    print("|---|---|---|---|---|")
    for kind, bound, truth in CELLS:
        cap = 200_000
        runs = [
            samples_to_pass(kind, bound, truth, alpha, args.look, cap, rng)
            for _ in range(args.runs)
        ]
        done = sorted(r for r in runs if r is not None)
        assert len(done) == len(runs), "a run never passed: raise the cap"
        median, p90 = done[len(done) // 2], done[int(len(done) * 0.9)]
        op = ">=" if kind == "min" else "<="
        print(
            f"| {op} {bound:g} | {truth:g} | {median:,} | {p90:,} | "
            f"{fixed_horizon(bound, truth, alpha):,} |"
        )
    print("\nCompare, both releases at 0.80 (samples per release, counts at expectation):")
    print("| margin | " + " | ".join(f"{m:g}" for m in COMPARE_MARGINS) + " |")
    print("|---|" + "---|" * len(COMPARE_MARGINS))
    rows: dict[str, list[int]] = {
        "asymptotic sequence (the engine)": [
            compare_samples(m, alpha, planned_gap=m) for m in COMPARE_MARGINS
        ],
        "exact union bound (small samples)": [compare_samples(m, alpha) for m in COMPARE_MARGINS],
        "fixed horizon (80% power)": [compare_fixed_horizon(m, alpha) for m in COMPARE_MARGINS],
    }
    for label, counts in rows.items():
        print(f"| {label} | " + " | ".join(f"{n:,}" for n in counts) + " |")
    oracle = sorted(
        n
        for _ in range(args.runs)
        if (n := oracle_samples(0.70, 0.80, alpha, args.look, rng)) is not None
    )
    print(
        f"\nA single bet tuned to the truth (0.80 against >= 0.7, unknowable to a gate): "
        f"median {oracle[len(oracle) // 2]:,} samples, 90th percentile "
        f"{oracle[int(len(oracle) * 0.9)]:,}"
    )


if __name__ == "__main__":
    main()

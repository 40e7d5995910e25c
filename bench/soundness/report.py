"""Tables of cell summaries, side-by-side comparison, and the fixed-horizon reference."""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

PER_INTERVAL = 20  # samples per analysis interval in the reference
INTERVAL = 30.0
MIN_DURATION = 150.0


def _pct(p: float | None) -> str:
    return "-" if p is None else f"{100 * p:5.1f}%"


def _ci(ci: list[float] | tuple[float, float]) -> str:
    return f"[{100 * ci[0]:4.1f}, {100 * ci[1]:5.1f}]"


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f}"


def _reasons(s: dict[str, Any]) -> str:
    parts = [f"{k} {v}" for k, v in sorted(s["rollback_reasons"].items())]
    parts += [f"{k} {v}" for k, v in sorted(s["other_outcomes"].items())]
    return ", ".join(parts) or "-"


def progress_line(s: dict[str, Any]) -> str:
    return (
        f"{s['cell']:<16} P(promoted) {_pct(s['p_promoted'])} {_ci(s['p_promoted_ci'])}  "
        f"P(rolled back) {_pct(s['p_rolled_back'])}  median {_num(s['seconds']['median'])}"
        f" s  ({s['rollouts']} rollouts, {s['wall_seconds']:.0f} s wall)"
    )


def cell_lines(s: dict[str, Any]) -> list[str]:
    t = s["seconds"]
    samples = "; ".join(
        f"{g} {_num(q['median'])}/{_num(q['p90'])}" for g, q in s["samples_at_promotion"].items()
    )
    return [
        f"{s['cell']:<16} {s['truth']}  (sound: {s['correct']})",
        f"    P(promoted)   {_pct(s['p_promoted'])} {_ci(s['p_promoted_ci'])}   "
        f"P(rolled back) {_pct(s['p_rolled_back'])} {_ci(s['p_rolled_back_ci'])}   "
        f"n={s['rollouts']}",
        f"    decision after median {_num(t['median'])} s [{_num(t['median_lo'])}, "
        f"{_num(t['median_hi'])}], p90 {_num(t['p90'])} s; looks median "
        f"{_num(s['looks']['median'])}",
        f"    samples at promotion median/p90: {samples or '-'}",
        f"    rollbacks/other: {_reasons(s)}   ({s['wall_seconds']:.0f} s wall)",
    ]


def table(run: dict[str, Any]) -> str:
    meta = run["meta"]
    head = [
        f"engine: {meta['engine']}  ({meta['tree']})",
        f"plan_queries(now=): {meta['plan_takes_now']}; scrape {meta['scrape_interval']} s"
        f"{', primed' if meta['primed'] else ''}"
        f"{', left-open ranges' if meta['left_open'] else ''}; seed {meta['seed']}; "
        f"arrivals {meta['arrivals']}",
        "",
    ]
    lines: list[str] = []
    group = None
    for s in run["cells"]:
        if s["group"] != group:
            group = s["group"]
            lines.append(f"-- {group}")
        lines += cell_lines(s)
    return "\n".join(head + lines)


def side_by_side(current: dict[str, Any], baseline: dict[str, Any]) -> str:
    base = {s["cell"]: s for s in baseline["cells"]}
    lines = [
        f"current:  {current['meta']['tree']}",
        f"baseline: {baseline['meta']['tree']}",
        "",
        f"{'cell':<16} {'P(promoted) current':>27} {'baseline':>23}   "
        f"{'P(rolled back) cur':>19} {'base':>7}   {'median s cur':>12} {'base':>6}",
    ]
    for s in current["cells"]:
        b = base.get(s["cell"])
        if b is None:
            continue
        lines.append(
            f"{s['cell']:<16} {_pct(s['p_promoted'])} {_ci(s['p_promoted_ci'])} "
            f"{_pct(b['p_promoted']):>9} {_ci(b['p_promoted_ci'])}   "
            f"{_pct(s['p_rolled_back']):>19} {_pct(b['p_rolled_back']):>7}   "
            f"{_num(s['seconds']['median']):>12} {_num(b['seconds']['median']):>6}"
        )
    return "\n".join(lines)


def fixed_horizon(
    p0: float = 0.70,
    p1: float = 0.80,
    power: float = 0.80,
    alphas: tuple[float, ...] = (0.05, 0.025),
) -> list[dict[str, float]]:
    """One-sided one-sample z-test of p0 vs p1: n, and the time at PER_INTERVAL per interval
    (whole analysis intervals, at least minDuration)."""
    z = NormalDist().inv_cdf
    out = []
    for alpha in alphas:
        root = z(1 - alpha) * math.sqrt(p0 * (1 - p0)) + z(power) * math.sqrt(p1 * (1 - p1))
        n = math.ceil((root / (p1 - p0)) ** 2)
        looks = math.ceil(n / PER_INTERVAL)
        seconds = max(looks * INTERVAL, MIN_DURATION)
        seconds = math.ceil(seconds / INTERVAL) * INTERVAL
        out.append({"alpha": alpha, "power": power, "p0": p0, "p1": p1, "n": n, "seconds": seconds})
    return out


def fixed_horizon_text() -> str:
    rows = [
        f"  alpha {r['alpha']}: n = {r['n']:.0f} samples -> {r['seconds']:.0f} s at "
        f"{PER_INTERVAL} per {INTERVAL:.0f} s"
        for r in fixed_horizon()
    ]
    return "\n".join(["fixed-horizon reference: one-sided z-test p=0.70 vs 0.80, power 80%", *rows])

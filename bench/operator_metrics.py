"""How the operator's own /metrics grows with LLMDeployments: the cost of one export of
a rollout's status, and of rendering /metrics, at N rollouts in analysis.

    .venv/bin/python bench/operator_metrics.py                  # N = 100, 1,000, 5,000
    .venv/bin/python bench/operator_metrics.py --n 300 --n 3000

Each rollout has two gates with values, intervals, samples, thresholds and verdicts,
and three conditions (what a rollout in analysis exports). Reported per N: series,
bytes of the page, and the time (best of 3) of:

- a scrape as the operator serves it (`OperatorMetrics.render`: each rollout's lines
  cached since it last changed, joined), with a tenth of the rollouts changed since the
  previous scrape (an analysis every 10 scrapes each: a 60 s interval, 6 s scrapes);
- the same scrape with nothing changed (the join alone);
- the same page rendered whole by prometheus_client's generate_latest (the baseline,
  what /metrics did before), in the same run;
- one observe_status;

each against N=the smallest, per series, so that the ratio is 1.0 when the cost is
linear in the series and grows only if it is worse than linear.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "operator"))

from prometheus_client import generate_latest  # noqa: E402

from llm_rollout.api.routing_table import ReleaseInfo  # noqa: E402
from llm_rollout.api.status import (  # noqa: E402
    Condition,
    ConditionStatus,
    ConditionType,
    GateResult,
    LLMDeploymentStatus,
    Phase,
    Verdict,
)
from llm_rollout.controller.operator_metrics import OperatorMetrics  # noqa: E402

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def rollout_status(i: int) -> LLMDeploymentStatus:
    gates = [
        GateResult(
            name=name,
            kind="Threshold",
            verdict=Verdict.INCONCLUSIVE,
            value=0.9,
            interval=[0.8, 0.95],
            samples=100 + i,
        )
        for name in ("quality", "errors")
    ]
    conditions = [
        Condition(type=t, status=ConditionStatus.TRUE, reason="Ok", last_transition_time=NOW)
        for t in list(ConditionType)[:3]
    ]
    return LLMDeploymentStatus(
        phase=Phase.PROGRESSING,
        stage="experts",
        stage_index=0,
        step_percent=100,
        stable=ReleaseInfo(id=f"s{i:08x}"),
        candidate=ReleaseInfo(id=f"c{i:08x}"),
        gates=gates,
        conditions=conditions,
        step_start_time=NOW,
        last_analysis_time=NOW,
    )


def measure(n: int) -> dict[str, float]:
    metrics = OperatorMetrics()
    bounds = {"quality": (0.5, None), "errors": (None, 0.05)}
    statuses = [rollout_status(i) for i in range(n)]
    for i, status in enumerate(statuses):
        metrics.observe_status("team", f"bot-{i}", status, bounds)
    # One more export of each, now that every series exists (the steady state).
    started = time.perf_counter()
    for i, status in enumerate(statuses):
        metrics.observe_status("team", f"bot-{i}", status, bounds)
    observe_ms = (time.perf_counter() - started) / n * 1000
    whole = []
    for _ in range(3):
        started = time.perf_counter()
        page = generate_latest(metrics.registry)
        whole.append(time.perf_counter() - started)
    metrics.render()  # every rollout's lines rendered once
    cached = []
    for round_ in range(3):
        for i in range(round_, n, 10):  # a tenth changed since the last scrape
            metrics.observe_status("team", f"bot-{i}", statuses[i], bounds)
        started = time.perf_counter()
        served = metrics.render()
        cached.append(time.perf_counter() - started)
    assert len(served) == len(page), "the served page differs from the registry's"
    unchanged = []
    for _ in range(3):
        started = time.perf_counter()
        metrics.render()
        unchanged.append(time.perf_counter() - started)
    series = sum(1 for line in page.splitlines() if line and not line.startswith(b"#"))
    return {
        "n": n,
        "series": series,
        "bytes": len(page),
        "render_s": min(cached),
        "whole_s": min(whole),
        "unchanged_s": min(unchanged),
        "observe_ms": observe_ms,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, action="append")
    args = parser.parse_args()
    ns = sorted(args.n or [100, 1000, 5000])
    rows = [measure(n) for n in ns]
    base = rows[0]
    base_per_series = base["render_s"] / base["series"]
    first = f"N={base['n']:,}"
    print(
        f"| N | series | page MiB | /metrics (cached) | none changed | rendered whole "
        f"| cached vs whole "
        f"| cached per series vs {first} | one observe_status | vs {first} |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['n']:,} | {r['series']:,} | {r['bytes'] / 2**20:.1f} | "
            f"{r['render_s'] * 1000:.0f} ms | {r['unchanged_s'] * 1000:.0f} ms | "
            f"{r['whole_s'] * 1000:.0f} ms | "
            f"{r['render_s'] / r['whole_s']:.3f}x | "
            f"{r['render_s'] / r['series'] / base_per_series:.2f}x | "
            f"{r['observe_ms']:.3f} ms | {r['observe_ms'] / base['observe_ms']:.2f}x |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A PNG timeline of one rollout, drawn from Prometheus (`llm-rollout plot NAME`).

Rows: where the rollout is (stage and the candidate's share of the stage's
cohorts), then one row per gate (its value, confidence sequence and threshold),
then the user feedback positive rate by release. Decisions from status.history
are drawn as vertical lines. Only Prometheus data is plotted; nothing is made up.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llm_rollout.kube.times import parse_time
from llm_rollout.metrics import names as metric_names

Series = list[tuple[float, float]]


def _sel(namespace: str, name: str) -> str:
    return f'namespace="{namespace}",deployment="{name}"'


def query_range(
    prom_url: str, promql: str, start: float, end: float, step: float
) -> list[dict[str, Any]]:
    params = urllib.parse.urlencode(
        {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
    )
    with urllib.request.urlopen(f"{prom_url}/api/v1/query_range?{params}", timeout=30) as resp:
        body = json.loads(resp.read())
    if body.get("status") != "success":
        raise RuntimeError(f"Prometheus rejected {promql!r}: {body.get('error')}")
    return list(body["data"]["result"])


def _points(result: dict[str, Any]) -> Series:
    return [(float(t), float(v)) for t, v in result["values"] if v not in ("NaN", "+Inf", "-Inf")]


@dataclass
class Timeline:
    namespace: str
    name: str
    start: float
    end: float
    stage: Series = field(default_factory=list)
    step_percent: Series = field(default_factory=list)
    gates: dict[str, Series] = field(default_factory=dict)  # "stage/gate" -> values
    lower: dict[str, Series] = field(default_factory=dict)
    upper: dict[str, Series] = field(default_factory=dict)
    thresholds: dict[str, dict[str, Series]] = field(default_factory=dict)  # key -> bound
    feedback: dict[str, Series] = field(default_factory=dict)  # release -> positive rate
    stage_names: dict[int, str] = field(default_factory=dict)
    decisions: list[tuple[float, str]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.stage or self.gates or self.feedback)


def fetch_timeline(
    prom_url: str,
    namespace: str,
    name: str,
    *,
    start: float,
    end: float,
    step: float = 1.0,
    history: list[dict[str, Any]] | None = None,
    stage_names: list[str] | None = None,
    feedback_window: str = "30s",
) -> Timeline:
    """Everything the picture needs, from Prometheus (and status.history for decisions)."""
    sel = _sel(namespace, name)
    tl = Timeline(namespace, name, start, end)

    def one(promql: str) -> Series:
        results = query_range(prom_url, promql, start, end, step)
        return _points(results[0]) if results else []

    def by(promql: str, *labels: str) -> dict[str, Series]:
        return {
            "/".join(r["metric"].get(lb, "") for lb in labels): _points(r)
            for r in query_range(prom_url, promql, start, end, step)
        }

    tl.stage = one(f"max({metric_names.STAGE_INDEX}{{{sel}}})")
    tl.step_percent = one(f"max({metric_names.STEP_PERCENT}{{{sel}}})")
    tl.gates = by(f"{metric_names.GATE_VALUE}{{{sel}}}", "stage", "gate")
    tl.lower = by(f"{metric_names.GATE_INTERVAL_LOWER}{{{sel}}}", "stage", "gate")
    tl.upper = by(f"{metric_names.GATE_INTERVAL_UPPER}{{{sel}}}", "stage", "gate")
    for key, series in by(
        f"{metric_names.GATE_THRESHOLD}{{{sel}}}", "stage", "gate", "bound"
    ).items():
        gate_key, _, bound = key.rpartition("/")
        tl.thresholds.setdefault(gate_key, {})[bound] = series
    w = feedback_window
    tl.feedback = by(
        f'sum by (release) (increase({metric_names.FEEDBACK}{{{sel},source="user",'
        f'rating="positive"}}[{w}])) / sum by (release) (increase({metric_names.FEEDBACK}'
        f'{{{sel},source="user"}}[{w}]))',
        "release",
    )
    tl.stage_names = dict(enumerate(stage_names or []))
    for entry in history or []:
        if entry.get("decision") == "Hold":
            continue  # holds are the absence of a decision in a picture
        when = parse_time(str(entry["time"]))
        if when is None:
            continue
        ts = when.timestamp()
        if start <= ts <= end:
            label = entry["decision"]
            if entry.get("stage"):
                label += f" {entry['stage']}"
            tl.decisions.append((ts, label))
    return tl


_COLORS = {
    "Advance": "tab:green",
    "Promote": "tab:blue",
    "Rollback": "tab:red",
    "Start": "tab:gray",
    "Pause": "tab:orange",
    "Supersede": "tab:purple",
}


def draw(tl: Timeline, path: Path, *, title: str | None = None) -> Path:
    """Write the timeline as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = {name: i for i, name in tl.stage_names.items()}
    gate_keys = sorted(tl.gates, key=lambda k: (order.get(k.split("/")[0], 99), k))
    rows = 2 + len(gate_keys)
    fig, axes = plt.subplots(rows, 1, figsize=(11, 2.2 * rows + 0.8), sharex=True, squeeze=False)
    ax_list = [a[0] for a in axes]

    def rel(series: Series) -> tuple[list[float], list[float]]:
        return [t - tl.start for t, _ in series], [v for _, v in series]

    ax = ax_list[0]
    if tl.stage:
        xs, ys = rel(tl.stage)
        ax.step(xs, ys, where="post", color="tab:blue", label="stage")
        ticks = sorted({int(v) for v in ys})
        ax.set_yticks(ticks, [tl.stage_names.get(i, f"stage {i}") for i in ticks])
    ax.set_ylabel("stage")
    if tl.step_percent:
        twin = ax.twinx()
        xs, ys = rel(tl.step_percent)
        twin.step(xs, ys, where="post", color="tab:orange", alpha=0.7)
        twin.set_ylim(-5, 105)
        twin.set_ylabel("% of stage on candidate", color="tab:orange")
    ax.set_title("Where the rollout is")

    for ax, key in zip(ax_list[1:-1], gate_keys, strict=True):
        xs, ys = rel(tl.gates[key])
        ax.plot(xs, ys, color="tab:blue", marker=".", markersize=3, label="value")
        if key in tl.lower and key in tl.upper:
            lo = dict(tl.lower[key])
            hi = dict(tl.upper[key])
            common = sorted(set(lo) & set(hi))
            ax.fill_between(
                [t - tl.start for t in common],
                [lo[t] for t in common],
                [hi[t] for t in common],
                color="tab:blue",
                alpha=0.15,
                label="confidence sequence",
            )
        for bound, series in tl.thresholds.get(key, {}).items():
            bx, by_ = rel(series)
            ax.step(
                bx, by_, where="post", color="tab:red", linestyle="--", label=f"threshold ({bound})"
            )
        ax.set_title(f"gate {key.split('/')[1]} (stage {key.split('/')[0]})")
        ax.legend(loc="best", fontsize=7)

    ax = ax_list[-1]
    for release, series in sorted(tl.feedback.items()):
        xs, ys = rel(series)
        ax.plot(xs, ys, label=f"release {release}")
    ax.set_ylim(-0.05, 1.05)
    ax.set_ylabel("positive")
    ax.set_title("User feedback positive rate by release")
    if tl.feedback:
        ax.legend(loc="best", fontsize=7)
    ax.set_xlabel("seconds since start")

    for ts, label in tl.decisions:
        color = _COLORS.get(label.split()[0], "tab:gray")
        for a in ax_list:
            a.axvline(ts - tl.start, color=color, alpha=0.5, linewidth=1)
        ax_list[0].annotate(
            label,
            (ts - tl.start, 1.0),
            xycoords=("data", "axes fraction"),
            rotation=90,
            fontsize=7,
            va="top",
            ha="right",
            color=color,
        )

    when = datetime.fromtimestamp(tl.start, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    fig.suptitle(title or f"Rollout of {tl.namespace}/{tl.name} from {when}")
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

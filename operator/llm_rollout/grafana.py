"""The Grafana dashboard, as data: panels are (title, kind, queries, unit) rows below,
laid out and turned into Grafana's dashboard JSON model by `build_dashboard()`.

    python -m llm_rollout.grafana           # write the chart's and docs/ copies
    python -m llm_rollout.grafana --check   # exit 1 when a copy is stale

Every query filters on the `$namespace` and `$deployment` template variables (the
LLMDeployment's namespace and name, the labels every operator and router series
carries); `$window` is the window of ratio and mean panels (feedback is sparse),
`$__rate_interval` the one of rates. Decisions are annotations.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llm_rollout.metrics import names as metric_names

REPO = Path(__file__).resolve().parents[2]
OUTPUTS = (
    REPO / "charts" / "llm-rollout-operator" / "dashboards" / "llm-rollout.json",
    REPO / "docs" / "grafana" / "llm-rollout.json",
)
UID = "llm-rollout"
SCHEMA_VERSION = 39
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'namespace=~"$namespace", deployment=~"$deployment"'


def sel(*extra: str) -> str:
    """The label selector of a panel query: the rollout filter plus `extra` matchers."""
    return "{" + ", ".join([SEL, *extra]) + "}"


def ratio(metric: str, by: str, good: str, window: str = "$window", *extra: str) -> str:
    """Share of `metric` increases matching `good` among all, per `by`."""
    num = f"sum by ({by}) (increase({metric}{sel(*extra, good)}[{window}]))"
    den = f"sum by ({by}) (increase({metric}{sel(*extra)}[{window}]))"
    return f"{num}\n/\n{den}"


def quantile(q: float, histogram: str, by: str = "release") -> str:
    return (
        f"histogram_quantile({q}, sum by ({by}, le) "
        f"(rate({histogram}_bucket{sel()}[$__rate_interval])))"
    )


def mean(histogram: str, by: str, *extra: str) -> str:
    return (
        f"sum by ({by}) (increase({histogram}_sum{sel(*extra)}[$window]))\n/\n"
        f"sum by ({by}) (increase({histogram}_count{sel(*extra)}[$window]))"
    )


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str
    instant: bool = False


@dataclass(frozen=True)
class Panel:
    title: str
    kind: str  # timeseries, stat, state-timeline, table, bargauge
    queries: tuple[Query, ...]
    unit: str = "short"
    description: str = ""
    width: int = 12
    height: int = 8
    stepped: bool = False
    min: float | None = None
    max: float | None = None
    # field overrides (e.g. thresholds drawn dashed)
    overrides: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    # panels whose series only exist once evals ran (the PromQL test lists them apart)
    needs: str = ""


def q(expr: str, legend: str, instant: bool = False) -> Query:
    return Query(expr, legend, instant)


def _dashed(regex: str, color: str) -> dict[str, Any]:
    return {
        "matcher": {"id": "byRegexp", "options": regex},
        "properties": [
            {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
            {"id": "color", "value": {"mode": "fixed", "fixedColor": color}},
            {"id": "custom.fillOpacity", "value": 0},
        ],
    }


def _dotted(regex: str) -> dict[str, Any]:
    return {
        "matcher": {"id": "byRegexp", "options": regex},
        "properties": [
            {"id": "custom.lineStyle", "value": {"fill": "dot", "dash": [0, 10]}},
            {"id": "custom.fillOpacity", "value": 0},
        ],
    }


ROWS: list[tuple[str, list[Panel]]] = [
    (
        "Rollout",
        [
            Panel(
                "Phase",
                "stat",
                (
                    q(
                        f"max by (namespace, deployment, phase) ({metric_names.PHASE}{sel()}) == 1",
                        "{{deployment}}: {{phase}}",
                        instant=True,
                    ),
                ),
                description="Where each rollout is now (Progressing, Paused, Promoted, "
                "RolledBack, Failed, Invalid).",
                width=8,
                height=5,
            ),
            Panel(
                "Releases",
                "table",
                (
                    q(
                        f"max by (namespace, deployment, stable, candidate) "
                        f"({metric_names.INFO}{sel()})",
                        "",
                        instant=True,
                    ),
                ),
                description="The stable release and the candidate being rolled out.",
                width=8,
                height=5,
            ),
            Panel(
                "Time in step vs maxDuration",
                "bargauge",
                (
                    q(
                        f"time() - max by (namespace, deployment) "
                        f"({metric_names.STEP_START}{sel()})",
                        "{{deployment}} in step",
                        instant=True,
                    ),
                    q(
                        f"max by (namespace, deployment) ({metric_names.STEP_MAX_DURATION}{sel()})",
                        "{{deployment}} maxDuration",
                        instant=True,
                    ),
                ),
                unit="s",
                width=8,
                height=5,
                description="A step must advance within its stage's maxDuration, else the "
                "rollout rolls back (alert LLMRolloutStuck when it does not).",
            ),
            Panel(
                "Phase over time",
                "state-timeline",
                (
                    q(
                        f"max by (namespace, deployment, phase) ({metric_names.PHASE}{sel()}) == 1",
                        "{{deployment}} {{phase}}",
                    ),
                ),
                width=12,
                height=6,
            ),
            Panel(
                "Stage and step over time",
                "timeseries",
                (
                    q(
                        f"max by (namespace, deployment) ({metric_names.STAGE_INDEX}{sel()})",
                        "{{deployment}} stage index",
                    ),
                    q(
                        f"max by (namespace, deployment, stage) "
                        f"({metric_names.STEP_PERCENT}{sel()}) / 100",
                        "{{deployment}} {{stage}} step",
                    ),
                ),
                description="Stage index (0 = first stage) and the share of the current "
                "stage's cohorts on the candidate (step, 0..1).",
                stepped=True,
                width=12,
                height=6,
            ),
            Panel(
                "Conditions",
                "table",
                (
                    q(
                        f"max by (namespace, deployment, condition, status) "
                        f"({metric_names.CONDITION}{sel()}) == 1",
                        "",
                        instant=True,
                    ),
                ),
                description="Ready, Progressing, Degraded, Paused, MetricsAvailable.",
                width=12,
                height=6,
            ),
            Panel(
                "Operator replicas leading",
                "stat",
                (q(f"sum({metric_names.LEADER})", "leaders", instant=True),),
                description="Replicas holding the leader Lease: 1 is healthy.",
                width=6,
                height=6,
            ),
            Panel(
                "Analysis time (p95)",
                "stat",
                (
                    q(
                        "histogram_quantile(0.95, sum by (le) "
                        f"(rate({metric_names.ANALYSIS_DURATION}_bucket[$__rate_interval])))",
                        "p95",
                        instant=True,
                    ),
                ),
                unit="s",
                width=6,
                height=6,
            ),
        ],
    ),
    (
        "Gates",
        [
            Panel(
                "Gate value vs threshold and confidence sequence",
                "timeseries",
                (
                    q(
                        f"max by (deployment, stage, gate) ({metric_names.GATE_VALUE}{sel()})",
                        "{{deployment}} {{gate}}",
                    ),
                    q(
                        f"max by (deployment, stage, gate, bound) "
                        f"({metric_names.GATE_THRESHOLD}{sel()})",
                        "{{deployment}} {{gate}} {{bound}} threshold",
                    ),
                    q(
                        f"max by (deployment, stage, gate) "
                        f"({metric_names.GATE_INTERVAL_LOWER}{sel()})",
                        "{{deployment}} {{gate}} lower",
                    ),
                    q(
                        f"max by (deployment, stage, gate) "
                        f"({metric_names.GATE_INTERVAL_UPPER}{sel()})",
                        "{{deployment}} {{gate}} upper",
                    ),
                ),
                description="The value each gate of the current stage measured, its bounds "
                "(dashed red) and its anytime-valid confidence sequence over the step (dotted; "
                "count-based gates: ratios and expert scores).",
                width=24,
                height=9,
                overrides=(_dashed(".* threshold$", "red"), _dotted(".* (lower|upper)$")),
            ),
            Panel(
                "Gate verdicts",
                "state-timeline",
                (
                    q(
                        f"max by (deployment, gate, verdict) "
                        f"({metric_names.GATE_VERDICT}{sel()}) == 1",
                        "{{deployment}} {{gate}} {{verdict}}",
                    ),
                ),
                width=12,
            ),
            Panel(
                "Gate samples",
                "timeseries",
                (
                    q(
                        f"max by (deployment, gate) ({metric_names.GATE_SAMPLES}{sel()})",
                        "{{deployment}} {{gate}}",
                    ),
                ),
                description="Samples behind each gate's value (minSamples must be met).",
                width=12,
            ),
        ],
    ),
    (
        "Feedback and evals",
        [
            Panel(
                "Positive user feedback by release and cohort",
                "timeseries",
                (
                    q(
                        ratio(
                            f"{metric_names.FEEDBACK}",
                            "release, cohort",
                            'rating="positive"',
                            "$window",
                            'source="user"',
                        ),
                        "{{release}} {{cohort}}",
                    ),
                ),
                unit="percentunit",
                min=0,
                max=1,
                description="Share of thumbs-up (and 4-5 scores) among user feedback over $window.",
            ),
            Panel(
                "Expert rating (overall) by release and cohort",
                "timeseries",
                (
                    q(
                        mean(
                            f"{metric_names.FEEDBACK_SCORE}",
                            "release, cohort",
                            'source="expert"',
                            'criterion="overall"',
                        ),
                        "{{release}} {{cohort}}",
                    ),
                ),
                min=1,
                max=5,
                description="Mean 1-5 expert score over $window.",
            ),
            Panel(
                "Expert ratings by criterion and release",
                "timeseries",
                (
                    q(
                        mean(
                            f"{metric_names.FEEDBACK_SCORE}",
                            "release, criterion",
                            'source="expert"',
                        ),
                        "{{release}} {{criterion}}",
                    ),
                ),
                min=1,
                max=5,
            ),
            Panel(
                "Feedback volume by release and rating",
                "timeseries",
                (
                    q(
                        f"sum by (release, source, rating) "
                        f"(rate({metric_names.FEEDBACK}{sel()}[$__rate_interval]))",
                        "{{release}} {{source}} {{rating}}",
                    ),
                ),
                unit="reqps",
            ),
            Panel(
                "Eval scores by criterion",
                "timeseries",
                (
                    q(
                        f"max by (release, suite, criterion) ({metric_names.EVAL_SCORE}{sel()})",
                        "{{release}} {{suite}} {{criterion}}",
                    ),
                ),
                unit="percentunit",
                min=0,
                max=1,
                needs="evals",
                description="Latest finished eval run per suite and release (0..1).",
            ),
            Panel(
                "Heuristic check pass rate by release",
                "timeseries",
                (
                    q(
                        ratio(
                            f"{metric_names.HEURISTIC_CHECKS}", "release, check", 'result="pass"'
                        ),
                        "{{release}} {{check}}",
                    ),
                ),
                unit="percentunit",
                min=0,
                max=1,
            ),
        ],
    ),
    (
        "Traffic, errors and latency",
        [
            Panel(
                "Requests by release and cohort",
                "timeseries",
                (
                    q(
                        f"sum by (release, cohort) "
                        f"(rate({metric_names.REQUESTS}{sel()}[$__rate_interval]))",
                        "{{release}} {{cohort}}",
                    ),
                ),
                unit="reqps",
            ),
            Panel(
                "Error rate (5xx) by release",
                "timeseries",
                (
                    q(
                        ratio(
                            f"{metric_names.REQUESTS}", "release", 'code=~"5.."', "$__rate_interval"
                        ),
                        "{{release}}",
                    ),
                ),
                unit="percentunit",
                min=0,
            ),
            Panel(
                "Latency by release",
                "timeseries",
                (
                    q(quantile(0.5, f"{metric_names.REQUEST_DURATION}"), "{{release}} p50"),
                    q(quantile(0.95, f"{metric_names.REQUEST_DURATION}"), "{{release}} p95"),
                ),
                unit="s",
                description="Request received to last byte sent (whole stream).",
            ),
            Panel(
                "Time to first token by release",
                "timeseries",
                (
                    q(quantile(0.5, f"{metric_names.TTFT}"), "{{release}} p50"),
                    q(quantile(0.95, f"{metric_names.TTFT}"), "{{release}} p95"),
                ),
                unit="s",
            ),
            Panel(
                "Fallbacks and upstream errors by release",
                "timeseries",
                (
                    q(
                        f"sum by (release) "
                        f"(rate({metric_names.FALLBACKS}{sel()}[$__rate_interval]))",
                        "{{release}} fallbacks",
                    ),
                    q(
                        f"sum by (release, kind) "
                        f"(rate({metric_names.UPSTREAM_ERRORS}{sel()}[$__rate_interval]))",
                        "{{release}} {{kind}}",
                    ),
                ),
                unit="reqps",
                needs="router errors",
                description="Requests sent to stable because their release failed, and "
                "backend failures by kind.",
            ),
            Panel(
                "Tokens by release",
                "timeseries",
                (
                    q(
                        f"sum by (release, direction) "
                        f"(rate({metric_names.TOKENS}{sel()}[$__rate_interval]))",
                        "{{release}} {{direction}}",
                    ),
                ),
                unit="short",
            ),
        ],
    ),
    (
        "Operator",
        [
            Panel(
                "Decisions by outcome",
                "timeseries",
                (
                    q(
                        f"sum by (deployment, outcome) "
                        f"(increase({metric_names.DECISIONS}{sel()}[$__rate_interval]))",
                        "{{deployment}} {{outcome}}",
                    ),
                ),
                description="Also shown as annotations.",
                width=12,
            ),
            Panel(
                "Prometheus query errors by kind",
                "timeseries",
                (
                    q(
                        f"sum by (deployment, kind) "
                        f"(rate({metric_names.QUERY_ERRORS}{sel()}[$__rate_interval]))",
                        "{{deployment}} {{kind}}",
                    ),
                ),
                unit="reqps",
                width=12,
            ),
        ],
    ),
]


def _field_config(panel: Panel) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": panel.unit}
    if panel.min is not None:
        defaults["min"] = panel.min
    if panel.max is not None:
        defaults["max"] = panel.max
    if panel.kind == "timeseries":
        defaults["custom"] = {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 0,
            "showPoints": "never",
            "spanNulls": False,
            "lineInterpolation": "stepAfter" if panel.stepped else "linear",
        }
    if panel.kind == "stat" and panel.title == "Operator replicas leading":
        defaults["thresholds"] = {
            "mode": "absolute",
            "steps": [
                {"color": "red", "value": None},
                {"color": "green", "value": 1},
                {"color": "red", "value": 2},
            ],
        }
    return {"defaults": defaults, "overrides": list(panel.overrides)}


def _options(panel: Panel) -> dict[str, Any]:
    reduce = {"calcs": ["lastNotNull"], "fields": "", "values": False}
    legend = {"displayMode": "list", "placement": "bottom", "showLegend": False, "calcs": []}
    if panel.kind == "timeseries":
        return {
            "legend": {
                **legend,
                "displayMode": "table",
                "showLegend": True,
                "calcs": ["lastNotNull"],
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    if panel.kind == "stat":
        return {
            "reduceOptions": reduce,
            "textMode": "name" if panel.title == "Phase" else "auto",
            "colorMode": "background",
            "graphMode": "none",
            "justifyMode": "auto",
            "orientation": "auto",
            "wideLayout": True,
            "showPercentChange": False,
            "percentChangeColorMode": "standard",
        }
    if panel.kind == "state-timeline":
        return {
            "showValue": "never",
            "mergeValues": True,
            "rowHeight": 0.9,
            "alignValue": "left",
            "legend": legend,
            "tooltip": {"mode": "single", "sort": "none"},
        }
    if panel.kind == "bargauge":
        return {
            "displayMode": "basic",
            "orientation": "horizontal",
            "reduceOptions": reduce,
            "valueMode": "color",
            "namePlacement": "auto",
            "showUnfilled": True,
            "sizing": "auto",
            "minVizWidth": 8,
            "minVizHeight": 16,
            "maxVizHeight": 300,
            "legend": legend,
        }
    return {"showHeader": True, "frameIndex": 0, "cellHeight": "sm"}


def _panel_json(panel: Panel, ident: int, pos: dict[str, int]) -> dict[str, Any]:
    targets = []
    for i, query in enumerate(panel.queries):
        target: dict[str, Any] = {
            "refId": chr(ord("A") + i),
            "datasource": DATASOURCE,
            "expr": query.expr,
            "legendFormat": query.legend,
            "range": not query.instant,
            "instant": query.instant,
        }
        if panel.kind == "table":
            target["format"] = "table"
        targets.append(target)
    out: dict[str, Any] = {
        "id": ident,
        "type": panel.kind,
        "title": panel.title,
        "datasource": DATASOURCE,
        "gridPos": pos,
        "targets": targets,
        "fieldConfig": _field_config(panel),
        "options": _options(panel),
    }
    if panel.description:
        out["description"] = panel.description
    if panel.kind == "table":
        out["transformations"] = [
            {"id": "organize", "options": {"excludeByName": {"Time": True, "Value": True}}}
        ]
    return out


def _variables() -> list[dict[str, Any]]:
    def label_values(name: str, query: str) -> dict[str, Any]:
        return {
            "name": name,
            "label": name,
            "type": "query",
            "datasource": DATASOURCE,
            "definition": query,
            "query": {"query": query, "refId": name},
            "refresh": 2,
            "includeAll": True,
            "multi": True,
            "allValue": ".*",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "sort": 1,
            "options": [],
            "hide": 0,
        }

    return [
        {
            "name": "datasource",
            "label": "Prometheus",
            "type": "datasource",
            "query": "prometheus",
            "hide": 0,
            "options": [],
            "refresh": 1,
            "current": {"selected": False, "text": "default", "value": "default"},
        },
        label_values("namespace", f"label_values({metric_names.PHASE}, namespace)"),
        label_values(
            "deployment",
            f'label_values({metric_names.PHASE}{{namespace=~"$namespace"}}, deployment)',
        ),
        {
            "name": "window",
            "label": "window",
            "type": "custom",
            "hide": 0,
            "query": "5m,15m,1h,6h,24h",
            "multi": False,
            "includeAll": False,
            "current": {"selected": True, "text": "1h", "value": "1h"},
            "options": [
                {"selected": w == "1h", "text": w, "value": w}
                for w in ("5m", "15m", "1h", "6h", "24h")
            ],
        },
    ]


def _annotations() -> list[dict[str, Any]]:
    builtin = {
        "builtIn": 1,
        "datasource": {"type": "grafana", "uid": "-- Grafana --"},
        "enable": True,
        "hide": True,
        "iconColor": "rgba(0, 211, 255, 1)",
        "name": "Annotations & Alerts",
        "type": "dashboard",
    }

    def decisions(name: str, matcher: str, color: str) -> dict[str, Any]:
        expr = (
            f"sum by (namespace, deployment, outcome) (increase("
            f"{metric_names.DECISIONS}{sel(matcher)}[2m])) > 0"
        )
        return {
            "name": name,
            "datasource": DATASOURCE,
            "enable": True,
            "hide": False,
            "iconColor": color,
            "expr": expr,
            "step": "60s",
            "titleFormat": "{{outcome}}",
            "textFormat": "{{namespace}}/{{deployment}}",
            "tagKeys": "outcome,deployment",
            "useValueForTime": False,
        }

    return [
        builtin,
        decisions("Decisions", 'outcome!~"Rollback|Fail"', "blue"),
        decisions("Rollbacks", 'outcome=~"Rollback|Fail"', "red"),
    ]


def build_dashboard() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    ident, y = 1, 0
    for row_title, row_panels in ROWS:
        panels.append(
            {
                "id": ident,
                "type": "row",
                "title": row_title,
                "collapsed": False,
                "gridPos": {"x": 0, "y": y, "w": 24, "h": 1},
                "panels": [],
            }
        )
        ident, y = ident + 1, y + 1
        x, row_height = 0, 0
        for panel in row_panels:
            if x + panel.width > 24:
                x, y, row_height = 0, y + row_height, 0
            panels.append(
                _panel_json(panel, ident, {"x": x, "y": y, "w": panel.width, "h": panel.height})
            )
            ident += 1
            x += panel.width
            row_height = max(row_height, panel.height)
        y += row_height
    return {
        "uid": UID,
        "title": "LLM rollouts",
        "description": (
            "Staged, metric-gated rollouts of LLM releases (llm-rollout-operator): stage, "
            "gates, feedback, evals, errors and latency per release and cohort."
        ),
        "tags": ["llm", "rollout", "llm-rollout-operator"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "links": [],
        "templating": {"list": _variables()},
        "annotations": {"list": _annotations()},
        "panels": panels,
    }


def dashboard_json() -> str:
    return json.dumps(build_dashboard(), indent=2, sort_keys=False) + "\n"


def panel_queries(dashboard: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(panel title, refId, expr) of every panel target."""
    return [
        (p["title"], t["refId"], t["expr"])
        for p in dashboard["panels"]
        for t in p.get("targets", [])
    ]


def needs(title: str) -> str:
    """What a panel's series need besides a rollout and routed traffic ('' if nothing)."""
    for _row, panels in ROWS:
        for panel in panels:
            if panel.title == title:
                return panel.needs
    raise KeyError(title)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m llm_rollout.grafana", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--check", action="store_true", help="exit 1 with a diff if stale")
    args = parser.parse_args(argv)
    text = dashboard_json()
    stale = False
    for path in OUTPUTS:
        current = path.read_text() if path.exists() else ""
        if current == text:
            continue
        if args.check:
            stale = True
            sys.stdout.writelines(
                difflib.unified_diff(
                    current.splitlines(keepends=True),
                    text.splitlines(keepends=True),
                    str(path),
                    "generated",
                )
            )
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(REPO)}")
    if stale:
        print("the dashboard is stale: run `make dashboard`", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())

"""The rows of `panels` laid out and turned into Grafana's dashboard JSON model."""

from __future__ import annotations

import json
from typing import Any

from llm_rollout.gen.dashboard.model import Panel, sel
from llm_rollout.gen.dashboard.panels import ROWS
from llm_rollout.metrics import names as metric_names

UID = "llm-rollout"
SCHEMA_VERSION = 39
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


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

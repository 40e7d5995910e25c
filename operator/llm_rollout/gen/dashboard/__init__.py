"""The Grafana dashboard, as data: panels are (title, kind, queries, unit) rows below,
laid out and turned into Grafana's dashboard JSON model by `build_dashboard()`.

    python -m llm_rollout.gen.dashboard           # write the chart's and docs/ copies
    python -m llm_rollout.gen.dashboard --check   # exit 1 when a copy is stale

Every query filters on the `$namespace` and `$deployment` template variables (the
LLMDeployment's namespace and name, the labels every operator and router series
carries); `$window` is the window of ratio and mean panels (feedback is sparse),
`$__rate_interval` the one of rates. Decisions are annotations.
"""

from llm_rollout.gen.dashboard.cli import OUTPUTS, REPO, main
from llm_rollout.gen.dashboard.panels import ROWS
from llm_rollout.gen.dashboard.render import build_dashboard, dashboard_json, needs, panel_queries

__all__ = [
    "OUTPUTS",
    "REPO",
    "ROWS",
    "build_dashboard",
    "dashboard_json",
    "main",
    "needs",
    "panel_queries",
]

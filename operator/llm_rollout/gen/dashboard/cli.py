"""`python -m llm_rollout.gen.dashboard`: write or check the dashboard's copies."""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

from llm_rollout.gen.dashboard.render import dashboard_json

REPO = Path(__file__).resolve().parents[4]
OUTPUTS = (
    REPO / "charts" / "llm-rollout-operator" / "dashboards" / "llm-rollout.json",
    REPO / "docs" / "grafana" / "llm-rollout.json",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m llm_rollout.gen.dashboard",
        description="Write the Grafana dashboard JSON (chart and docs/ copies).",
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

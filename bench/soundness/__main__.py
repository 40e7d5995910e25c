"""CLI: run cells against the engine importable here, a source tree, or a baseline commit.

    .venv/bin/python -m bench.soundness --quick
    .venv/bin/python -m bench.soundness --cells ratio-p070,compare --rollouts 4000
    .venv/bin/python -m bench.soundness --source-tree /tmp/old   # its operator/ first
    .venv/bin/python -m bench.soundness --baseline-ref 73f79ba --json-out both.json

--source-tree and --baseline-ref run each tree in a fresh subprocess (so its llm_rollout is
the one imported); --baseline-ref makes a temporary `git worktree` of the ref, runs the same
cells there and in this work tree, removes the worktree and prints both side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.soundness import cells, report

ROOT = Path(__file__).resolve().parents[2]  # the repository holding bench/


def _args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.soundness",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--cells", help="comma-separated cell names or prefixes (default: all)")
    p.add_argument("--rollouts", type=int, default=2000, help="rollouts per cell")
    p.add_argument("--quick", action="store_true", help="100 rollouts per cell (smoke test)")
    p.add_argument("--seed", type=int, default=20250101)
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--scrape-interval", type=float, default=1.0, help="seconds (e.g. 15)")
    p.add_argument(
        "--primed",
        action="store_true",
        help="series exist at 0 from exposure, as the router primes them",
    )
    p.add_argument(
        "--left-open",
        action="store_true",
        help="Prometheus 3.x ranges (start excluded); default 2.x (inclusive)",
    )
    p.add_argument("--arrivals", choices=("poisson", "fixed"), default=None)
    p.add_argument("--failure-limit", type=int, default=None, help="override every cell")
    p.add_argument("--json-out", type=Path)
    p.add_argument("--source-tree", type=Path, help="run against DIR/operator")
    p.add_argument("--baseline-ref", help="also run a git ref's tree, side by side")
    p.add_argument("--list", action="store_true", help="list the cells and exit")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _forward(a: argparse.Namespace) -> list[str]:
    """The run options, for a child process."""
    out = [
        "--rollouts",
        str(a.rollouts),
        "--seed",
        str(a.seed),
        "--workers",
        str(a.workers),
        "--scrape-interval",
        str(a.scrape_interval),
    ]
    out += ["--cells", a.cells] if a.cells else []
    out += ["--quick"] if a.quick else []
    out += ["--primed"] if a.primed else []
    out += ["--left-open"] if a.left_open else []
    out += ["--arrivals", a.arrivals] if a.arrivals else []
    out += ["--failure-limit", str(a.failure_limit)] if a.failure_limit is not None else []
    return out


def _git(tree: Path, *cmd: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(tree), *cmd], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() if done.returncode == 0 else ""


def _describe(tree: Path) -> str:
    head = _git(tree, "rev-parse", "--short", "HEAD") or "?"
    dirty = _git(tree, "status", "--porcelain", "--", "operator")
    return f"{tree} @ {head}{' + uncommitted changes in operator/' if dirty else ''}"


def run_child(a: argparse.Namespace, tree: Path) -> dict[str, Any]:
    """This CLI in a fresh interpreter with tree/operator first on sys.path."""
    tree = tree.resolve()
    if not (tree / "operator" / "llm_rollout").is_dir():
        raise SystemExit(f"{tree} has no operator/llm_rollout")
    with tempfile.TemporaryDirectory(prefix="soundness-") as tmp:
        out = Path(tmp) / "run.json"
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                [str(tree / "operator"), str(ROOT), os.environ.get("PYTHONPATH", "")]
            ).rstrip(os.pathsep),
        }
        cmd = [
            sys.executable,
            "-m",
            "bench.soundness",
            *_forward(a),
            "--child",
            "--source-tree",
            str(tree),
            "--json-out",
            str(out),
        ]
        done = subprocess.run(cmd, cwd=ROOT, env=env, check=False)
        if done.returncode != 0:
            raise SystemExit(f"the run in {tree} failed (exit {done.returncode})")
        result: dict[str, Any] = json.loads(out.read_text())
        return result


def run_here(a: argparse.Namespace) -> dict[str, Any]:
    if a.child and a.source_tree is not None:
        sys.path.insert(0, str(a.source_tree.resolve() / "operator"))
    import llm_rollout  # the engine measured: whatever this sys.path gives

    engine = Path(llm_rollout.__file__).resolve().parent
    if a.source_tree is not None and not engine.is_relative_to(a.source_tree.resolve()):
        raise SystemExit(f"imported {engine}, not the engine of {a.source_tree}")
    from bench.soundness import harness, traffic

    settings = harness.Settings(
        seed=a.seed,
        left_open=a.left_open,
        scrape=traffic.Scrape(interval=a.scrape_interval, primed=a.primed),
    )
    rollouts = 100 if a.quick else a.rollouts
    chosen = [
        cells.with_overrides(c, failure_limit=a.failure_limit, arrivals=a.arrivals)
        for c in cells.select(a.cells)
    ]
    tree = engine.parents[1]
    meta = {
        "engine": str(engine),
        "tree": _describe(tree),
        "plan_takes_now": harness.PLAN_TAKES_NOW,
        "scrape_interval": a.scrape_interval,
        "primed": a.primed,
        "left_open": a.left_open,
        "seed": a.seed,
        "rollouts": rollouts,
        "arrivals": a.arrivals or "poisson",
        "failure_limit_override": a.failure_limit,
        "workers": a.workers,
        "python": platform.python_version(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "fixed_horizon": report.fixed_horizon(),
    }
    run: dict[str, Any] = {"meta": meta, "cells": []}
    print(f"engine {engine} ({meta['tree']}), {rollouts} rollouts per cell", flush=True)
    workers = harness.pool(a.workers)
    try:
        for cell in chosen:
            results, wall = harness.run_cell(cell, rollouts, settings, a.workers, workers)
            summary = harness.summarize(cell, results, wall)
            print(report.progress_line(summary), flush=True)
            run["cells"].append(summary | {"results": list(harness.compact(results))})
    finally:
        if workers is not None:
            workers.close()
            workers.join()
    if a.json_out:
        a.json_out.write_text(json.dumps(run, indent=1))
    return run


def _print_final(run: dict[str, Any]) -> None:
    print("\n" + report.table(run) + "\n\n" + report.fixed_horizon_text())


def main(argv: list[str] | None = None) -> int:
    a = _args(argv)
    if a.list:
        for c in cells.CELLS:
            print(f"{c.name:<16} {c.group:<28} {c.truth}")
        return 0
    if a.baseline_ref:
        current = run_child(a, ROOT)
        with tempfile.TemporaryDirectory(prefix="soundness-base-") as tmp:
            tree = Path(tmp) / "tree"
            subprocess.run(
                [
                    "git",
                    "-C",
                    str(ROOT),
                    "worktree",
                    "add",
                    "--detach",
                    "--quiet",
                    str(tree),
                    a.baseline_ref,
                ],
                check=True,
            )
            try:
                baseline = run_child(a, tree)
            finally:
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                    check=False,
                )
        print(
            "\n"
            + "\n\n".join(
                [
                    "== current",
                    report.table(current),
                    "== baseline " + a.baseline_ref,
                    report.table(baseline),
                    "== side by side",
                    report.side_by_side(current, baseline),
                    report.fixed_horizon_text(),
                ]
            )
        )
        if a.json_out:
            a.json_out.write_text(json.dumps({"current": current, "baseline": baseline}, indent=1))
        return 0
    if a.source_tree is not None and not a.child:
        run = run_child(a, a.source_tree)
        if a.json_out:
            a.json_out.write_text(json.dumps(run, indent=1))
    else:
        run = run_here(a)
    if not a.child:
        _print_final(run)
    return 0


if __name__ == "__main__":
    sys.exit(main())

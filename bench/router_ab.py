"""Before/after for a router change: two source trees of the router, alternating, one backend.

    git worktree add /tmp/router-before <commit>
    .venv/bin/python bench/router_ab.py /tmp/router-before/operator operator [--pairs 5]

Each run starts a fresh router from one tree (its directory goes first on PYTHONPATH) in
front of the same backend as `make bench`, and measures:

- saturation: closed loop (wrk when installed), 32 connections -> req/s per router core
  (requests / CPU seconds of the router process);
- 200 req/s open loop for 5 s -> router CPU per request, p50 and p99.

Runs alternate A B, B A, ... so drift in the machine's other work falls on both sides.
Prints every run, then the median of the per-pair ratios B / A. On a shared 2-core
machine latency percentiles swing with other work; CPU per request and req/s per core
are the steadier figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from routerbench.measure import measure
from routerbench.procs import backend_argv, load_average, router_files, started, wait_up
from routerbench.settings import REPO

from llm_rollout.testbed.procs import free_port


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "before",
        help="directory holding the llm_rollout package (A); "
        "several, separated by ':', go on PYTHONPATH in that order",
    )
    parser.add_argument("after", help="the same for B")
    parser.add_argument("--pairs", type=int, default=5)
    args = parser.parse_args(argv)
    tool = "wrk" if shutil.which("wrk") else "python"
    trees = {"A": args.before, "B": args.after}
    runs: dict[str, list[dict[str, float]]] = {"A": [], "B": []}
    with tempfile.TemporaryDirectory(prefix="router-ab-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        router_files(workdir)
        port = free_port()
        env = {**os.environ, "PYTHONPATH": str(REPO / "operator")}
        backend = stack.enter_context(
            started("backend", backend_argv(port, 0.01, 20), workdir, env)
        )
        backend_url = f"http://127.0.0.1:{port}"
        wait_up(backend_url + "/health", backend)
        load0 = load_average()
        for i in range(args.pairs):
            for side in ("A", "B") if i % 2 == 0 else ("B", "A"):
                tree = trees[side]
                env = {
                    **os.environ,
                    "PYTHONPATH": os.pathsep.join(
                        os.path.abspath(d) for d in tree.split(os.pathsep)
                    ),
                }
                row = measure(f"router-{Path(tree).name}", backend_url, workdir, tool, env)
                runs[side].append(row)
                print(side, json.dumps({k: round(v, 2) for k, v in row.items()}), flush=True)
                time.sleep(0.5)
        load1 = load_average()
    ratios: dict[str, Any] = {
        k: statistics.median(b[k] / a[k] for a, b in zip(runs["A"], runs["B"], strict=True))
        for k in runs["A"][0]
    }
    medians = {
        side: {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        for side, rows in runs.items()
    }
    print(f"\nload average {load0} -> {load1}; saturation load from {tool}\n")
    print("| | " + " | ".join(ratios) + " |")
    print("|---|" + "---:|" * len(ratios))
    for side in ("A", "B"):
        print(
            f"| {side} (median) | " + " | ".join(f"{medians[side][k]:.2f}" for k in ratios) + " |"
        )
    print("| B / A (median of pairs) | " + " | ".join(f"{v:.2f}" for v in ratios.values()) + " |")
    print(json.dumps({"trees": trees, "runs": runs, "ratios": ratios}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How long `llm-rollout` takes to start, against a bare Python in the same run.

An "immediate" abort is mostly process start: the command's time to its first
request is what a user waits on. Each command runs `--runs` times; the table gives
medians and their ratio to `python -c pass` (the floor any Python CLI pays).

    .venv/bin/python bench/cli_startup.py            # ~30 s
    .venv/bin/python bench/cli_startup.py --runs 5   # quick
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
CLI = str(VENV_BIN / "llm-rollout")

CASES: tuple[tuple[str, list[str]], ...] = (
    ("python -c pass (baseline)", [sys.executable, "-c", "pass"]),
    ("llm-rollout --help", [CLI, "--help"]),
    ("llm-rollout abort NAME --dry-run", [CLI, "abort", "bot", "--dry-run"]),
    ("import kubernetes (what a real abort adds)", [sys.executable, "-c", "import kubernetes"]),
    (
        "llm-rollout abort NAME, no API server",
        [CLI, "abort", "bot", "--kubeconfig", "/nonexistent/kubeconfig"],
    ),
    ("llm-rollout operator --help", [CLI, "operator", "--help"]),
)


def median_seconds(argv: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    results = [(name, median_seconds(argv, args.runs)) for name, argv in CASES]
    base = results[0][1]
    print(f"median of {args.runs} runs each\n")
    print(f"| {'command':<44} | median s | x baseline |")
    print(f"| {'-' * 44} | -------- | ---------- |")
    for name, seconds in results:
        print(f"| {name:<44} | {seconds:8.3f} | {seconds / base:10.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

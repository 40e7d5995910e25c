"""`bench/router_bench.py`: arguments, the run, the report and the exit code."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from routerbench.report import broken, report
from routerbench.run import run
from routerbench.settings import FULL, NGINX, QUICK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Router benchmark: the router next to the same backend reached directly "
        "and through nginx."
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a few hundred requests: checks that everything answers",
    )
    parser.add_argument(
        "--saturation-tool",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="closed-loop load for saturation (auto: wrk when installed)",
    )
    parser.add_argument("--no-nginx", action="store_true", help="skip the nginx baseline")
    parser.add_argument(
        "--json-out", default=None, metavar="FILE", help="also write the JSON results here"
    )
    args = parser.parse_args(argv)
    tool = args.saturation_tool
    if tool == "auto":
        tool = "wrk" if shutil.which("wrk") else "python"
    with_nginx = not args.no_nginx
    if with_nginx and not os.access(NGINX, os.X_OK):
        print(
            f"nginx not found at {NGINX} (hack/install-deps.sh installs it; or --no-nginx)",
            file=sys.stderr,
        )
        return 1
    try:
        res = run(QUICK if args.quick else FULL, tool, with_nginx)
    except RuntimeError as exc:
        print(f"benchmark broke: {exc}", file=sys.stderr)
        return 1
    print("\n".join(report(res)))
    problems = broken(res)
    res["broken"] = problems
    for problem in problems:
        print(f"BROKEN {problem}", file=sys.stderr)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res))
    return 1 if problems else 0

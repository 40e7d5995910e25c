"""`python -m llm_rollout.testbed up|down|status [--dir .cluster]` (make cluster-up/down)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from llm_rollout.testbed.bed import TestBed, TestBedError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llm_rollout.testbed",
                                     description="Local kube-apiserver + etcd + Prometheus.")
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--dir", type=Path, default=Path(".cluster"),
                        help="where the bed keeps its state, logs and env file")
    args = parser.parse_args(argv)
    root: Path = args.dir.resolve()
    env_file = root / "env"

    existing = TestBed.load(root)
    if args.command == "status":
        if existing is None:
            print("the local bed is not running")
            return 1
        print(f"running: kube-apiserver {existing.state.apiserver_url}, "
              f"Prometheus {existing.state.prometheus_url}\nsource {env_file}")
        return 0
    if args.command == "down":
        if existing is None:
            print("the local bed is not running; nothing to stop")
        else:
            existing.stop()
            print("stopped the local bed")
        env_file.unlink(missing_ok=True)
        return 0

    if existing is not None:
        print(f"the local bed is already running (source {env_file})")
        return 0
    try:
        bed = TestBed.start(root, detached=True)
    except TestBedError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    env_file.write_text(bed.env_lines())
    print(f"local bed ready: kube-apiserver {bed.state.apiserver_url}, "
          f"Prometheus {bed.state.prometheus_url}\n  source {env_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

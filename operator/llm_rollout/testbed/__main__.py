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

    recorded = TestBed.recorded(root)
    alive = recorded.alive() if recorded is not None else {}
    dead = sorted(name for name, up in alive.items() if not up)
    if args.command == "status":
        if recorded is None or not any(alive.values()):
            print("the local bed is not running")
            return 1
        if dead:
            print(f"the local bed is half dead: {', '.join(dead)} exited "
                  f"(logs in {root}); run make cluster-down, then make cluster-up")
            return 1
        print(f"running: kube-apiserver {recorded.state.apiserver_url}, "
              f"Prometheus {recorded.state.prometheus_url}\nsource {env_file}")
        return 0
    if args.command == "down":
        if recorded is None:
            print("the local bed is not running; nothing to stop")
        else:
            exited = recorded.stop()
            print("stopped the local bed" + (
                f" ({', '.join(sorted(exited))} had already exited)" if exited else ""))
        env_file.unlink(missing_ok=True)
        return 0

    if recorded is not None and not dead:
        print(f"the local bed is already running (source {env_file})")
        return 0
    if recorded is not None:
        # Half dead: nothing in it can be trusted; stop the rest and start afresh.
        print(f"the local bed was half dead ({', '.join(dead)} exited); "
              "stopping the rest and starting a new one")
        recorded.stop()
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

"""`python -m llm_rollout.testbed up|down|status|scrape|kubelet [--dir .cluster]`.

up/down/status: the bed itself (make cluster-up/down; `up --node` adds a real node
where pods run: make cluster-up NODE=1). scrape: list, add or remove
what the bed's Prometheus scrapes. kubelet: stand in for the kubelet the no-node bed
does not have, marking the release Deployments of a namespace available.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from llm_rollout.testbed.bed import TestBed, TestBedError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m llm_rollout.testbed",
        description="Local kube-apiserver + etcd + Prometheus.",
    )
    parser.add_argument("command", choices=["up", "down", "status", "scrape", "kubelet"])
    parser.add_argument(
        "args", nargs="*", help="scrape: [add NAME HOST:PORT | remove NAME]; kubelet: NAMESPACE"
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path(".cluster"),
        help="where the bed keeps its state, logs and env file",
    )
    parser.add_argument(
        "--node",
        action="store_true",
        help="up: also a real node (containerd, kubelet, kube-proxy, controllers, CoreDNS)",
    )
    args = parser.parse_args(argv)
    root: Path = args.dir.resolve()
    env_file = root / "env"
    if args.command in ("scrape", "kubelet"):
        bed = TestBed.load(root)
        if bed is None:
            print("the local bed is not running: make cluster-up", file=sys.stderr)
            return 1
        if args.command == "scrape":
            return _scrape(bed, args.args)
        return _kubelet(bed, args.args)

    recorded = TestBed.recorded(root)
    alive = recorded.alive() if recorded is not None else {}
    dead = sorted(name for name, up in alive.items() if not up)
    if args.command == "status":
        if recorded is None or not any(alive.values()):
            print("the local bed is not running")
            return 1
        if dead:
            print(
                f"the local bed is half dead: {', '.join(dead)} exited "
                f"(logs in {root}); run make cluster-down, then make cluster-up"
            )
            return 1
        print(
            f"running: kube-apiserver {recorded.state.apiserver_url}, "
            f"Prometheus {recorded.state.prometheus_url}\nsource {env_file}"
        )
        return 0
    if args.command == "down":
        if recorded is None:
            print("the local bed is not running; nothing to stop")
        else:
            exited = recorded.stop()
            print(
                "stopped the local bed"
                + (f" ({', '.join(sorted(exited))} had already exited)" if exited else "")
            )
            if recorded.node_leftovers:
                print(
                    "error: the node left these behind:\n  " + "\n  ".join(recorded.node_leftovers),
                    file=sys.stderr,
                )
                env_file.unlink(missing_ok=True)
                return 1
        env_file.unlink(missing_ok=True)
        return 0

    if recorded is not None and not dead:
        print(f"the local bed is already running (source {env_file})")
        return 0
    if recorded is not None:
        # Half dead: nothing in it can be trusted; stop the rest and start afresh.
        print(
            f"the local bed was half dead ({', '.join(dead)} exited); "
            "stopping the rest and starting a new one"
        )
        recorded.stop()
    try:
        bed = TestBed.start(root, detached=True, node=args.node)
    except TestBedError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    env_file.write_text(bed.env_lines())
    print(
        f"local bed ready: kube-apiserver {bed.state.apiserver_url}, "
        f"Prometheus {bed.state.prometheus_url}"
        + (", a node (pods run)" if bed.node is not None else "")
        + f"\n  source {env_file}"
    )
    return 0


def _scrape(bed: TestBed, words: list[str]) -> int:
    match words:
        case []:
            for name, address in sorted(bed.scrape_targets().items()):
                print(f"{name}\t{address}")
            return 0
        case ["add", name, address] if ":" in address:
            bed.add_scrape_target(name, address)
            print(
                f"Prometheus {bed.state.prometheus_url} scrapes {address} as "
                f'bed_target="{name}" (within a few seconds)'
            )
            return 0
        case ["remove", name]:
            bed.remove_scrape_target(name)
            print(f"removed scrape target {name}")
            return 0
    print("usage: scrape [add NAME HOST:PORT | remove NAME]", file=sys.stderr)
    return 2


def _kubelet(bed: TestBed, words: list[str]) -> int:
    if len(words) != 1:
        print("usage: kubelet NAMESPACE", file=sys.stderr)
        return 2
    import logging
    import signal
    import threading

    from kubernetes import config

    from llm_rollout.testbed.kubelet import KubeletStandIn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    api_client = config.new_client_from_config(config_file=bed.state.kubeconfig)
    stand_in = KubeletStandIn(api_client, words[0])
    print(
        f"standing in for the kubelet in namespace {words[0]}: release Deployments are "
        "marked available (no pods run); Ctrl-C stops",
        flush=True,
    )
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with contextlib.suppress(KeyboardInterrupt):
        done.wait()
    stand_in.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

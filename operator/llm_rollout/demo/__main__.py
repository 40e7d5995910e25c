"""`python -m llm_rollout.demo` (what `make demo` runs)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from llm_rollout.demo.run import Demo
from llm_rollout.demo.scenario import DemoConfig
from llm_rollout.demo.summary import summary
from llm_rollout.testbed import TestBedError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llm_rollout.demo")
    parser.add_argument(
        "--out-dir", type=Path, default=DemoConfig.out_dir, help="where the PNG timelines go"
    )
    parser.add_argument(
        "--no-live",
        action="store_true",
        help="print progress lines instead of redrawing the status table",
    )
    parser.add_argument(
        "--pods",
        action="store_true",
        help="run it all in pods on a bed with a real node: the image built here, the Helm "
        "chart, model servers and judge as pods (root; make demo PODS=1)",
    )
    args = parser.parse_args(argv)
    config = DemoConfig(out_dir=args.out_dir, live=not args.no_live)
    if args.pods:
        return _pods(config)
    return _run(Demo(config))


def _run(demo: Demo, prepare: Callable[[], None] = lambda: None) -> int:
    """Run the demo (after `prepare`), stop it, print the summary; the exit status."""

    def interrupted(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    try:
        prepare()
        result = asyncio.run(demo.run())
    except KeyboardInterrupt:
        print("\n[demo] interrupted: stopping everything", file=sys.stderr)
        return 130
    except (TestBedError, RuntimeError) as err:
        print(f"[demo] error: {err}", file=sys.stderr)
        return 1
    finally:
        demo.stop()
    print(summary(result))
    return 0 if result.ok else 1


def _pods(config: DemoConfig) -> int:
    from llm_rollout.demo.pods import PodsDemo, build_and_import_image
    from llm_rollout.testbed import TestBed

    print("[demo] starting the bed with a real node (pods run here)...", flush=True)
    try:
        bed = TestBed.start(node=True)
    except TestBedError as err:
        print(f"[demo] error: {err}", file=sys.stderr)
        return 1
    demo = PodsDemo(config, bed)

    def build() -> None:
        print(f"[demo] building {demo.image.ref} and importing it into the node...", flush=True)
        build_and_import_image(bed, demo.image)

    try:
        return _run(demo, build)
    finally:
        bed.stop()


if __name__ == "__main__":
    sys.exit(main())

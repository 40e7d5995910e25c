"""`python -m llm_rollout.demo` (what `make demo` runs)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from llm_rollout.demo.run import Demo
from llm_rollout.demo.scenario import TRACE_PROJECT, DemoConfig, DemoResult
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
    parser.add_argument(
        "--keep",
        action="store_true",
        help="after the summary, keep everything running (the trace backend's UI, the "
        "bed, the router) until Ctrl-C",
    )
    parser.add_argument(
        "--screenshot",
        type=Path,
        default=None,
        metavar="PNG",
        help="take a picture of one regressed B'' answer in the trace backend's UI with "
        "headless Chromium",
    )
    args = parser.parse_args(argv)
    config = DemoConfig(out_dir=args.out_dir, live=not args.no_live)
    if args.pods:
        return _pods(config)
    after: list[After] = []
    if args.screenshot:
        after.append(_screenshot(args.screenshot))
    if args.keep:
        after.append(_keep)
    return _run(Demo(config), after=after)


# What to do once the demo has run, before it stops.
After = Callable[[Demo, DemoResult], None]


def _screenshot(path: Path) -> After:
    def take(demo: Demo, result: DemoResult) -> None:
        from llm_rollout.demo.screenshot import (
            capture_page,
            output_text,
            regressed_answer,
        )

        traces = demo.traces
        if traces is None:
            raise RuntimeError("no trace backend in this demo to take a screenshot of")
        answer = regressed_answer(traces.spans(TRACE_PROJECT), result.releases["B''"])
        if answer is None:
            raise RuntimeError(
                "no answer of B'' with a failed brand-name check and a negative rating"
            )
        span = answer["context"]["span_id"]
        events = path.with_name(f"{path.stem}-events{path.suffix}")
        feedback = path.with_name(f"{path.stem}-feedback{path.suffix}")
        expand = ["tab:Events", "all:gen_ai.evaluation.result"]
        asyncio.run(
            capture_page(
                f"{traces.url}/redirects/spans/{span}",
                [(path, []), (events, expand), (feedback, ["text:feedback expert", *expand])],
                ready_text=output_text(answer)[:40] or "Output",  # the answer is drawn
            )
        )
        print(
            f"[demo] screenshots of B'' answer {span} in the trace backend: {path}, "
            f"{events}, {feedback}",
            flush=True,
        )

    return take


def _keep(demo: Demo, result: DemoResult) -> None:
    print(
        f"[demo] everything keeps running: traces {result.traces_url}, router "
        f"{demo.router_url}, logs in {demo.work}. Ctrl-C stops it.",
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("\n[demo] stopping everything", file=sys.stderr)


def _run(
    demo: Demo, prepare: Callable[[], None] = lambda: None, after: Sequence[After] = ()
) -> int:
    """Run the demo (after `prepare`), print the summary, do what comes `after`, stop it;
    the exit status."""

    def interrupted(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    try:
        prepare()
        result = asyncio.run(demo.run())
        print(summary(result))
        for step in after:
            step(demo, result)
    except KeyboardInterrupt:
        print("\n[demo] interrupted: stopping everything", file=sys.stderr)
        return 130
    except (TestBedError, RuntimeError) as err:
        print(f"[demo] error: {err}", file=sys.stderr)
        return 1
    finally:
        demo.stop()
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

"""Running the operator under leader election: standing by, then acting."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from llm_rollout.controller.leadership.config import config_from_args
from llm_rollout.controller.leadership.elector import KubeLeases, LeaderElector
from llm_rollout.controller.leadership.watchdog import Watchdog, _exit_now
from llm_rollout.kube.client import KubeClient

log = logging.getLogger("llm_rollout.leadership")


async def run_elected(
    elector: LeaderElector,
    operator: Callable[[], Coroutine[Any, Any, None]],
    *,
    standby: Callable[[], Awaitable[Callable[[], Awaitable[None]]]] | None = None,
    on_leading: Callable[[bool], None] = lambda _leading: None,
    on_lost: Callable[[str], None] = _exit_now,
) -> int:
    """Wait for the Lease, then run `operator()` while renewing it.

    `standby()` starts what a waiting replica serves (health, metrics) and returns its
    stop function; it is stopped before the operator starts. SIGTERM/SIGINT while
    waiting returns 0; once leading, the operator handles them and the Lease is
    released after it stopped. Losing the Lease calls `on_lost` (default: exit 1 now).
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    on_leading(False)
    stop_standby = await standby() if standby is not None else None
    try:
        acquired = await elector.acquire(stop)
    finally:
        if stop_standby is not None:
            await stop_standby()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
    if not acquired:
        log.info("stopped while standing by")
        return 0
    on_leading(True)
    watchdog = Watchdog(elector, on_lost)
    watchdog.start()
    # Created before the operator starts, so kopf leaves it alone when it shuts down.
    keeper = asyncio.create_task(elector.keep(), name="leader-election renew")
    running = asyncio.create_task(operator(), name="operator")
    try:
        done, _ = await asyncio.wait({keeper, running}, return_when=asyncio.FIRST_COMPLETED)
        if keeper in done:
            err = keeper.exception()
            on_lost(str(err) if err else "renewal stopped")
            running.cancel()  # only reached when on_lost returns (tests)
            with contextlib.suppress(asyncio.CancelledError):
                await running
            return 1
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper
        watchdog.stop()
        await asyncio.to_thread(elector.release)
        on_leading(False)
        running.result()  # re-raise the operator's failure, if any
        return 0
    finally:
        watchdog.stop()


def run_operator(
    args: argparse.Namespace,
    api_client: Any,
    controller: Any,
    operator: Callable[[], Coroutine[Any, Any, None]],
) -> int:
    """`llm-rollout operator --leader-elect`: stand by (serving /healthz and /metrics on
    --metrics-listen) until this replica holds the Lease, then run `operator`."""
    try:
        config = config_from_args(args)
    except ValueError as err:
        log.error("leader election: %s", err)
        return 2
    elector = LeaderElector(
        KubeLeases(
            KubeClient(api_client, on_request=controller.metrics.count_kube_request),
            timeout=min(5.0, config.renew_deadline / 2),
        ),
        config,
    )
    log.info(
        "leader election: identity %s, Lease %s/%s (duration %gs, renew deadline %gs, retry %gs)",
        config.identity,
        config.namespace,
        config.name,
        config.lease_duration,
        config.renew_deadline,
        config.retry_period,
    )

    async def standby() -> Callable[[], Awaitable[None]]:
        from llm_rollout.controller.handlers import _serve_metrics

        host, _sep, port = controller.settings.metrics_listen.rpartition(":")
        runner = await _serve_metrics(controller, host or "0.0.0.0", int(port))
        stop: Callable[[], Awaitable[None]] = runner.cleanup
        return stop

    def leading(on: bool) -> None:
        controller.metrics.leader.set(1 if on else 0)

    return asyncio.run(run_elected(elector, operator, standby=standby, on_leading=leading))

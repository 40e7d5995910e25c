"""The leader's own check that it still renews in time; past the deadline it exits."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from llm_rollout.controller.leadership.elector import LeaderElector
from llm_rollout.controller.leadership.lease import must_step_down

log = logging.getLogger("llm_rollout.leadership")


def _exit_now(reason: str) -> None:
    log.error(
        "stopping: lost leadership (%s); exiting so that this replica restarts as a standby", reason
    )
    logging.shutdown()
    os._exit(1)


class Watchdog:
    """A thread that ends the process once the renew deadline has passed, even if the
    event loop is stuck (a handler blocking it, a paused process resuming)."""

    def __init__(
        self, elector: LeaderElector, on_lost: Callable[[str], None], interval: float = 0.1
    ) -> None:
        self.elector = elector
        self.on_lost = on_lost
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="leader-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        cfg = self.elector.config
        while not self._stop.wait(self.interval):
            last = self.elector.last_renewed
            if last is not None and must_step_down(
                last_renewed=last, now=self.elector.clock(), renew_deadline=cfg.renew_deadline
            ):
                self.on_lost(f"no renewal for {cfg.renew_deadline:g}s")
                return

"""Polling file watcher: config, backend map and key files apply without a restart."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("llm_rollout.router")


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class FileWatcher:
    """Calls `apply(text)` now and whenever the file changes (polled every `interval` s).

    If `apply` raises (a bad edit), the error is logged and the previous
    configuration stays in force. Atomic replacement (write + rename, as
    Kubernetes does for mounted ConfigMaps and Secrets) is detected too.
    """

    def __init__(
        self, path: str | os.PathLike[str], apply: Callable[[str], None], interval: float = 0.5
    ) -> None:
        self.path = Path(path)
        self.apply = apply
        self.interval = interval
        self._stamp: tuple[int, int, int] | None = None
        self._task: asyncio.Task[None] | None = None

    def load(self) -> None:
        """Read and apply the file once; raises on error (use at start-up)."""
        self._stamp = _stamp(self.path)
        self.apply(self.path.read_bytes().decode("utf-8", "replace"))

    def poll(self) -> bool:
        """Apply the file if it changed since the last look; True if it was applied."""
        stamp = _stamp(self.path)
        if stamp is None or stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            self.apply(self.path.read_bytes().decode("utf-8", "replace"))
        except Exception as exc:
            log.error("not applying %s, keeping the previous version: %s", self.path, exc)
            return False
        log.info("applied %s", self.path)
        return True

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.poll()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

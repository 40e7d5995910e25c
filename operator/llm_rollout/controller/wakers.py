"""Wake-ups of the per-LLMDeployment loops, held operator-wide.

kopf hands each object's handlers a shallow copy of the operator's memo, so anything a
handler adds to its memo is seen by that object's handlers only: a waker kept there
is never found by the Deployment or eval-run handlers that should set it. This lives
on the Controller instead, and is only touched from the event loop (the handlers that
call it are async), since asyncio.Event is not thread-safe.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from llm_rollout.api.actions import ACTION_ANNOTATION, ACTION_ID_ANNOTATION

Key = tuple[str, str]


def _what_decides(body: Mapping[str, Any]) -> tuple[Any, str, str]:
    """The parts of an LLMDeployment that can change a decision: its spec (generation)
    and a manual action. Its status, written by the operator itself, is not one."""
    meta = body.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    return (
        meta.get("generation"),
        annotations.get(ACTION_ANNOTATION, ""),
        annotations.get(ACTION_ID_ANNOTATION, ""),
    )


class Wakers:
    def __init__(self) -> None:
        self._events: dict[Key, asyncio.Event] = {}
        self._seen: dict[Key, tuple[Any, str, str]] = {}

    def register(self, namespace: str, name: str) -> asyncio.Event:
        return self._events.setdefault((namespace, name), asyncio.Event())

    def forget(self, namespace: str, name: str) -> None:
        self._events.pop((namespace, name), None)
        self._seen.pop((namespace, name), None)

    def wake(self, namespace: str | None, name: str | None) -> bool:
        """Wake the loop of namespace/name, if it runs; True when one was woken."""
        if namespace and name and (event := self._events.get((namespace, name))):
            event.set()
            return True
        return False

    def decisive_change(self, namespace: str, name: str, body: Mapping[str, Any]) -> bool:
        """Did this event change what decides (spec or action) since the last one seen?
        The operator's own status writes do not, so they do not wake it again."""
        now = _what_decides(body)
        before = self._seen.get((namespace, name))
        self._seen[(namespace, name)] = now
        return before != now

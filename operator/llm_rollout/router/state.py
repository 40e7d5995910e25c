"""The set of deployments a router serves, swappable at run time."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from llm_rollout.api.routing_table import ReleaseInfo
from llm_rollout.router.config import ServedDeployment

DEPLOYMENT_HEADER = "x-llm-deployment"
PATH_PREFIX = "/d/"
MAX_REMEMBERED_RELEASES = 4096


@dataclass(frozen=True)
class _Snapshot:
    by_key: dict[tuple[str, str], ServedDeployment] = field(default_factory=dict)
    by_host: dict[str, ServedDeployment] = field(default_factory=dict)


class RouterState:
    """Holds the served deployments; `update` swaps them atomically.

    Safe to call from the event loop at any time (a request sees either the old
    or the new set, never a mix). From another thread, use
    `loop.call_soon_threadsafe(state.update, served)`.
    """

    def __init__(self, served: Iterable[ServedDeployment] | None = None) -> None:
        self._snap = _Snapshot()
        self.ready = False
        self._releases: OrderedDict[tuple[str, str, str], ReleaseInfo] = OrderedDict()
        self._listeners: list[Callable[[list[ServedDeployment]], None]] = []
        if served is not None:
            self.update(served)

    def update(self, served: Iterable[ServedDeployment]) -> None:
        """Replace the whole set of served deployments (marks the router ready)."""
        items = list(served)
        by_key = {s.key: s for s in items}
        by_host = {h: s for s in items for h in s.hosts}
        self._snap = _Snapshot(by_key, by_host)
        self.ready = True
        for s in items:
            for rel in (s.routing.stable, s.routing.candidate):
                if rel is not None:
                    self._releases[(s.namespace, s.name, rel.id)] = rel
                    self._releases.move_to_end((s.namespace, s.name, rel.id))
        while len(self._releases) > MAX_REMEMBERED_RELEASES:
            self._releases.popitem(last=False)
        for listener in self._listeners:
            listener(items)

    def subscribe(self, listener: Callable[[list[ServedDeployment]], None]) -> None:
        """Call `listener(served)` after every update, and now with the current set."""
        self._listeners.append(listener)
        listener(self.deployments)

    @property
    def deployments(self) -> list[ServedDeployment]:
        return list(self._snap.by_key.values())

    def get(self, namespace: str, name: str) -> ServedDeployment | None:
        return self._snap.by_key.get((namespace, name))

    def port_of(self, namespace: str, name: str) -> int | None:
        served = self.get(namespace, name)
        return served.port if served else None

    def release(self, namespace: str, name: str, release_id: str) -> ReleaseInfo | None:
        """What a release (current or recently served) is made of, for feedback logs."""
        return self._releases.get((namespace, name, release_id))

    def select(
        self, header: str | None, path: str, host: str | None
    ) -> tuple[ServedDeployment, str] | None:
        """The deployment a request is for and the path to proxy, or None (404).

        By `x-llm-deployment: ns/name`, else by path `/d/ns/name/...` (prefix
        stripped), else by Host among `spec.hosts`, else the only one served.
        """
        snap = self._snap
        if header:
            ns, _, name = header.strip().partition("/")
            served = snap.by_key.get((ns, name))
            return (served, path) if served else None
        if path.startswith(PATH_PREFIX):
            parts = path[len(PATH_PREFIX) :].split("/", 2)
            if len(parts) < 2:
                return None
            served = snap.by_key.get((parts[0], parts[1]))
            return (served, "/" + (parts[2] if len(parts) == 3 else "")) if served else None
        if host and snap.by_host:
            served = snap.by_host.get(host.rsplit(":", 1)[0].lower())
            if served:
                return (served, path)
        if len(snap.by_key) == 1:
            return (next(iter(snap.by_key.values())), path)
        return None

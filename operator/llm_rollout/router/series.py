"""Which release series the router exports: primed when a release is served, kept for a
grace period after it leaves the routing table, then dropped."""

from __future__ import annotations

from collections.abc import Callable

from llm_rollout.router.assignments import AssignmentTracker
from llm_rollout.router.config import ServedDeployment
from llm_rollout.router.metrics import RouterMetrics

ReleaseKey = tuple[str, str, str]  # namespace, deployment, release


class SeriesKeeper:
    """Subscribed to the router's state: follows each routing change."""

    def __init__(
        self,
        metrics: RouterMetrics,
        assignments: AssignmentTracker,
        grace_seconds: float,
        clock: Callable[[], float],
    ) -> None:
        self.metrics = metrics
        self.assignments = assignments
        self.grace_seconds = grace_seconds
        self.clock = clock
        self._served: set[ReleaseKey] = set()
        self._left_at: dict[ReleaseKey, float] = {}

    def on_routing(self, served: list[ServedDeployment]) -> None:
        """Zero-valued series for every live release x cohort (see RouterMetrics.prime),
        and the series of releases no longer served dropped after the grace period."""
        live: set[ReleaseKey] = set()
        for s in served:
            releases = [r.id for r in (s.routing.stable, s.routing.candidate) if r is not None]
            cohorts = {c.name for c in s.cohorts} | {s.default_cohort}
            checks = [c.name for c in s.checks]
            for rel in releases:
                live.add((s.namespace, s.name, rel))
                for cohort in cohorts:
                    self.metrics.prime(s.namespace, s.name, rel, cohort, checks)
        self.assignments.keep({s.key for s in served})
        self._retire(live)

    def _retire(self, live: set[ReleaseKey]) -> None:
        # A release that left the routing table keeps its series for a while: its last
        # increments must still be scraped, and late feedback (tokens live for hours)
        # still counts. After the grace period its series go.
        now = self.clock()
        for key in live:
            self._left_at.pop(key, None)
        for key in self._served - live:
            self._left_at.setdefault(key, now)
        self._served = set(live) | set(self._left_at)
        expired = {k for k, t in self._left_at.items() if now - t >= self.grace_seconds}
        if expired:
            self.metrics.forget_releases(expired)
            for key in expired:
                del self._left_at[key]
            self._served -= expired

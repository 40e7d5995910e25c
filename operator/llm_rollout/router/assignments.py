"""Which release each *unit* of randomisation was placed on, for the sample-ratio check.

Sticky routing assigns users, not requests: a heavy user on the candidate moves the
request split far from the step's percentage without anything being wrong. So the
router counts units: a user the first time it routes them since their cohort's
routing last changed, and every request without a user id (bucketed by its request
id, so each is a unit of its own). Under correct routing each unit lands on the
candidate independently with the step's probability, which is what the engine's
sequential test of the split assumes.
"""

from __future__ import annotations

from llm_rollout.api.routing_table import RoutingTable

# Users remembered per (deployment, cohort); past it, new users go uncounted, which
# only thins the sample (whom to count does not depend on their release).
DEFAULT_CAPACITY = 50_000

_RouteKey = tuple[str | None, int]  # (candidate id, candidate percent) of a cohort


class AssignmentTracker:
    """Remembers, per deployment and cohort, the users placed since its routing changed."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._routes: dict[tuple[str, str, str], _RouteKey] = {}
        self._seen: dict[tuple[str, str, str], set[int]] = {}

    def first_placement(
        self,
        namespace: str,
        deployment: str,
        cohort: str,
        routing: RoutingTable,
        user_id: str | None,
    ) -> bool:
        """Whether this request places a new unit (count it as an assignment)."""
        if user_id is None:
            return True
        key = (namespace, deployment, cohort)
        candidate = routing.candidate.id if routing.candidate is not None else None
        route = (candidate, routing.candidate_percent(cohort))
        seen = self._seen.get(key)
        if seen is None or self._routes.get(key) != route:
            self._routes[key] = route
            seen = self._seen[key] = set()
        ident = hash(user_id)
        if ident in seen or len(seen) >= self.capacity:
            return False
        seen.add(ident)
        return True

    def keep(self, deployments: set[tuple[str, str]]) -> None:
        """Forget the users of deployments no longer served."""
        for key in [k for k in self._seen if k[:2] not in deployments]:
            del self._seen[key]
            self._routes.pop(key, None)

"""Exposure: the routing table (which cohorts reach the candidate, and how much), built
purely from spec and status."""

from __future__ import annotations

from llm_rollout.api.routing_table import CohortRoute, RoutingTable
from llm_rollout.api.spec import LLMDeploymentSpec
from llm_rollout.api.status import ACTIVE_PHASES, LLMDeploymentStatus
from llm_rollout.engine.plan import current_stage, earlier_cohorts


def build_routing(spec: LLMDeploymentSpec, status: LLMDeploymentStatus) -> RoutingTable:
    """Cohorts of earlier stages: 100% candidate; the current stage's own cohorts: the
    step's percent; everyone else: 0. Without an active, exposed candidate (waiting,
    promoted, rolled back, failed) nobody reaches the candidate."""
    active = status.phase in ACTIVE_PHASES and status.candidate is not None
    stage = current_stage(spec, status)
    percents: dict[str, int] = {}
    if active and status.exposed and stage is not None:
        earlier = earlier_cohorts(spec, status.stage_index)
        step = stage.percents[min(status.step_index, len(stage.percents) - 1)]
        percents = {c: 100 for c in earlier} | {c: step for c in stage.cohorts if c not in earlier}
    return RoutingTable(
        stable=status.stable,
        candidate=status.candidate if active else None,
        routes=[
            CohortRoute(cohort=c.name, candidate_percent=percents.get(c.name, 0))
            for c in spec.cohorts
        ],
    )

"""What each release's objects are labelled as now (pure): stable, candidate or retired.

The role label (rollout.llmops.io/role) is for people and tools that select on it
(dashboards, a mesh): it must say what a release is after this reconcile's decision,
not what it was when its objects were last applied.
"""

from __future__ import annotations

from typing import Any

from llm_rollout.api.status import ACTIVE_PHASES, LLMDeploymentStatus
from llm_rollout.kube.builders import LABEL_RELEASE, LABEL_ROLE

STABLE, CANDIDATE, RETIRED = "stable", "candidate", "retired"


def release_role(release: str, status: LLMDeploymentStatus) -> str:
    """stable; candidate while its rollout is active; else retired (kept for a quick
    abort or retry, then scaled down and deleted: controller/retire.py)."""
    if status.stable is not None and status.stable.id == release:
        return STABLE
    if (
        status.candidate is not None
        and status.candidate.id == release
        and status.phase in ACTIVE_PHASES
    ):
        return CANDIDATE
    return RETIRED


def plan_roles(
    deployments: list[dict[str, Any]],
    status: LLMDeploymentStatus,
    applied: dict[str, tuple[str, str]] | None = None,
) -> list[tuple[str, str]]:
    """(object name, role) for each release whose role label is not what it is now.

    `deployments` as listed; `applied` maps the name of a Deployment applied in this
    reconcile (perhaps not listed yet) to (release, role it was applied with).
    """
    current: dict[str, tuple[str, str]] = {}
    for dep in deployments:
        meta = dep.get("metadata", {})
        labels = meta.get("labels") or {}
        current[meta.get("name", "")] = (labels.get(LABEL_RELEASE, ""), labels.get(LABEL_ROLE, ""))
    current.update(applied or {})
    return [
        (name, role)
        for name, (release, label) in sorted(current.items())
        if release and (role := release_role(release, status)) != label
    ]


__all__ = ["CANDIDATE", "RETIRED", "STABLE", "plan_roles", "release_role"]

"""Role labels follow what each release is now (controller/roles.py, pure)."""

from __future__ import annotations

from typing import Any

from llm_rollout.api import LLMDeploymentStatus, Phase
from llm_rollout.api.routing_table import ReleaseInfo
from llm_rollout.controller.roles import plan_roles, release_role
from llm_rollout.kube.builders import LABEL_RELEASE, LABEL_ROLE


def info(rid: str) -> ReleaseInfo:
    return ReleaseInfo(id=rid, model="m", model_revision=rid, prompt_version="", knowledge_base="")


def dep(rid: str, role: str) -> dict[str, Any]:
    return {"metadata": {"name": f"bot-{rid}", "labels": {LABEL_RELEASE: rid, LABEL_ROLE: role}}}


def test_roles_after_a_promotion() -> None:
    status = LLMDeploymentStatus(phase=Phase.PROMOTED, stable=info("v3"))
    assert release_role("v3", status) == "stable"
    assert release_role("v1", status) == "retired"
    listed = [dep("v1", "stable"), dep("v2", "candidate"), dep("v3", "candidate")]
    assert plan_roles(listed, status) == [
        ("bot-v1", "retired"),
        ("bot-v2", "retired"),
        ("bot-v3", "stable"),
    ]


def test_a_running_candidate_is_candidate_a_rolled_back_one_retired() -> None:
    running = LLMDeploymentStatus(phase=Phase.PROGRESSING, stable=info("v1"), candidate=info("v2"))
    assert release_role("v2", running) == "candidate"
    paused = running.model_copy(update={"phase": Phase.PAUSED})
    assert release_role("v2", paused) == "candidate"
    for phase in (Phase.ROLLED_BACK, Phase.FAILED):
        assert release_role("v2", running.model_copy(update={"phase": phase})) == "retired"


def test_labels_already_right_need_no_write() -> None:
    status = LLMDeploymentStatus(phase=Phase.PROGRESSING, stable=info("v1"), candidate=info("v2"))
    assert plan_roles([dep("v1", "stable"), dep("v2", "candidate")], status) == []


def test_a_release_applied_this_reconcile_counts_even_if_not_listed() -> None:
    status = LLMDeploymentStatus(phase=Phase.PROMOTED, stable=info("v2"))
    applied = {"bot-v2": ("v2", "candidate")}  # applied before decide() promoted it
    assert plan_roles([dep("v1", "stable")], status, applied) == [
        ("bot-v1", "retired"),
        ("bot-v2", "stable"),
    ]


def test_objects_without_a_release_label_are_left_alone() -> None:
    status = LLMDeploymentStatus(phase=Phase.PROMOTED, stable=info("v1"))
    assert plan_roles([{"metadata": {"name": "other", "labels": {}}}], status) == []

"""Manual control of a rollout as plain patches any tool can make.

pause/resume patch `spec.paused`; promote, promote --full, abort and retry set the
`rollout.llmops.io/action` annotation with a fresh `rollout.llmops.io/action-id`,
which the operator applies once (it records the handled action in status).
"""

from __future__ import annotations

import json
from typing import Any

from llm_rollout import GROUP

ACTION_ANNOTATION = f"{GROUP}/action"
ACTION_ID_ANNOTATION = f"{GROUP}/action-id"
ACTIONS = ("pause", "resume", "promote", "promote-full", "abort", "retry")


def action_patch(action: str, action_id: str) -> dict[str, Any]:
    """The JSON merge patch that requests `action` (pure)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    if action in ("pause", "resume"):
        return {"spec": {"paused": action == "pause"}}
    return {"metadata": {"annotations": {ACTION_ANNOTATION: action,
                                         ACTION_ID_ANNOTATION: action_id}}}


def kubectl_equivalent(action: str, name: str, action_id: str = "$(date +%s)") -> str:
    """The plain kubectl command that makes the same patch (shown in docs and --dry-run)."""
    patch = json.dumps(action_patch(action, "ID")).replace('"ID"', f'"{action_id}"')
    return f"kubectl patch llmdeployment {name} --type merge -p '{patch}'"

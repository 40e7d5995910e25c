"""Manual control of a rollout as plain patches any tool can make (used by the CLI).

pause patches `spec.paused: true`. resume patches `spec.paused: false` and also
asks for the `resume` action, which lifts a pause caused by unavailable metrics.
promote, promote-full, abort and retry set the action annotation with a fresh
action id; the operator applies each (action, id) pair once.
"""

from __future__ import annotations

import json
from typing import Any

from llm_rollout.api.actions import ACTION_ANNOTATION, ACTION_ID_ANNOTATION

ACTIONS = ("pause", "resume", "promote", "promote-full", "abort", "retry")


def _annotations(action: str, action_id: str) -> dict[str, Any]:
    return {"annotations": {ACTION_ANNOTATION: action, ACTION_ID_ANNOTATION: action_id}}


def action_patch(action: str, action_id: str) -> dict[str, Any]:
    """The JSON merge patch that requests `action` (pure)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    if action == "pause":
        return {"spec": {"paused": True}}
    if action == "resume":
        return {"spec": {"paused": False}, "metadata": _annotations(action, action_id)}
    return {"metadata": _annotations(action, action_id)}


def kubectl_equivalent(action: str, name: str, namespace: str | None = None) -> str:
    """The plain kubectl command making the same patch (docs and `--dry-run`)."""
    patch = json.dumps(action_patch(action, "ID"), separators=(",", ":"))
    patch = patch.replace('"ID"', "\"'$(date +%s)'\"")
    ns = f" -n {namespace}" if namespace else ""
    return f"kubectl patch llmdeployment {name}{ns} --type merge -p '{patch}'"

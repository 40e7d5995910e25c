"""Manual actions: an annotation any tool can set, applied once by the engine.

    kubectl annotate llmd NAME --overwrite \\
        rollout.llmops.io/action=promote rollout.llmops.io/action-id="$(date +%s)"

The engine records "<action>/<action-id>" in status.lastHandledAction and ignores
the annotation while it still names that pair; a new action-id repeats an action.
Pause and resume are `spec.paused` (a resume action also lifts a pause caused by
unavailable metrics).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

ACTION_ANNOTATION = "rollout.llmops.io/action"
ACTION_ID_ANNOTATION = "rollout.llmops.io/action-id"


class ActionKind(StrEnum):
    PROMOTE = "promote"  # next step / stage, ignoring gates
    PROMOTE_FULL = "promote-full"  # make the candidate stable now
    ABORT = "abort"  # roll back
    RETRY = "retry"  # restart a rolled-back / failed / error-paused candidate at stage 0
    RESUME = "resume"  # continue after a pause caused by unavailable metrics


@dataclass(frozen=True)
class ManualAction:
    """An action as annotated; `name` is kept raw so unknown names can be reported."""

    name: str
    id: str = ""

    @property
    def key(self) -> str:
        """What status.lastHandledAction records once the action is applied."""
        return f"{self.name}/{self.id}"

    @property
    def kind(self) -> ActionKind | None:
        try:
            return ActionKind(self.name)
        except ValueError:
            return None


def action_from_annotations(annotations: Mapping[str, str] | None) -> ManualAction | None:
    """The manual action the annotations ask for, if any."""
    if not annotations or not (name := annotations.get(ACTION_ANNOTATION, "").strip()):
        return None
    return ManualAction(name=name, id=annotations.get(ACTION_ID_ANNOTATION, "").strip())


# --- requesting an action: plain patches any tool can make (the CLI's) ---------------
#
# pause patches `spec.paused: true`. resume patches `spec.paused: false` and also asks
# for the `resume` action, which lifts a pause caused by unavailable metrics. The other
# actions set the action annotation with a fresh action id; the operator applies each
# (action, id) pair once.

PAUSE = "pause"  # a spec change, not an annotated action
ACTIONS = (PAUSE, *(kind.value for kind in ActionKind))


def _annotations(action: str, action_id: str) -> dict[str, Any]:
    return {"annotations": {ACTION_ANNOTATION: action, ACTION_ID_ANNOTATION: action_id}}


def action_patch(action: str, action_id: str) -> dict[str, Any]:
    """The JSON merge patch that requests `action` (pure)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    if action == PAUSE:
        return {"spec": {"paused": True}}
    if action == ActionKind.RESUME:
        return {"spec": {"paused": False}, "metadata": _annotations(action, action_id)}
    return {"metadata": _annotations(action, action_id)}


def kubectl_equivalent(action: str, name: str, namespace: str | None = None) -> str:
    """The plain kubectl command making the same patch (docs and `--dry-run`)."""
    patch = json.dumps(action_patch(action, "ID"), separators=(",", ":"))
    patch = patch.replace('"ID"', "\"'$(date +%s)'\"")
    ns = f" -n {namespace}" if namespace else ""
    return f"kubectl patch llmdeployment {name}{ns} --type merge -p '{patch}'"

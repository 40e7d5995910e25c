"""Manual actions: an annotation any tool can set, applied once by the engine.

    kubectl annotate llmd NAME --overwrite \\
        rollout.llmops.io/action=promote rollout.llmops.io/action-id="$(date +%s)"

The engine records "<action>/<action-id>" in status.lastHandledAction and ignores
the annotation while it still names that pair; a new action-id repeats an action.
Pause and resume are `spec.paused` (a resume action also lifts a pause caused by
unavailable metrics).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

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

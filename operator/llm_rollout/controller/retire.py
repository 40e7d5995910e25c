"""What to do with releases that are no longer live (pure).

A release stops being live when it is neither stable nor the candidate. Its
Deployment is kept at full size for `scale_down_delay` (so a quick abort or
retry finds it warm), scaled to zero after that, and deleted after `retention`.
The moment it stopped being live is stamped on the Deployment as an annotation,
so the schedule survives operator restarts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from llm_rollout import GROUP
from llm_rollout.kube.builders import LABEL_RELEASE
from llm_rollout.kube.times import parse_time

RETIRED_AT = f"{GROUP}/retired-at"


class RetireStep(StrEnum):
    MARK = "mark"  # stamp retired-at
    UNMARK = "unmark"  # live again (retry, or the spec went back to it)
    SCALE_DOWN = "scale-down"
    DELETE = "delete"


@dataclass(frozen=True)
class RetireAction:
    step: RetireStep
    name: str
    release: str


def plan_retirement(
    deployments: list[dict[str, Any]],
    live: set[str],
    *,
    now: datetime,
    scale_down_delay: float,
    retention: float,
) -> list[RetireAction]:
    actions = []
    for dep in deployments:
        meta = dep.get("metadata", {})
        release = meta.get("labels", {}).get(LABEL_RELEASE, "")
        name = meta.get("name", "")
        stamp = (meta.get("annotations") or {}).get(RETIRED_AT)
        if release in live:
            if stamp:
                actions.append(RetireAction(RetireStep.UNMARK, name, release))
            continue
        since = parse_time(stamp) if stamp else None
        if since is None:
            actions.append(RetireAction(RetireStep.MARK, name, release))
            continue
        age = (now - since).total_seconds()
        if age >= retention:
            actions.append(RetireAction(RetireStep.DELETE, name, release))
        elif age >= scale_down_delay and (dep.get("spec") or {}).get("replicas", 1) != 0:
            actions.append(RetireAction(RetireStep.SCALE_DOWN, name, release))
    return actions

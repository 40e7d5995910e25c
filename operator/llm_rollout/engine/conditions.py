"""Kubernetes-style conditions: lastTransitionTime moves only when status flips."""

from __future__ import annotations

from datetime import datetime

from llm_rollout.api.status import Condition, ConditionStatus, ConditionType

CONDITION_ORDER = list(ConditionType)


def set_condition(
    conditions: list[Condition],
    type_: ConditionType,
    status: ConditionStatus,
    reason: str,
    message: str,
    *,
    now: datetime,
    generation: int,
) -> list[Condition]:
    """`conditions` with `type_` set; the list is kept in CONDITION_ORDER."""
    by_type = {c.type: c for c in conditions}
    old = by_type.get(type_)
    since = old.last_transition_time if old is not None and old.status == status else now
    by_type[type_] = Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=since,
        observed_generation=generation,
    )
    return [by_type[t] for t in CONDITION_ORDER if t in by_type]

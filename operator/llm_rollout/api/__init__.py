"""API of LLMDeployment (rollout.llmops.io/v1alpha1): pydantic models, the source of the CRD.

Names are imported on first use (PEP 562): a command that needs only the annotation
names (`llm-rollout abort`) does not pay for pydantic and the spec models.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llm_rollout.api.actions import (
        ACTION_ANNOTATION,
        ACTION_ID_ANNOTATION,
        ActionKind,
        ManualAction,
        action_from_annotations,
    )
    from llm_rollout.api.camel import CamelModel
    from llm_rollout.api.cohorts import Cohort, CohortMatch
    from llm_rollout.api.durations import format_duration, parse_duration
    from llm_rollout.api.spec import (
        Analysis,
        Direction,
        Gate,
        GateComponent,
        GateKind,
        LLMDeploymentSpec,
        MetricSpec,
        OnMetricsUnavailable,
        PrometheusSpec,
        RatioQueries,
        ReleaseSpec,
        RoutingProvider,
        RoutingSpec,
        Stage,
        release_id,
        release_info,
    )
    from llm_rollout.api.status import (
        HISTORY_LIMIT,
        Condition,
        ConditionStatus,
        ConditionType,
        GateResult,
        HistoryEntry,
        LLMDeploymentStatus,
        PauseReason,
        PauseState,
        Phase,
        Verdict,
    )

_MODULES = (
    "llm_rollout.api.actions",
    "llm_rollout.api.cohorts",
    "llm_rollout.api.durations",
    "llm_rollout.api.spec",
    "llm_rollout.api.status",
    "llm_rollout.api.camel",
)


def __getattr__(name: str) -> Any:
    if name in __all__:
        for module in _MODULES:
            value = getattr(importlib.import_module(module), name, _MISSING)
            if value is not _MISSING:
                globals()[name] = value
                return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_MISSING = object()

__all__ = [
    "ACTION_ANNOTATION",
    "ACTION_ID_ANNOTATION",
    "HISTORY_LIMIT",
    "ActionKind",
    "Analysis",
    "CamelModel",
    "Cohort",
    "CohortMatch",
    "Condition",
    "ConditionStatus",
    "ConditionType",
    "Direction",
    "Gate",
    "GateComponent",
    "GateKind",
    "GateResult",
    "HistoryEntry",
    "LLMDeploymentSpec",
    "LLMDeploymentStatus",
    "ManualAction",
    "MetricSpec",
    "OnMetricsUnavailable",
    "PauseReason",
    "PauseState",
    "Phase",
    "PrometheusSpec",
    "RatioQueries",
    "ReleaseSpec",
    "RoutingProvider",
    "RoutingSpec",
    "Stage",
    "Verdict",
    "action_from_annotations",
    "format_duration",
    "parse_duration",
    "release_id",
    "release_info",
]

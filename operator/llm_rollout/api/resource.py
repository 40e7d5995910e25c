"""The LLMDeployment resource as the API server serves it: its names and the columns of
`kubectl get llmd` (gen.crd writes them into the CRD, next to the schema from the models)."""

from __future__ import annotations

from typing import Any

from llm_rollout import GROUP, KIND, PLURAL, VERSION

SINGULAR = "llmdeployment"
SHORT_NAMES = ["llmd"]

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {
        "name": "Release",
        "type": "string",
        "jsonPath": ".status.release",
        "description": "Candidate release id, else stable's.",
    },
    {"name": "Stage", "type": "string", "jsonPath": ".status.stage", "description": "Stage."},
    {"name": "Step", "type": "string", "jsonPath": ".status.step", "description": "Step."},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase", "description": "Phase."},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {
        "name": "Stable",
        "type": "string",
        "jsonPath": ".status.stable.id",
        "priority": 1,
        "description": "Stable release id.",
    },
    {
        "name": "Candidate",
        "type": "string",
        "jsonPath": ".status.candidate.id",
        "priority": 1,
        "description": "Candidate release id.",
    },
    {
        "name": "Message",
        "type": "string",
        "jsonPath": ".status.message",
        "priority": 1,
        "description": "Latest decision.",
    },
]


__all__ = ["GROUP", "KIND", "PLURAL", "PRINTER_COLUMNS", "SHORT_NAMES", "SINGULAR", "VERSION"]

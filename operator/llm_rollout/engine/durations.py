"""Durations for the engine: parsing (shared with the API) and time at a step."""

from __future__ import annotations

from datetime import datetime, timedelta

from llm_rollout.api.durations import format_duration, parse_duration
from llm_rollout.api.status import LLMDeploymentStatus

__all__ = ["elapsed_in_step", "format_duration", "parse_duration"]


def elapsed_in_step(status: LLMDeploymentStatus, now: datetime) -> timedelta:
    """Time the candidate has spent at the current step, paused time excluded.

    Resuming shifts stepStartTime forward by the pause, so this is also what
    minDuration and maxDuration are measured against.
    """
    if status.step_start_time is None:
        return timedelta(0)
    end = status.pause.since if status.pause is not None else now
    return max(end - status.step_start_time, timedelta(0))

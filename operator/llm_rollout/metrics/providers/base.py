"""What every metrics provider offers the operator, and how a failed query is reported."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from llm_rollout.engine.types import ObservationErrorKind


class MetricQueryError(Exception):
    """A query that produced no usable value; `kind` classifies it for status and metrics."""

    def __init__(self, kind: ObservationErrorKind, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


class MetricsProvider(Protocol):
    """A metrics backend (Flagger's metrics providers are the model): the operator
    depends on this, so a batching provider shared by many LLMDeployments, or another
    backend, replaces Prometheus without touching the engine."""

    name: str

    async def query_many(
        self, promqls: Sequence[str], *, at: datetime | None = None
    ) -> list[float | MetricQueryError]:
        """Evaluate each query at time `at` (None: the server's now); a result is its
        single value or the classified error."""
        ...

    async def query_vector(
        self, promql: str, *, at: datetime | None = None
    ) -> list[tuple[dict[str, str], float]]:
        """Every series of an instant-vector answer, as (labels, value): the grouped
        queries of batched analysis (metrics/batch.py)."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...

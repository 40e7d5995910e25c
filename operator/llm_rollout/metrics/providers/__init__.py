"""Metrics providers: where gates' queries are answered. One module per backend
(`prometheus.py` today), behind the `MetricsProvider` protocol; `ProviderCache` is the
factory keyed by a spec's source, so each address and credential gets one client and
one `AnalysisBatcher` (batching.py) shared by every rollout reading it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from llm_rollout.metrics.providers.base import MetricQueryError, MetricsProvider
from llm_rollout.metrics.providers.batching import AnalysisBatcher, QueryCounter
from llm_rollout.metrics.providers.prometheus import (
    DEFAULT_MAX_IN_FLIGHT,
    PrometheusProvider,
    parse_instant_vector,
)


@dataclass(frozen=True)
class MetricsSource:
    """Where a spec's queries go: an address and the credential to present there."""

    address: str
    bearer_token: str | None = None


def build_prometheus(
    source: MetricsSource, timeout: float, max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
) -> MetricsProvider:
    return PrometheusProvider(
        source.address,
        bearer_token=source.bearer_token,
        timeout=timeout,
        max_in_flight=max_in_flight,
    )


@dataclass
class ProviderCache:
    """One provider per source, built on first use and closed together. `build`
    replaces the Prometheus provider (tests, other backends)."""

    timeout: float = 5.0
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    build: Callable[[MetricsSource, float], MetricsProvider] | None = None
    batching: bool = True  # batched analysis (providers/batching.py); off: every query sent
    count_query: QueryCounter | None = None  # counts the queries batchers send, by form
    _providers: dict[MetricsSource, MetricsProvider] = field(default_factory=dict)
    _batchers: dict[MetricsSource, AnalysisBatcher] = field(default_factory=dict)

    def get(self, source: MetricsSource) -> MetricsProvider:
        if source not in self._providers:
            self._providers[source] = (
                self.build(source, self.timeout)
                if self.build is not None
                else build_prometheus(source, self.timeout, self.max_in_flight)
            )
        return self._providers[source]

    def batcher(self, source: MetricsSource) -> AnalysisBatcher:
        """The analyses' way to the source: one batcher per source, shared by every
        rollout that reads it."""
        if source not in self._batchers:
            self._batchers[source] = AnalysisBatcher(
                self.get(source), batching=self.batching, count_query=self.count_query
            )
        return self._batchers[source]

    async def aclose(self) -> None:
        for batcher in self._batchers.values():
            await batcher.aclose()
        self._batchers.clear()
        for provider in self._providers.values():
            await provider.aclose()
        self._providers.clear()


__all__ = [
    "AnalysisBatcher",
    "MetricQueryError",
    "MetricsProvider",
    "MetricsSource",
    "PrometheusProvider",
    "ProviderCache",
    "build_prometheus",
    "parse_instant_vector",
]

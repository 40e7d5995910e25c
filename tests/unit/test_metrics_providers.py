"""The metrics provider cache: one provider per source, closed together."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

from llm_rollout.metrics.providers import (
    MetricQueryError,
    MetricsProvider,
    MetricsSource,
    PrometheusProvider,
    ProviderCache,
)


class RecordingProvider:
    """Records its source and whether it was closed (no backend behind it)."""

    name = "recording"

    def __init__(self, source: MetricsSource) -> None:
        self.source = source
        self.closed = False

    async def query_many(
        self, promqls: Sequence[str], *, at: datetime | None = None
    ) -> list[float | MetricQueryError]:
        return [0.0 for _ in promqls]

    async def aclose(self) -> None:
        self.closed = True


def test_one_provider_per_address_and_credential() -> None:
    built: list[RecordingProvider] = []

    def build(source: MetricsSource, timeout: float) -> MetricsProvider:
        built.append(RecordingProvider(source))
        return built[-1]

    cache = ProviderCache(timeout=2.0, build=build)
    a = cache.get(MetricsSource("http://prom:9090"))
    assert cache.get(MetricsSource("http://prom:9090")) is a
    b = cache.get(MetricsSource("http://prom:9090", bearer_token="t"))
    c = cache.get(MetricsSource("http://other:9090"))
    assert len({id(a), id(b), id(c)}) == 3 and len(built) == 3
    asyncio.run(cache.aclose())
    assert all(p.closed for p in built)
    assert cache.get(MetricsSource("http://prom:9090")) is not a  # rebuilt after close


def test_the_default_builds_prometheus_with_the_timeout() -> None:
    cache = ProviderCache(timeout=3.5)
    provider = cache.get(MetricsSource("http://prom:9090/", bearer_token="s3cret"))
    assert isinstance(provider, PrometheusProvider)
    assert provider.address == "http://prom:9090" and provider.name == "prometheus"
    asyncio.run(cache.aclose())

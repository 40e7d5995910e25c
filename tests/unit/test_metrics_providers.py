"""The metrics providers: one per source, closed together; a backlog of queries waits in
the operator and is never a timeout."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

from aiohttp import web

from llm_rollout.engine.types import ObservationErrorKind
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


class SlowPrometheusFake:
    """Fault injection: an HTTP server answering like Prometheus, but only after `delay`
    seconds, counting the queries it holds at once (a real Prometheus is not slow on
    demand)."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.in_flight = 0
        self.most_in_flight = 0

    async def handle(self, _request: web.Request) -> web.Response:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        body = {"status": "success", "data": {"resultType": "scalar", "result": [0, "1.5"]}}
        return web.json_response(body)

    async def start(self) -> tuple[web.AppRunner, str]:
        app = web.Application()
        app.router.add_post("/api/v1/query", self.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return runner, f"http://127.0.0.1:{port}"


async def test_a_backlog_waits_in_the_operator_and_is_not_a_timeout() -> None:
    # 24 queries, 4 at a time, 0.25 s each: the last is answered ~1.5 s after the
    # first was asked, past the 1 s timeout; none may be reported as a timeout.
    fake = SlowPrometheusFake(delay=0.25)
    runner, url = await fake.start()
    provider = PrometheusProvider(url, timeout=1.0, max_in_flight=4)
    try:
        results = await provider.query_many([f"q{i}" for i in range(24)])
    finally:
        await provider.aclose()
        await runner.cleanup()
    assert results == [1.5] * 24
    assert fake.most_in_flight == 4


async def test_a_query_slower_than_the_timeout_once_sent_is_a_timeout() -> None:
    fake = SlowPrometheusFake(delay=1.0)
    runner, url = await fake.start()
    provider = PrometheusProvider(url, timeout=0.3, max_in_flight=2)
    try:
        (result,) = await provider.query_many(["slow"])
    finally:
        await provider.aclose()
        await runner.cleanup()
    assert isinstance(result, MetricQueryError) and result.kind is ObservationErrorKind.TIMEOUT

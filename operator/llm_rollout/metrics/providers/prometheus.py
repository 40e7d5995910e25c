"""The Prometheus metrics provider: instant PromQL queries over HTTP (httpx).

Every failure is classified (ObservationErrorKind), so a gate's message says what
went wrong.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import httpx

from llm_rollout.engine.types import ObservationErrorKind as Kind
from llm_rollout.metrics.providers.base import MetricQueryError

NO_SERIES = "the query returned no series (no data in the window?)"


def parse_instant_vector(body: dict[str, Any]) -> float:
    """The single value of an instant-query answer (vector or scalar), or the error."""
    if body.get("status") != "success":
        raise MetricQueryError(Kind.BAD_QUERY, str(body.get("error", "query failed")))
    data = body.get("data", {})
    result_type, result = data.get("resultType"), data.get("result")
    if result_type == "scalar":
        raw = result[1]
    elif result_type == "vector":
        if not result:
            raise MetricQueryError(Kind.EMPTY, NO_SERIES)
        if len(result) > 1:
            labels = ", ".join(str(s.get("metric", {})) for s in result[:3])
            raise MetricQueryError(
                Kind.MULTIPLE_SERIES,
                f"the query returned {len(result)} series, expected one "
                f"(aggregate with sum(...)); first: {labels}",
            )
        raw = result[0]["value"][1]
    else:
        raise MetricQueryError(
            Kind.BAD_QUERY, f"the query returned a {result_type}, expected an instant vector"
        )
    value = float(raw)
    if math.isnan(value) or math.isinf(value):
        raise MetricQueryError(
            Kind.NAN, f"the query returned {raw} (division by zero: no samples?)"
        )
    return value


def parse_vector(body: dict[str, Any]) -> list[tuple[dict[str, str], float]]:
    """Every series of an instant-vector answer: (labels, value); NaN stays NaN."""
    if body.get("status") != "success":
        raise MetricQueryError(Kind.BAD_QUERY, str(body.get("error", "query failed")))
    data = body.get("data", {})
    if data.get("resultType") != "vector":
        raise MetricQueryError(
            Kind.BAD_QUERY,
            f"the query returned a {data.get('resultType')}, expected an instant vector",
        )
    return [(dict(s.get("metric", {})), float(s["value"][1])) for s in data.get("result", [])]


# Queries in flight to one Prometheus (per address and credential) at a time. Past it,
# queries wait in the operator, not in the HTTP client's connection pool: httpcore's
# pool scans its queue on every request (quadratic in the queue), and its wait would
# count against the query timeout, so the operator's own backlog read as a Prometheus
# that does not answer.
DEFAULT_MAX_IN_FLIGHT = 64


class PrometheusProvider:
    """Instant queries against one Prometheus, with a timeout and optional bearer auth.

    At most `max_in_flight` queries are sent at once; the timeout runs from when a query
    is sent, so waiting for a turn is never a TIMEOUT. Queries are evaluated at the time
    the caller planned them for (`at`), so a late one still reads the same evidence.
    """

    name = "prometheus"

    def __init__(
        self,
        address: str,
        *,
        bearer_token: str | None = None,
        timeout: float = 5.0,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.address = address.rstrip("/")
        headers = {"Authorization": f"Bearer {bearer_token}"} if bearer_token else {}
        limits = httpx.Limits(
            max_connections=max_in_flight, max_keepalive_connections=max_in_flight
        )
        self._client = client or httpx.AsyncClient(timeout=timeout, headers=headers, limits=limits)
        self._owns_client = client is None
        self._timeout = timeout
        self._turns = asyncio.Semaphore(max_in_flight)

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def _answer(self, promql: str, at: datetime | None) -> dict[str, Any]:
        """The successful answer's JSON body, or the classified error."""
        url = f"{self.address}/api/v1/query"
        form = {"query": promql, "timeout": f"{self._timeout:g}s"}
        if at is not None:
            # The engine plans ranges ending at `at`: evaluate exactly there.
            form["time"] = f"{at.timestamp():.3f}"
        await self._turns.acquire()
        try:
            resp = await self._client.post(url, data=form)
        except httpx.TimeoutException as err:
            raise MetricQueryError(
                Kind.TIMEOUT, f"Prometheus at {self.address} did not answer in {self._timeout}s"
            ) from err
        except httpx.HTTPError as err:
            raise MetricQueryError(
                Kind.UNREACHABLE,
                f"Prometheus at {self.address} is unreachable: {type(err).__name__}: {err}",
            ) from err
        finally:
            self._turns.release()
        if resp.status_code in (401, 403):
            raise MetricQueryError(
                Kind.UNAUTHORIZED,
                f"Prometheus answered {resp.status_code}: check the bearer token Secret",
            )
        try:
            body: dict[str, Any] = resp.json()
        except ValueError as err:
            raise MetricQueryError(
                Kind.UNREACHABLE,
                f"Prometheus answered {resp.status_code} with a non-JSON "
                "body (is the address a Prometheus?)",
            ) from err
        if resp.status_code == 400 or body.get("errorType") == "bad_data":
            raise MetricQueryError(Kind.BAD_QUERY, str(body.get("error", "bad query")))
        if resp.status_code >= 500:
            raise MetricQueryError(
                Kind.UNREACHABLE, f"Prometheus answered {resp.status_code}: {body.get('error', '')}"
            )
        return body

    async def query(self, promql: str, *, at: datetime | None = None) -> float:
        return parse_instant_vector(await self._answer(promql, at))

    async def query_vector(
        self, promql: str, *, at: datetime | None = None
    ) -> list[tuple[dict[str, str], float]]:
        return parse_vector(await self._answer(promql, at))

    async def query_many(
        self, promqls: Sequence[str], *, at: datetime | None = None
    ) -> list[float | MetricQueryError]:
        async def one(promql: str) -> float | MetricQueryError:
            try:
                return await self.query(promql, at=at)
            except MetricQueryError as err:
                return err

        return list(await asyncio.gather(*(one(q) for q in promqls)))

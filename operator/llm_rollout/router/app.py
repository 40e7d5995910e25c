"""The router's aiohttp application: places each request, proxies it (with one fallback to
stable), and serves /feedback, health and metrics.

The pieces: `http` (headers, bodies, errors), `relay` (streaming the answer back and
analysing it), `feedback` (the endpoint), `series` (which release series exist).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from yarl import URL

from llm_rollout.api.routing_table import ReleaseInfo
from llm_rollout.router.answers import AnswerLog
from llm_rollout.router.assignments import AssignmentTracker
from llm_rollout.router.cohorts import place_request
from llm_rollout.router.config import ServedDeployment
from llm_rollout.router.feedback import MAX_FEEDBACK_BYTES, FeedbackEndpoint, SeenSet
from llm_rollout.router.http import (
    PROXIED_METHODS,
    STALE,
    UNREACHABLE,
    backend_target,
    json_error,
    read_bounded,
    request_id,
    upstream_headers,
)
from llm_rollout.router.metrics import RouterMetrics
from llm_rollout.router.relay import Placed, Relay, RelayLimits
from llm_rollout.router.series import SeriesKeeper
from llm_rollout.router.state import DEPLOYMENT_HEADER, RouterState
from llm_rollout.router.tokens import TokenSigner
from llm_rollout.router.tracing import AnswerTrace, RouterTracing
from llm_rollout.traffic.backends import BackendResolver

log = logging.getLogger("llm_rollout.router")


@dataclass(frozen=True)
class RouterSettings:
    trust_cohort_header: bool = False
    max_body_bytes: int = 1024 * 1024
    connect_timeout: float = 2.0
    upstream_timeout: float = 600.0
    read_timeout: float = 120.0
    capture_bytes: int = 256 * 1024
    tail_bytes: int = 16 * 1024
    # Complete, uncompressed answers up to this size are analysed on the event loop once
    # sent; larger or compressed ones in a worker thread (see relay.Relay).
    inline_analysis_bytes: int = 16 * 1024
    dedupe_capacity: int = 100_000
    max_connections: int = 1024
    check_drain_seconds: float = 5.0
    # How long the series of a release that left the routing table are kept (checked
    # at each routing change): as long as its feedback tokens live by default.
    retired_series_grace: float = 24 * 3600.0


class Router:
    """One router instance: its state, backends, token signer, metrics and HTTP session."""

    def __init__(
        self,
        state: RouterState,
        backends: BackendResolver,
        signer: TokenSigner,
        settings: RouterSettings | None = None,
        metrics: RouterMetrics | None = None,
        clock: Callable[[], float] = time.time,
        tracing: RouterTracing | None = None,
        answer_log: AnswerLog | None = None,
    ) -> None:
        self.state = state
        self.tracing = tracing
        self.backends = backends
        self.settings = s = settings or RouterSettings()
        self.metrics = metrics or RouterMetrics()
        self.assignments = AssignmentTracker()
        self.relay = Relay(
            self.metrics,
            signer,
            RelayLimits(s.capture_bytes, s.tail_bytes, s.inline_analysis_bytes),
            clock,
            answer_log,
        )
        self.feedback = FeedbackEndpoint(
            state, signer, self.metrics, SeenSet(s.dedupe_capacity), clock, tracing
        )
        series = SeriesKeeper(self.metrics, self.assignments, s.retired_series_grace, clock)
        self._session: aiohttp.ClientSession | None = None
        state.subscribe(series.on_routing)

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_FEEDBACK_BYTES)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics_handler)
        app.router.add_post("/feedback", self.feedback.handle)
        app.router.add_route("*", "/{tail:.*}", self.proxy)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        return app

    async def _start(self, _app: web.Application) -> None:
        s = self.settings
        self._session = aiohttp.ClientSession(
            # Idle upstream connections are dropped before common server keep-alive
            # timeouts (uvicorn: 5 s), so a reused connection is rarely a closed one.
            connector=aiohttp.TCPConnector(
                limit=s.max_connections, limit_per_host=0, keepalive_timeout=4.0
            ),
            timeout=aiohttp.ClientTimeout(
                total=s.upstream_timeout, sock_connect=s.connect_timeout, sock_read=s.read_timeout
            ),
            auto_decompress=False,  # pass bytes through untouched
            skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent", "Content-Type"),
            trust_env=False,  # never route through an environment proxy
        )

    async def _stop(self, _app: web.Application) -> None:
        await self.relay.drain(self.settings.check_drain_seconds)
        if self._session is not None:
            await self._session.close()

    async def healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, _request: web.Request) -> web.Response:
        if not self.state.ready:
            return json_error(503, "no routing configuration yet")
        return web.json_response({"status": "ready", "deployments": len(self.state.deployments)})

    async def metrics_handler(self, _request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.metrics.registry),
            headers={"Content-Type": CONTENT_TYPE_LATEST},
        )

    async def proxy(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        rid = request_id(request)
        selected = self.state.select(
            request.headers.get(DEPLOYMENT_HEADER), request.rel_url.raw_path, request.host
        )
        if selected is None:
            return json_error(404, "unknown deployment", requestId=rid)
        served, path = selected
        if self.tracing is None:
            return await self._proxy(request, served, path, rid, started, None)
        trace = self.tracing.start_answer(request.headers, path, served.redactions)
        resp: web.StreamResponse | None = None
        try:
            resp = await self._proxy(request, served, path, rid, started, trace)
            return resp
        finally:
            if not trace.relayed:  # answered here (an error): the relay did not take it
                code = resp.status if resp is not None else 500
                trace.status(code, str(code) if code >= 400 else "")
                trace.end()

    async def _proxy(
        self,
        request: web.Request,
        served: ServedDeployment,
        path: str,
        rid: str,
        started: float,
        trace: AnswerTrace | None,
    ) -> web.StreamResponse:
        if request.method not in PROXIED_METHODS:
            return json_error(405, f"method {request.method} not allowed", requestId=rid)
        if not path.startswith("/"):
            return json_error(400, "bad request path", requestId=rid)
        placement = place_request(
            served,
            request.headers,
            request_id=rid,
            trust_cohort_header=self.settings.trust_cohort_header,
        )
        ns, dep, cohort = served.namespace, served.name, placement.cohort
        if not placement.sticky:
            self.metrics.unsticky.labels(ns, dep).inc()
        release = placement.release
        if release is None:
            return json_error(503, "no release is routed for this deployment", requestId=rid)
        if trace is not None:
            trace.placed(ns, dep, cohort, placement.bucket, placement.sticky, rid)
            trace.release(release, fallback=False)
        if self.assignments.first_placement(ns, dep, cohort, served.routing, placement.user_id):
            self.metrics.assignments.labels(ns, dep, release.id, cohort).inc()

        body = await read_bounded(request, self.settings.max_body_bytes)
        if body is None:
            self.metrics.requests.labels(ns, dep, release.id, cohort, "413").inc()
            return json_error(
                413, f"request body over {self.settings.max_body_bytes} bytes", requestId=rid
            )

        attempts = [release]
        stable = served.routing.stable
        if stable is not None and stable.id != release.id:
            attempts.append(stable)
        upstream: aiohttp.ClientResponse | None = None
        failure = ""
        for i, rel in enumerate(attempts):
            base = self.backends.resolve(ns, dep, rel.id)
            target = backend_target(base, path, request.rel_url.raw_query_string) if base else None
            if target is None:
                kind, failure = "unresolved", f"no backend known for release {rel.id}"
            else:
                try:
                    upstream = await self._send(request, target, body, rid, rel, cohort, trace)
                    release = rel
                    if trace is not None and i > 0:
                        trace.release(rel, fallback=True)
                    break
                except UNREACHABLE as exc:
                    timeout = isinstance(exc, aiohttp.ConnectionTimeoutError)
                    kind = "timeout" if timeout else "connect"
                    failure = f"backend {target.origin()} for release {rel.id} unreachable: {exc}"
                except (aiohttp.ClientError, TimeoutError) as exc:
                    # The backend may have the request: no retry elsewhere.
                    timeout = isinstance(exc, TimeoutError)
                    code = 504 if timeout else 502
                    self.metrics.upstream_errors.labels(
                        ns, dep, rel.id, "timeout" if timeout else "connect"
                    ).inc()
                    self.metrics.requests.labels(ns, dep, rel.id, cohort, str(code)).inc()
                    what = "timed out" if timeout else f"failed: {exc}"
                    return json_error(
                        code,
                        f"backend {target.origin()} for release {rel.id} {what}",
                        requestId=rid,
                        release=rel.id,
                    )
            # A failed attempt counts as a 502 of the release tried, even when stable then
            # serves the request: error-rate gates see a candidate that cannot be reached.
            self.metrics.upstream_errors.labels(ns, dep, rel.id, kind).inc()
            self.metrics.requests.labels(ns, dep, rel.id, cohort, "502").inc()
            log.warning("%s/%s request %s: %s", ns, dep, rid, failure)
            if i + 1 < len(attempts):
                self.metrics.fallbacks.labels(ns, dep, cohort, rel.id).inc()
        if upstream is None:
            return json_error(502, failure, requestId=rid, release=attempts[-1].id)
        placed = Placed(served, release, cohort, rid, trace)
        return await self.relay.relay(request, upstream, placed, body, started)

    async def _send(
        self,
        request: web.Request,
        target: URL,
        body: bytes,
        rid: str,
        rel: ReleaseInfo,
        cohort: str,
        trace: AnswerTrace | None,
    ) -> aiohttp.ClientResponse:
        assert self._session is not None, "router not started"
        headers = upstream_headers(request, rid, rel, cohort)
        if trace is not None:
            trace.inject(headers)
        for retry in (True, False):
            try:
                return await self._session.request(
                    request.method,
                    target,
                    data=body or None,
                    allow_redirects=False,
                    headers=headers,
                )
            except aiohttp.ClientConnectorError:
                raise
            except STALE:
                if not retry:
                    raise
        raise AssertionError("unreachable")

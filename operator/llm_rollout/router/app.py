"""The router's aiohttp application: streaming proxy, /feedback, health and metrics."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError
from yarl import URL

from llm_rollout.api.routing_table import ReleaseInfo
from llm_rollout.heuristics import run_checks
from llm_rollout.router.assignments import AssignmentTracker
from llm_rollout.router.cohorts import COHORT_HEADER, place_request
from llm_rollout.router.config import ServedDeployment
from llm_rollout.router.extract import (
    decode_body,
    extract_input,
    extract_output,
    extract_usage_from_tail,
)
from llm_rollout.router.feedback import (
    MAX_FEEDBACK_BYTES,
    FeedbackRequest,
    SeenSet,
    error_field,
    log_record,
)
from llm_rollout.router.metrics import RouterMetrics
from llm_rollout.router.state import DEPLOYMENT_HEADER, RouterState
from llm_rollout.router.tokens import TokenError, TokenSigner
from llm_rollout.routing.backends import BackendResolver

log = logging.getLogger("llm_rollout.router")
feedback_log = logging.getLogger("llm_rollout.feedback")

RELEASE_HEADER = "x-llm-release"
REQUEST_ID_HEADER = "x-request-id"
TOKEN_HEADER = "x-llm-feedback-token"
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "proxy-connection",
    }
)
# Not forwarded upstream: set by the client library, or by the router itself.
_NOT_UPSTREAM = HOP_BY_HOP | {
    "host",
    "content-length",
    DEPLOYMENT_HEADER,
    COHORT_HEADER,
    RELEASE_HEADER,
    REQUEST_ID_HEADER,
    "expect",
}
_NOT_DOWNSTREAM = HOP_BY_HOP | {RELEASE_HEADER, COHORT_HEADER, REQUEST_ID_HEADER, TOKEN_HEADER}
PROXIED_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Failures before any response byte (the request is retried on stable).
_UNREACHABLE = (
    aiohttp.ClientConnectorError,
    aiohttp.ConnectionTimeoutError,
    aiohttp.ServerDisconnectedError,
    aiohttp.ClientOSError,
)
# ...of which these may be a pooled keep-alive connection the backend had just closed:
# retried once on the same backend first (aiohttp itself only does so for GET & co).
_STALE = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)


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
    # sent; larger or compressed ones in a worker thread (see Router._relay).
    inline_analysis_bytes: int = 16 * 1024
    dedupe_capacity: int = 100_000
    max_connections: int = 1024
    check_drain_seconds: float = 5.0
    # How long the series of a release that left the routing table are kept (checked
    # at each routing change): as long as its feedback tokens live by default.
    retired_series_grace: float = 24 * 3600.0


def json_error(status: int, error: str, **extra: Any) -> web.Response:
    return web.json_response({"error": error, **extra}, status=status)


class _Capture:
    """A bounded copy of a response body: its head, plus its tail once the head is full."""

    def __init__(self, head_limit: int, tail_limit: int) -> None:
        self.head = bytearray()
        self.tail = bytearray()
        self.truncated = False
        self._head_limit = head_limit
        self._tail_limit = tail_limit

    def add(self, chunk: bytes) -> None:
        room = self._head_limit - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.truncated = True
            self.tail += chunk
            if len(self.tail) > self._tail_limit:
                del self.tail[: len(self.tail) - self._tail_limit]


async def read_bounded(request: web.Request, limit: int) -> bytes | None:
    """The whole request body, or None when it is larger than `limit`."""
    if request.content_length is not None and request.content_length > limit:
        return None
    buf = bytearray()
    while chunk := await request.content.readany():
        buf += chunk
        if len(buf) > limit:
            return None
    return bytes(buf)


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
    ) -> None:
        self.state = state
        self.backends = backends
        self.signer = signer
        self.settings = settings or RouterSettings()
        self.metrics = metrics or RouterMetrics()
        self.clock = clock
        self.seen = SeenSet(self.settings.dedupe_capacity)
        self.assignments = AssignmentTracker()
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._served_releases: set[tuple[str, str, str]] = set()
        self._left_at: dict[tuple[str, str, str], float] = {}
        state.subscribe(self._prime)

    def _prime(self, served: list[ServedDeployment]) -> None:
        """Zero-valued series for every live release x cohort (see RouterMetrics.prime),
        and the series of releases no longer served dropped after a grace period."""
        live: set[tuple[str, str, str]] = set()
        for s in served:
            releases = [r.id for r in (s.routing.stable, s.routing.candidate) if r is not None]
            cohorts = {c.name for c in s.cohorts} | {s.default_cohort}
            checks = [c.name for c in s.checks]
            for rel in releases:
                live.add((s.namespace, s.name, rel))
                for cohort in cohorts:
                    self.metrics.prime(s.namespace, s.name, rel, cohort, checks)
        self.assignments.keep({s.key for s in served})
        self._retire_series(live)

    def _retire_series(self, live: set[tuple[str, str, str]]) -> None:
        # A release that left the routing table keeps its series for a while: its last
        # increments must still be scraped, and late feedback (tokens live for hours)
        # still counts. After the grace period its series go.
        now = self.clock()
        for key in live:
            self._left_at.pop(key, None)
        for key in self._served_releases - live:
            self._left_at.setdefault(key, now)
        self._served_releases = set(live) | set(self._left_at)
        expired = {
            k for k, t in self._left_at.items() if now - t >= self.settings.retired_series_grace
        }
        if expired:
            self.metrics.forget_releases(expired)
            for key in expired:
                del self._left_at[key]
            self._served_releases -= expired

    # -- application -----------------------------------------------------------------

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_FEEDBACK_BYTES)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics_handler)
        app.router.add_post("/feedback", self.feedback)
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
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self.settings.check_drain_seconds)
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

    # -- proxy -------------------------------------------------------------------------

    def _upstream_headers(
        self, request: web.Request, rid: str, release: ReleaseInfo, cohort: str
    ) -> CIMultiDict[str]:
        connection_listed = {
            h.strip().lower()
            for v in request.headers.getall("connection", ())
            for h in v.split(",")
        }
        out: CIMultiDict[str] = CIMultiDict(
            (k, v)
            for k, v in request.headers.items()
            if k.lower() not in _NOT_UPSTREAM and k.lower() not in connection_listed
        )
        out[REQUEST_ID_HEADER] = rid
        out[RELEASE_HEADER] = release.id
        out[COHORT_HEADER] = cohort
        peer = request.remote or ""
        prior = request.headers.get("x-forwarded-for")
        out["X-Forwarded-For"] = f"{prior}, {peer}" if prior else peer
        out["X-Forwarded-Host"] = request.host
        out["X-Forwarded-Proto"] = request.scheme
        return out

    def _target(self, base: str, path: str, query: str) -> URL | None:
        """Backend base + request path; None if the result would leave the backend."""
        base_url = URL(base)
        target = URL(base.rstrip("/") + path + (f"?{query}" if query else ""), encoded=True)
        same = (target.scheme, target.host, target.port) == (
            base_url.scheme,
            base_url.host,
            base_url.port,
        )
        return target if same else None

    async def proxy(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        rid = request.headers.get(REQUEST_ID_HEADER, "")
        if not _REQUEST_ID.match(rid):
            rid = uuid.uuid4().hex
        selected = self.state.select(
            request.headers.get(DEPLOYMENT_HEADER), request.rel_url.raw_path, request.host
        )
        if selected is None:
            return json_error(404, "unknown deployment", requestId=rid)
        served, path = selected
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
            target = self._target(base, path, request.rel_url.raw_query_string) if base else None
            if target is None:
                kind, failure = "unresolved", f"no backend known for release {rel.id}"
            else:
                try:
                    upstream = await self._send(request, target, body, rid, rel, cohort)
                    release = rel
                    break
                except _UNREACHABLE as exc:
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
        return await self._relay(request, upstream, served, release, cohort, rid, body, started)

    async def _send(
        self,
        request: web.Request,
        target: URL,
        body: bytes,
        rid: str,
        rel: ReleaseInfo,
        cohort: str,
    ) -> aiohttp.ClientResponse:
        assert self._session is not None, "router not started"
        headers = self._upstream_headers(request, rid, rel, cohort)
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
            except _STALE:
                if not retry:
                    raise
        raise AssertionError("unreachable")

    async def _relay(
        self,
        request: web.Request,
        upstream: aiohttp.ClientResponse,
        served: ServedDeployment,
        release: ReleaseInfo,
        cohort: str,
        rid: str,
        body: bytes,
        started: float,
    ) -> web.StreamResponse:
        ns, dep = served.namespace, served.name
        labels = (ns, dep, release.id, cohort)
        resp = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        for k, v in upstream.headers.items():
            if k.lower() not in _NOT_DOWNSTREAM:
                resp.headers.add(k, v)
        resp.headers[RELEASE_HEADER] = release.id
        resp.headers[COHORT_HEADER] = cohort
        resp.headers[REQUEST_ID_HEADER] = rid
        resp.headers[TOKEN_HEADER] = self.signer.issue(
            ns=ns,
            dep=dep,
            rel=release.id,
            coh=cohort,
            rid=rid,
            user_id=request.headers.get(served.user_id_header),
            now=self.clock(),
        )
        capture = _Capture(self.settings.capture_bytes, self.settings.tail_bytes)
        code, broken = str(upstream.status), ""
        try:
            await resp.prepare(request)
            first = True
            while True:
                try:
                    chunk = await upstream.content.readany()
                except (aiohttp.ClientError, TimeoutError) as exc:
                    broken = "timeout" if isinstance(exc, TimeoutError) else "midstream"
                    log.warning("%s/%s request %s: backend broke mid-stream: %r", ns, dep, rid, exc)
                    break
                if not chunk:
                    break
                if first:
                    self.metrics.ttft.labels(*labels).observe(time.monotonic() - started)
                    first = False
                capture.add(chunk)
                await resp.write(chunk)
            if broken:
                self.metrics.upstream_errors.labels(ns, dep, release.id, broken).inc()
                code = "504" if broken == "timeout" else "502"
                # Close without the final chunk: the client sees a truncated body, not a
                # complete one.
                if request.transport is not None:
                    request.transport.close()
            else:
                await resp.write_eof()
        except (ConnectionError, aiohttp.ClientConnectionResetError):
            code, broken = "499", "client"  # client went away
        finally:
            upstream.close() if broken else upstream.release()
        self.metrics.duration.labels(*labels).observe(time.monotonic() - started)
        self.metrics.requests.labels(*labels, code).inc()
        if not broken and 200 <= upstream.status < 300:
            enc = upstream.headers.get("content-encoding", "")
            ctype = upstream.headers.get("content-type", "")
            job = functools.partial(self._analysis, served, labels, capture, enc, ctype, body)
            # The answer is sent. Small ones are analysed right here: the hop to a worker
            # thread (wake-up, GIL hand-over, call back into the loop) costs more CPU than
            # their analysis (~0.05 ms per KiB of SSE), and the loop would wait for the GIL
            # just as long, since CPython hands it over only after 5 ms.
            if (
                not capture.truncated
                and enc.strip().lower() in ("", "identity")
                and len(capture.head) <= self.settings.inline_analysis_bytes
            ):
                self._run_analysis(job, labels)
            else:
                self._spawn(asyncio.to_thread(self._run_analysis, job, labels))
        return resp

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _analysis(
        self,
        served: ServedDeployment,
        labels: tuple[str, str, str, str],
        capture: _Capture,
        encoding: str,
        content_type: str,
        request_body: bytes,
    ) -> None:
        """Token usage and heuristic checks of a completed answer."""
        usage = None
        if not capture.truncated:
            decoded = decode_body(bytes(capture.head), encoding)
            if decoded is None:
                return
            text, usage = extract_output(decoded, content_type)
            if served.checks and text is not None:
                results = run_checks(
                    served.checks, output=text, input_text=extract_input(request_body)
                )
                for r in results:
                    self.metrics.checks.labels(
                        *labels, r.name, "pass" if r.passed else "fail"
                    ).inc()
        elif encoding.strip().lower() in ("", "identity"):
            usage = extract_usage_from_tail(bytes(capture.tail), content_type)
        if usage is not None:
            self.metrics.tokens.labels(*labels, "input").inc(usage.input_tokens)
            self.metrics.tokens.labels(*labels, "output").inc(usage.output_tokens)

    @staticmethod
    def _run_analysis(job: Callable[[], None], labels: tuple[str, str, str, str]) -> None:
        try:
            job()
        except Exception:
            log.exception("analysing a response of %s/%s failed", labels[0], labels[1])

    # -- feedback ------------------------------------------------------------------------

    def _reject(self, status: int, reason: str, error: str, **extra: Any) -> web.Response:
        self.metrics.feedback_rejected.labels(reason).inc()
        return json_error(status, error, **extra)

    async def feedback(self, request: web.Request) -> web.Response:
        now = self.clock()
        if request.content_type != "application/json":
            return self._reject(
                415, "unsupported_media_type", "Content-Type must be application/json"
            )
        raw = await read_bounded(request, MAX_FEEDBACK_BYTES)
        if raw is None:
            return self._reject(413, "too_large", f"feedback over {MAX_FEEDBACK_BYTES} bytes")
        try:
            data = json.loads(raw)
        except ValueError:
            return self._reject(400, "invalid", "body is not valid JSON", field="")
        try:
            fb = FeedbackRequest.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            return self._reject(400, "invalid", err["msg"], field=error_field(err["loc"]))
        try:
            claims = self.signer.verify(fb.token, now=now)
        except TokenError as exc:
            return self._reject(401, exc.reason, str(exc), field="token")
        seen_key = (f"{claims.ns}/{claims.dep}/{claims.rid}", fb.source)
        if not self.seen.add(seen_key, claims.exp, now):
            return self._reject(
                409, "duplicate", f"feedback from {fb.source} for this request already recorded"
            )
        labels = (claims.ns, claims.dep, claims.rel, claims.coh)
        m = self.metrics
        m.feedback.labels(*labels, fb.source, fb.rating).inc()
        if fb.score is not None:
            m.feedback_score.labels(*labels, fb.source, "overall").observe(fb.score)
        for name, score in fb.criteria.items():
            m.feedback_score.labels(*labels, fb.source, m.criterion(name)).observe(score)
        release = self.state.release(claims.ns, claims.dep, claims.rel)
        feedback_log.info(json.dumps(log_record(claims, fb, release, now), ensure_ascii=False))
        return web.json_response({"status": "accepted", "requestId": claims.rid}, status=202)

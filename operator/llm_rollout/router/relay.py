"""Relaying one backend answer to the client, then analysing it (tokens, heuristic checks)
off the answer's path."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from llm_rollout.api.routing_table import ReleaseInfo
from llm_rollout.heuristics import CheckResult, run_checks
from llm_rollout.router.answers import AnswerLog
from llm_rollout.router.cohorts import COHORT_HEADER
from llm_rollout.router.config import ServedDeployment
from llm_rollout.router.extract import (
    RequestMeta,
    ResponseMeta,
    Usage,
    analyse_input,
    analyse_output,
    decode_body,
    extract_input,
    extract_output,
    extract_usage_from_tail,
    request_meta,
    response_meta,
)
from llm_rollout.router.http import NOT_DOWNSTREAM, RELEASE_HEADER, REQUEST_ID_HEADER, TOKEN_HEADER
from llm_rollout.router.metrics import RouterMetrics
from llm_rollout.router.tokens import TokenSigner
from llm_rollout.router.tracing import TRACE_RESPONSE_HEADER, AnswerTrace

log = logging.getLogger("llm_rollout.router")

Labels = tuple[str, str, str, str]  # namespace, deployment, release, cohort


@dataclass(frozen=True)
class RelayLimits:
    capture_bytes: int
    tail_bytes: int
    # Complete, uncompressed answers up to this size are analysed on the event loop once
    # sent; larger or compressed ones in a worker thread.
    inline_analysis_bytes: int


class BodyCapture:
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


@dataclass(frozen=True)
class Placed:
    """Where one request went: its deployment, release, cohort, request id (and span)."""

    served: ServedDeployment
    release: ReleaseInfo
    cohort: str
    rid: str
    trace: AnswerTrace | None = None

    @property
    def labels(self) -> Labels:
        return (self.served.namespace, self.served.name, self.release.id, self.cohort)


class Relay:
    def __init__(
        self,
        metrics: RouterMetrics,
        signer: TokenSigner,
        limits: RelayLimits,
        clock: Callable[[], float],
        answer_log: AnswerLog | None = None,
    ) -> None:
        self.metrics = metrics
        self.signer = signer
        self.limits = limits
        self.clock = clock
        self.answer_log = answer_log
        self.tasks: set[asyncio.Task[None]] = set()

    async def drain(self, seconds: float) -> None:
        """Wait (bounded) for the analyses still running in worker threads."""
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=seconds)

    def _response(
        self, request: web.Request, upstream: aiohttp.ClientResponse, placed: Placed
    ) -> web.StreamResponse:
        ns, dep, rel, cohort = placed.labels
        resp = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        for k, v in upstream.headers.items():
            if k.lower() not in NOT_DOWNSTREAM:
                resp.headers.add(k, v)
        resp.headers[RELEASE_HEADER] = rel
        resp.headers[COHORT_HEADER] = cohort
        resp.headers[REQUEST_ID_HEADER] = placed.rid
        trc = ""
        if placed.trace is not None:
            trc = placed.trace.ref
            resp.headers[TRACE_RESPONSE_HEADER] = placed.trace.traceparent()
        resp.headers[TOKEN_HEADER] = self.signer.issue(
            ns=ns,
            dep=dep,
            rel=rel,
            coh=cohort,
            rid=placed.rid,
            user_id=request.headers.get(placed.served.user_id_header),
            now=self.clock(),
            trc=trc,
        )
        return resp

    async def relay(
        self,
        request: web.Request,
        upstream: aiohttp.ClientResponse,
        placed: Placed,
        body: bytes,
        started: float,
    ) -> web.StreamResponse:
        labels = placed.labels
        if placed.trace is not None:
            placed.trace.relayed = True
        resp = self._response(request, upstream, placed)
        capture = BodyCapture(self.limits.capture_bytes, self.limits.tail_bytes)
        code, broken = str(upstream.status), ""
        try:
            await resp.prepare(request)
            first = True
            while True:
                try:
                    chunk = await upstream.content.readany()
                except (aiohttp.ClientError, TimeoutError) as exc:
                    broken = "timeout" if isinstance(exc, TimeoutError) else "midstream"
                    log.warning(
                        "%s/%s request %s: backend broke mid-stream: %r",
                        labels[0],
                        labels[1],
                        placed.rid,
                        exc,
                    )
                    break
                if not chunk:
                    break
                if first:
                    self.metrics.ttft.labels(*labels).observe(time.monotonic() - started)
                    first = False
                capture.add(chunk)
                await resp.write(chunk)
            if broken:
                self.metrics.upstream_errors.labels(*labels[:3], broken).inc()
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
        if placed.trace is not None:
            placed.trace.status(int(code), broken)
        if not broken and 200 <= upstream.status < 300:
            self._analyse_later(placed, upstream, capture, body)
        elif placed.trace is not None:
            placed.trace.end()
        return resp

    def _analyse_later(
        self,
        placed: Placed,
        upstream: aiohttp.ClientResponse,
        capture: BodyCapture,
        body: bytes,
    ) -> None:
        enc = upstream.headers.get("content-encoding", "")
        ctype = upstream.headers.get("content-type", "")
        job = functools.partial(self._analysis, placed, capture, enc, ctype, body)
        # The answer is sent. Small ones are analysed right here: the hop to a worker
        # thread (wake-up, GIL hand-over, call back into the loop) costs more CPU than
        # their analysis (~0.05 ms per KiB of SSE), and the loop would wait for the GIL
        # just as long, since CPython hands it over only after 5 ms.
        if (
            not capture.truncated
            and enc.strip().lower() in ("", "identity")
            and len(capture.head) <= self.limits.inline_analysis_bytes
        ):
            self._run_analysis(job, placed)
        else:
            self._spawn(asyncio.to_thread(self._run_analysis, job, placed))

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _analysis(
        self,
        placed: Placed,
        capture: BodyCapture,
        encoding: str,
        content_type: str,
        request_body: bytes,
    ) -> None:
        """Token usage and heuristic checks of a completed answer (and its span's record)."""
        labels, checks, trace = placed.labels, placed.served.checks, placed.trace
        usage: Usage | None = None
        text: str | None = None
        results: list[CheckResult] = []
        request: RequestMeta | None = None
        meta = ResponseMeta()
        if not capture.truncated:
            head = decode_body(bytes(capture.head), encoding)
            if head is None:
                return
            if trace is None:
                text, usage = extract_output(head, content_type)
            else:  # one parse for the span's record too
                text, usage, meta = analyse_output(head, content_type)
            if checks and text is not None:
                input_text, request = (
                    (extract_input(request_body), None)
                    if trace is None
                    else analyse_input(request_body)
                )
                results = run_checks(checks, output=text, input_text=input_text)
                for r in results:
                    self.metrics.checks.labels(
                        *labels, r.name, "pass" if r.passed else "fail"
                    ).inc()
        elif encoding.strip().lower() in ("", "identity"):
            usage = extract_usage_from_tail(bytes(capture.tail), content_type)
            if trace is not None:  # a long stream: its first events carry id and model
                meta = response_meta(bytes(capture.head), content_type)
        if usage is not None:
            self.metrics.tokens.labels(*labels, "input").inc(usage.input_tokens)
            self.metrics.tokens.labels(*labels, "output").inc(usage.output_tokens)
        if trace is not None or self.answer_log is not None:
            if request is None:
                request = request_meta(request_body)
            if trace is not None:
                trace.analysed(request, meta, usage, results, text)
            if self.answer_log is not None:
                self.answer_log.write(
                    placed.served.redactions,
                    namespace=placed.served.namespace,
                    deployment=placed.served.name,
                    release=placed.release,
                    cohort=placed.cohort,
                    request_id=placed.rid,
                    model=request.model,
                    messages=request.messages,
                    output=text,
                    checks=results,
                    trace_ref=trace.ref if trace is not None else "",
                    now=self.clock(),
                )

    @staticmethod
    def _run_analysis(job: Callable[[], None], placed: Placed) -> None:
        try:
            job()
        except Exception:
            ns, dep = placed.labels[:2]
            log.exception("analysing a response of %s/%s failed", ns, dep)
        finally:
            if placed.trace is not None:
                placed.trace.end()

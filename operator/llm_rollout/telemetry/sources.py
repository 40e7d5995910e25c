"""Where spans are read back from: one protocol, one implementation per trace backend."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote

import httpx

from llm_rollout.telemetry import genai


class TraceSourceError(RuntimeError):
    """The backend could not be read; the message says which and why."""


class TraceSource(Protocol):
    def spans(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Spans that started in [start, end), each as
        `{trace_id, span_id, parent_id, name, start_time, attributes, events}`."""
        ...


class PhoenixSource:
    """Arize Phoenix's REST API (`GET /v1/projects/{project}/spans`), self-hosted or the
    test bed's; `headers` for an API key (`Authorization: Bearer ...`)."""

    def __init__(
        self, url: str, project: str, headers: dict[str, str] | None = None, timeout: float = 30
    ) -> None:
        self.url = url.rstrip("/")
        self.project = project
        self.headers = headers or {}
        self.timeout = timeout

    def spans(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        params: dict[str, str] = {
            "start_time": start.isoformat(),
            "end_time": end.isoformat(),
            "limit": "1000",
        }
        url = f"{self.url}/v1/projects/{quote(self.project, safe='')}/spans"
        with httpx.Client(timeout=self.timeout, headers=self.headers, trust_env=False) as client:
            while True:
                try:
                    r = client.get(url, params=params)
                except httpx.HTTPError as exc:
                    raise TraceSourceError(f"phoenix at {self.url} unreachable: {exc}") from exc
                if r.status_code == 404:
                    raise TraceSourceError(f"phoenix at {self.url} has no project {self.project}")
                if r.status_code != 200:
                    raise TraceSourceError(
                        f"phoenix at {self.url} answered {r.status_code}: {r.text[:200]}"
                    )
                body = r.json()
                for s in body.get("data") or []:
                    ctx = s.get("context") or {}
                    out.append(
                        {
                            "trace_id": ctx.get("trace_id"),
                            "span_id": ctx.get("span_id"),
                            "parent_id": s.get("parent_id"),
                            "name": s.get("name", ""),
                            "start_time": s.get("start_time", ""),
                            "attributes": s.get("attributes") or {},
                            "events": s.get("events") or [],
                        }
                    )
                cursor = body.get("next_cursor")
                if not cursor:
                    return out
                params["cursor"] = cursor


# The loggers of the router's answer and feedback logs (router.answers, router.feedback).
ANSWER_LOGGER, FEEDBACK_LOGGER = "llm_rollout.answers", "llm_rollout.feedback"


class LogSource:
    """The router's answer log and feedback log (JSON lines, as the router writes them
    after its log prefix, or bare), read from files: each answer becomes a span of the
    shape above, each feedback a `feedback` span under the answer it rates (joined by
    namespace, deployment and request id).

    Answers are kept when they were logged in [start, end); feedback whenever it came,
    since it follows its answer. Lines of other loggers are skipped; record lines that
    do not parse (a line cut by log rotation) are counted in `unreadable`.
    """

    def __init__(self, paths: list[str]) -> None:
        self.paths = paths
        self.unreadable = 0

    def spans(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for path in self.paths:
            try:
                with open(path, encoding="utf-8", errors="replace") as lines:
                    for line in lines:
                        span = self._span(line, start, end)
                        if span is not None:
                            out.append(span)
            except OSError as exc:
                raise TraceSourceError(f"log {path}: {exc.strerror or exc}") from exc
        return out

    def _span(self, line: str, start: datetime, end: datetime) -> dict[str, Any] | None:
        brace = line.find("{")
        if brace < 0:
            return None
        prefix = line[:brace].rstrip()
        if prefix and not prefix.endswith((ANSWER_LOGGER, FEEDBACK_LOGGER)):
            return None
        try:
            record = json.loads(line[brace:])
        except ValueError:
            self.unreadable += 1
            return None
        if not isinstance(record, dict):
            return None
        if record.get("event") == "answer":
            return _answer_span(record, start, end)
        if record.get("event") == "feedback":
            return _feedback_span(record)
        return None


def _key(record: dict[str, Any]) -> str:
    return f"{record.get('namespace')}/{record.get('deployment')}/{record.get('requestId')}"


def _logged_at(record: dict[str, Any]) -> datetime | None:
    try:
        at = datetime.fromisoformat(str(record.get("time")))
    except ValueError:
        return None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _answer_span(record: dict[str, Any], start: datetime, end: datetime) -> dict[str, Any] | None:
    at = _logged_at(record)
    if at is None or not start <= at < end:
        return None
    release = record.get("release") or {}
    return {
        "trace_id": record.get("traceId") or "",
        "span_id": _key(record),
        "parent_id": None,
        "name": "answer",
        "start_time": at.isoformat(),
        "attributes": {
            genai.NAMESPACE: record.get("namespace"),
            genai.DEPLOYMENT: record.get("deployment"),
            genai.RELEASE_ID: release.get("id", "") if isinstance(release, dict) else "",
            genai.REQUEST_ID: str(record.get("requestId") or ""),
            genai.CHECKS_FAILED: list(record.get("checksFailed") or ()),
            genai.INPUT_MESSAGES: record.get("messages") or [],
        },
        "events": [],
    }


def _feedback_span(record: dict[str, Any]) -> dict[str, Any]:
    source = str(record.get("source") or "user")
    thumbs, score = record.get("thumbs"), record.get("score")
    overall = 1.0 if thumbs == "up" else 0.0 if thumbs == "down" else score
    event = genai.evaluation_attributes(
        f"{source}_feedback",
        score=overall if isinstance(overall, int | float) else None,
        label=str(record.get("rating") or ""),
        explanation=record.get("comment") or None,
        source=source,
    )
    return {
        "trace_id": record.get("traceId") or "",
        "span_id": f"{_key(record)}/feedback/{record.get('time')}",
        "parent_id": _key(record),
        "name": f"feedback {source}",
        "start_time": str(record.get("time") or ""),
        "attributes": {},
        "events": [{"name": genai.EVALUATION_EVENT, "attributes": event}],
    }

"""Where spans are read back from: one protocol, one implementation per trace backend."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol
from urllib.parse import quote

import httpx


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

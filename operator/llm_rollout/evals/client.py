"""A small client of OpenAI-compatible chat completions, with retries on transient errors."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

# Worth another try: the server may answer next time.
RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 10.0


class CallError(Exception):
    """A request that gave no answer. `kind`: unreachable, timeout, http_<status>,
    bad_response (a 2xx that is not a chat completion)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail

    @property
    def retryable(self) -> bool:
        if self.kind in ("unreachable", "timeout"):
            return True
        return self.kind.startswith("http_") and int(self.kind[5:]) in RETRYABLE_STATUS


@dataclass(frozen=True)
class Completion:
    content: str
    seconds: float  # of the successful attempt
    finish_reason: str = ""  # the first choice's, when the server gave one


def release_chat_url(backend: str) -> str:
    """A release serves the OpenAI API at its root: `<backend>/v1/chat/completions`."""
    return f"{backend.rstrip('/')}/v1/chat/completions"


def judge_chat_url(endpoint: str) -> str:
    """A judge endpoint is an API base URL, as for OpenAI clients: `<endpoint>/chat/completions`."""
    return f"{endpoint.rstrip('/')}/chat/completions"


def _content(body: bytes) -> tuple[str, str]:
    """The first choice's text and finish reason ("" when not given)."""
    try:
        data = json.loads(body)
        choice = data["choices"][0]
        content = choice["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise CallError("bad_response", f"not a chat completion: {body[:200]!r}") from None
    if not isinstance(content, str):
        raise CallError("bad_response", "the completion has no text content")
    reason = choice.get("finish_reason") if isinstance(choice, dict) else None
    return content, reason if isinstance(reason, str) else ""


def _error_detail(response: httpx.Response) -> str:
    try:
        message = response.json()["error"]["message"]
        return f"{response.status_code}: {str(message)[:200]}"
    except (ValueError, KeyError, TypeError):
        return f"{response.status_code}: {response.text[:200]}"


def _retry_after(response: httpx.Response | None) -> float | None:
    if response is None:
        return None
    try:
        return min(float(response.headers.get("retry-after", "")), MAX_RETRY_AFTER)
    except ValueError:
        return None


class ChatClient:
    """POSTs chat completions; `attempts` tries for transient errors, backing off."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        timeout: float = 60.0,
        attempts: int = 3,
        backoff: float = 0.5,
    ) -> None:
        self._http = http
        self._timeout = timeout
        self._attempts = max(attempts, 1)
        self._backoff = backoff

    async def _once(self, url: str, body: dict[str, Any], headers: dict[str, str]) -> Completion:
        started = time.monotonic()
        try:
            response = await self._http.post(url, json=body, headers=headers, timeout=self._timeout)
        except httpx.TimeoutException as err:
            raise CallError("timeout", f"no answer from {url} within {self._timeout:g}s") from err
        except httpx.HTTPError as err:
            raise CallError("unreachable", f"{url}: {type(err).__name__}: {err}") from err
        if not 200 <= response.status_code < 300:
            error = CallError(f"http_{response.status_code}", _error_detail(response))
            error.retry_after = _retry_after(response)  # type: ignore[attr-defined]
            raise error
        content, reason = _content(response.content)
        return Completion(content, time.monotonic() - started, reason)

    async def complete(
        self,
        url: str,
        *,
        model: str,
        messages: list[dict[str, str]],
        api_key: str | None = None,
        extra: dict[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Completion:
        """The assistant's answer from the chat-completions `url`; raises CallError once
        retries are used up. `headers` go with it (e.g. a W3C `traceparent`)."""
        headers = {**(headers or {})}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        body: dict[str, Any] = {
            "model": model,
            "messages": messages,
            "stream": False,
            **(extra or {}),
        }
        for attempt in range(self._attempts):
            try:
                return await self._once(url, body, headers)
            except CallError as err:
                if not err.retryable or attempt + 1 >= self._attempts:
                    raise
                wait = getattr(err, "retry_after", None) or self._backoff * 2**attempt
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover


async def wait_until_reachable(url: str, *, within: float, every: float = 0.5) -> bool:
    """Until a TCP connection to `url`'s host and port succeeds; False after `within` seconds.

    In a cluster a release's Service can lag its ready pods by a second or more (the
    EndpointSlice, then kube-proxy's rules): cases sent in that gap find nobody, and
    count as the release giving no answer. A connection is all that is asked here;
    what the release answers is the cases' business."""
    parts = httpx.URL(url)
    host, port = parts.host, parts.port or (443 if parts.scheme == "https" else 80)
    deadline = time.monotonic() + within
    while True:
        left = deadline - time.monotonic()
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), timeout=max(min(2.0, left), 0.1)
            )
        except (OSError, TimeoutError):
            if time.monotonic() + every >= deadline:
                return False
            await asyncio.sleep(every)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True

"""HTTP details of the proxy: which headers cross it, request ids, bounded bodies, JSON errors."""

from __future__ import annotations

import re
import uuid
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from llm_rollout.api.routing_table import ReleaseInfo
from llm_rollout.router.cohorts import COHORT_HEADER
from llm_rollout.router.state import DEPLOYMENT_HEADER

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
NOT_DOWNSTREAM = HOP_BY_HOP | {RELEASE_HEADER, COHORT_HEADER, REQUEST_ID_HEADER, TOKEN_HEADER}
PROXIED_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Failures before any response byte (the request is retried on stable).
UNREACHABLE = (
    aiohttp.ClientConnectorError,
    aiohttp.ConnectionTimeoutError,
    aiohttp.ServerDisconnectedError,
    aiohttp.ClientOSError,
)
# ...of which these may be a pooled keep-alive connection the backend had just closed:
# retried once on the same backend first (aiohttp itself only does so for GET & co).
STALE = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)


def json_error(status: int, error: str, **extra: Any) -> web.Response:
    return web.json_response({"error": error, **extra}, status=status)


def request_id(request: web.Request) -> str:
    """The client's request id when it is a sane one, else a new one."""
    rid = request.headers.get(REQUEST_ID_HEADER, "")
    return rid if _REQUEST_ID.match(rid) else uuid.uuid4().hex


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


def upstream_headers(
    request: web.Request, rid: str, release: ReleaseInfo, cohort: str
) -> CIMultiDict[str]:
    """The client's headers less hop-by-hop and router ones, plus the placement and
    X-Forwarded-* headers."""
    connection_listed = {
        h.strip().lower() for v in request.headers.getall("connection", ()) for h in v.split(",")
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


def backend_target(base: str, path: str, query: str) -> URL | None:
    """Backend base + request path; None if the result would leave the backend."""
    base_url = URL(base)
    target = URL(base.rstrip("/") + path + (f"?{query}" if query else ""), encoded=True)
    same = (target.scheme, target.host, target.port) == (
        base_url.scheme,
        base_url.host,
        base_url.port,
    )
    return target if same else None

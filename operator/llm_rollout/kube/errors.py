"""Typed Kubernetes API errors, raised from one place (KubeClient._call).

Callers catch what they mean (`except Invalid`) instead of testing status codes on
a raw exception. Each is an ApiException, so code that catches those still does.
"""

from __future__ import annotations

import json

from kubernetes.client.exceptions import ApiException


class KubeError(ApiException):
    """An error answer of the API server; `message` is its own words."""

    def __init__(self, status: int, reason: str, body: str) -> None:
        super().__init__(status=status, reason=reason, body=body)
        self.message = _message(body) or reason


class NotFound(KubeError):
    """404: no such object (or no such kind is served)."""


class Conflict(KubeError):
    """409: the object changed since it was read (or exists already): read again."""


class Invalid(KubeError):
    """400 or 422: the API server (schema, admission) rejected the object."""


class Forbidden(KubeError):
    """401 or 403: not allowed (RBAC, credentials)."""


class Unavailable(KubeError):
    """429 or 5xx: try again later (storage initialising, overload, an outage)."""


def error_for(status: int, reason: str, body: str) -> KubeError:
    kind: type[KubeError]
    if status == 404:
        kind = NotFound
    elif status == 409:
        kind = Conflict
    elif status in (400, 422):
        kind = Invalid
    elif status in (401, 403):
        kind = Forbidden
    elif status == 429 or status >= 500:
        kind = Unavailable
    else:
        kind = KubeError
    return kind(status, reason, body)


def _message(body: str) -> str:
    try:
        parsed = json.loads(body or "{}")
    except ValueError:
        return ""
    return str(parsed.get("message", "")) if isinstance(parsed, dict) else ""


__all__ = ["Conflict", "Forbidden", "Invalid", "KubeError", "NotFound", "Unavailable", "error_for"]

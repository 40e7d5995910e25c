"""Kubernetes timestamps (RFC 3339, UTC, second precision: "2026-12-02T04:40:00Z")."""

from __future__ import annotations

from datetime import UTC, datetime


def format_time(value: datetime) -> str:
    """As the API server writes metav1.Time."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str | None) -> datetime | None:
    """A timestamp as Kubernetes writes it (or any ISO 8601 one); None when absent or
    unreadable (a hand-edited annotation, say)."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


__all__ = ["format_time", "parse_time"]

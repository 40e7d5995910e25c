"""Kubernetes timestamps, read and written in one place."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from llm_rollout.kube.times import format_time, parse_time


def test_round_trip_at_second_precision() -> None:
    when = datetime(2026, 12, 2, 4, 40, 7, 999_000, tzinfo=UTC)
    assert format_time(when) == "2026-12-02T04:40:07Z"
    assert parse_time("2026-12-02T04:40:07Z") == when.replace(microsecond=0)


def test_other_offsets_are_written_in_utc() -> None:
    when = datetime(2026, 12, 2, 6, 40, tzinfo=timezone(timedelta(hours=2)))
    assert format_time(when) == "2026-12-02T04:40:00Z"


def test_absent_or_unreadable_is_none_and_naive_is_utc() -> None:
    assert parse_time(None) is None and parse_time("") is None
    assert parse_time("yesterday") is None
    assert parse_time("2026-12-02T04:40:00") == datetime(2026, 12, 2, 4, 40, tzinfo=UTC)

"""Feedback request validation, ratings, duplicate memory, log record (pure)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from llm_rollout.api.routing_table import ReleaseInfo
from llm_rollout.router.feedback import FeedbackRequest, SeenSet, error_field, log_record
from llm_rollout.router.tokens import TokenClaims


def fb(**kw: Any) -> FeedbackRequest:
    return FeedbackRequest.model_validate({"token": "t", **kw})


@pytest.mark.parametrize(
    ("kw", "rating"),
    [
        ({"thumbs": "up"}, "positive"),
        ({"thumbs": "down"}, "negative"),
        ({"score": 5}, "positive"),
        ({"score": 4}, "positive"),
        ({"score": 3}, "neutral"),
        ({"score": 2}, "negative"),
        ({"score": 1}, "negative"),
    ],
)
def test_rating(kw: dict[str, Any], rating: str) -> None:
    assert fb(**kw).rating == rating


def test_defaults_and_limits() -> None:
    f = fb(score=3, criteria={"a": 1, "b_2": 5}, comment="x" * 2000)
    assert f.source == "user" and f.criteria == {"a": 1, "b_2": 5}
    assert fb(thumbs="up", source="expert").source == "expert"


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({}, ""),
        ({"thumbs": "up", "score": 1}, ""),
        ({"score": 5.0}, "score"),
        ({"score": 3, "criteria": {"1a": 3}}, "criteria.1a"),
        ({"score": 3, "criteria": {"a" * 33: 3}}, f"criteria.{'a' * 33}"),
        ({"score": 3, "criteria": {"ok": 0}}, "criteria.ok"),
        ({"score": 3, "comment": 5}, "comment"),
    ],
)
def test_invalid(kw: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        fb(**kw)
    assert error_field(err.value.errors()[0]["loc"]) == field


def test_seen_set_duplicates_expiry_and_capacity() -> None:
    seen = SeenSet(capacity=3)
    assert seen.add(("r1", "user"), expires=100, now=0)
    assert not seen.add(("r1", "user"), expires=100, now=1)
    assert seen.add(("r1", "expert"), expires=100, now=1)
    assert seen.add(("r2", "user"), expires=200, now=2)
    assert seen.add(("r3", "user"), expires=200, now=3)  # evicts the oldest
    assert len(seen) == 3
    assert seen.add(("r1", "user"), expires=100, now=4)  # forgotten: accepted again
    assert seen.add(("r4", "user"), expires=300, now=150)  # expired entries dropped
    assert len(seen) == 3


def test_log_record() -> None:
    claims = TokenClaims("ns", "app", "r1", "beta", "req", "abcd", 99)
    rel = ReleaseInfo(
        id="r1", model="m", model_revision="v", prompt_version="p", knowledge_base="kb"
    )
    rec = log_record(claims, fb(score=2, comment="meh"), rel, now=0)
    assert rec["release"] == {
        "id": "r1",
        "model": "m",
        "modelRevision": "v",
        "promptVersion": "p",
        "knowledgeBase": "kb",
    }
    assert rec["time"] == "1970-01-01T00:00:00Z" and rec["rating"] == "negative"
    assert log_record(claims, fb(thumbs="up"), None, now=0)["release"] == {"id": "r1"}

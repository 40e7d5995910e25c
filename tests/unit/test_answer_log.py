"""The router's answer log and feedback log as a dataset source: records built by the
router's own functions, written as the router's logging writes them, read back by
`LogSource`, and harvested into eval cases (pure, no router running)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from llm_rollout.api.routing_table import ReleaseInfo
from llm_rollout.evals import harvest as h
from llm_rollout.heuristics import CheckResult
from llm_rollout.router.answers import answer_record
from llm_rollout.router.feedback import FeedbackRequest, log_record
from llm_rollout.router.tokens import TokenClaims
from llm_rollout.telemetry.genai import ContentPolicy, compile_redactions
from llm_rollout.telemetry.sources import LogSource, TraceSourceError

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC).timestamp()
RELEASE = ReleaseInfo(id="r2", model="m", model_revision="v3-regressed")
EMAIL = compile_redactions([r"[\w.]+@[\w.]+\w"])


def answer(rid: str, question: str, *, failed: tuple[str, ...] = (), at: float = T0,
           max_chars: int = 8192) -> dict[str, Any]:  # fmt: skip
    return answer_record(
        namespace="team",
        deployment="chat",
        release=RELEASE,
        cohort="experts",
        request_id=rid,
        model="m-small",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": question},
        ],
        output="An answer.",
        checks=[CheckResult("brand", "brand" not in failed)],
        trace_ref="",
        content=ContentPolicy(capture=True, max_chars=max_chars, redactions=EMAIL),
        now=at,
    )  # fmt: skip


def feedback(rid: str, thumbs: str, *, source: str = "user", comment: str | None = None,
             at: float = T0 + 30) -> dict[str, Any]:  # fmt: skip
    claims = TokenClaims("team", "chat", "r2", "experts", rid, "", int(at) + 3600)
    fb = FeedbackRequest(token="t", thumbs=thumbs, source=source, comment=comment)  # type: ignore[arg-type]
    return log_record(claims, fb, RELEASE, at)


def logged(logger: str, record: dict[str, Any]) -> str:
    """A line as the router's logging writes it (see router.main.run)."""
    return f"2026-12-01 12:00:00,000 INFO {logger} {json.dumps(record)}"


def test_an_answer_record_is_redacted_cut_with_a_marker_and_names_failed_checks() -> None:
    rec = answer("q1", "Mail carol@example.org the ACME list", failed=("brand",), max_chars=20)
    assert rec["event"] == "answer" and rec["requestId"] == "q1"
    assert rec["release"]["modelRevision"] == "v3-regressed"
    assert rec["checks"] == {"brand": "fail"} and rec["checksFailed"] == ["brand"]
    text = json.dumps(rec["messages"])
    assert "carol@example.org" not in text
    # 20 characters for the whole prompt: the system turn fits, the user turn is cut.
    assert rec["messages"][0]["parts"][0]["content"] == "Be brief."
    assert "[truncated" in rec["messages"][1]["parts"][0]["content"]
    assert rec["traceId"] is None and rec["spanId"] is None


def test_the_logs_become_cases_joined_by_request_id_other_lines_skipped(tmp_path: Path) -> None:
    log = tmp_path / "router.log"
    bad = ("brand",)
    lines = [
        "2026-12-01 11:59:59,000 INFO llm_rollout.router router listening on 127.0.0.1:8080",
        logged("llm_rollout.answers", answer("q1", "Price of ACME Widget for bob@example.org?")),
        logged("llm_rollout.answers", answer("q2", "Opening hours?")),  # fine, no feedback
        logged("llm_rollout.answers", answer("q3", "Translate the ACME invoice", failed=bad)),
        # the same prompt again: one case
        logged("llm_rollout.answers", answer("q4", "Translate the ACME invoice", failed=bad)),
        # logged before the range: not read
        logged("llm_rollout.answers", answer("q5", "Old question", at=T0 - 7200)),
        json.dumps(feedback("q1", "down", source="expert", comment="Widget costs 12 EUR")),  # bare
        logged("llm_rollout.feedback", feedback("q2", "up")),
        logged("llm_rollout.feedback", feedback("q5", "down")),
        '2026-12-01 12:00:01,000 INFO llm_rollout.feedback {"event": "feedback", "requ',  # cut
        '2026-12-01 12:00:01,000 INFO aiohttp.access {"not": "ours"}',
    ]
    log.write_text("\n".join(lines) + "\n")
    source = LogSource([str(log)])
    spans = source.spans(
        datetime.fromtimestamp(T0 - 3600, UTC), datetime.fromtimestamp(T0 + 3600, UTC)
    )
    assert source.unreadable == 1
    want = h.HarvestFilter("team", "chat", "r2", reference_from_expert_comment=True)
    result = h.harvest(spans, want)
    assert (result.answers, result.bad, result.duplicates) == (4, 3, 1)
    by_question = {c["messages"][-1]["content"]: c for c in result.cases}
    assert set(by_question) == {
        "Price of ACME Widget for [REDACTED]?",
        "Translate the ACME invoice",
    }
    priced = by_question["Price of ACME Widget for [REDACTED]?"]
    assert priced["tags"] == ["production", "release:r2", "negative-feedback"]
    assert priced["reference"] == "Widget costs 12 EUR"
    assert priced["messages"][0] == {"role": "system", "content": "Be brief."}
    assert by_question["Translate the ACME invoice"]["tags"][-1] == "failed-check:brand"
    # Another deployment or release: nothing.
    assert h.harvest(spans, h.HarvestFilter("team", "other")).answers == 0
    assert h.harvest(spans, h.HarvestFilter("team", "chat", "r1")).answers == 0


def test_a_log_that_cannot_be_read_is_named_in_the_error(tmp_path: Path) -> None:
    with pytest.raises(TraceSourceError, match=r"log .*missing\.log: No such file"):
        LogSource([str(tmp_path / "missing.log")]).spans(
            datetime.fromtimestamp(0, UTC), datetime.now(UTC)
        )

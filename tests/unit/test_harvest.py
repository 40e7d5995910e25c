"""Bad production answers become eval cases: negative feedback or failed checks, content
required, de-duplicated, redacted, optionally with an expert's reference (pure)."""

from __future__ import annotations

import json
from typing import Any

from llm_rollout.cli import dataset as cli_dataset
from llm_rollout.evals import harvest as h
from llm_rollout.evals.dataset import parse_dataset
from llm_rollout.telemetry.genai import ContentPolicy, compile_redactions


def answer(span_id: str, question: str | None, *, failed: tuple[str, ...] = (), release: str = "r2",
           at: str = "2026-01-01T00:00:00") -> dict[str, Any]:  # fmt: skip
    attrs: dict[str, Any] = {
        "llm_rollout.namespace": "team",
        "llm_rollout.deployment": "chat",
        "llm_rollout.release.id": release,
        "llm_rollout.request_id": "req-" + span_id,
        "llm_rollout.checks.failed": list(failed),
    }
    if question is not None:
        attrs["gen_ai.input.messages"] = ContentPolicy(capture=True).shape([("user", question)])
    return {"trace_id": "t" + span_id, "span_id": span_id, "parent_id": None,
            "name": "chat m", "start_time": at, "attributes": attrs, "events": []}  # fmt: skip


def feedback(parent: str, label: str, source: str = "user", comment: str = "") -> dict[str, Any]:
    attrs = {"gen_ai.evaluation.name": f"{source}_feedback", "gen_ai.evaluation.score.label": label,
             "llm_rollout.evaluation.source": source}  # fmt: skip
    if comment:
        attrs["gen_ai.evaluation.explanation"] = comment
    return {"trace_id": "x", "span_id": "f" + parent, "parent_id": parent,
            "name": f"feedback {source}", "start_time": "2026-01-01T00:00:01",
            "attributes": {"llm_rollout.namespace": "team", "llm_rollout.deployment": "chat"},
            "events": [{"name": "gen_ai.evaluation.result", "attributes": attrs}]}  # fmt: skip


WANT = h.HarvestFilter("team", "chat")


def test_negative_feedback_and_failed_checks_make_cases_the_rest_not() -> None:
    spans = [
        answer("a1", "Translate ACME invoice"),
        feedback("a1", "negative"),
        answer("a2", "Price of ACME Pro?", failed=("brand",)),
        answer("a3", "All good?"),
        feedback("a3", "positive"),
        answer("a4", "Other deployment", failed=("brand",)) | {"attributes": {}},
    ]
    result = h.harvest(spans, WANT)
    assert (result.answers, result.bad, len(result.cases)) == (3, 2, 2)
    by_q = {c["messages"][0]["content"]: c for c in result.cases}
    assert by_q["Translate ACME invoice"]["tags"] == [
        "production",
        "release:r2",
        "negative-feedback",
    ]
    assert by_q["Price of ACME Pro?"]["tags"][-1] == "failed-check:brand"
    # What the eval runner reads, and the ConfigMap a suite names.
    cases = parse_dataset(result.jsonl())
    assert [c.input_text for c in cases] == ["Translate ACME invoice", "Price of ACME Pro?"]
    cm = h.configmap("chat-prod-bad", "team", "cases.jsonl", result.jsonl())
    assert cm["data"]["cases.jsonl"] == result.jsonl() and cm["metadata"]["namespace"] == "team"


def test_filters_dedupe_redaction_reference_and_missing_content() -> None:
    spans = [
        answer("a1", "mail bob@example.com", failed=("brand",)),
        answer("a2", "mail bob@example.com", failed=("brand",), at="2026-01-01T00:01:00"),
        answer("a3", None, failed=("brand",)),  # content capture was off
        answer("a4", "old release", failed=("brand",), release="r1"),
        answer("a5", "wrong glossary"),
        feedback("a5", "negative", "expert", comment="Use 'Rechnung', mail carol@example.org"),
    ]
    want = h.HarvestFilter("team", "chat", release="r2", reference_from_expert_comment=True,
                           redactions=compile_redactions([r"\S+@\S+"]))  # fmt: skip
    result = h.harvest(spans, want)
    assert (result.answers, result.bad, result.duplicates, result.without_content) == (4, 4, 1, 1)
    assert [c["messages"][0]["content"] for c in result.cases] == [
        "mail [REDACTED]",
        "wrong glossary",
    ]
    assert result.cases[1]["reference"] == "Use 'Rechnung', mail [REDACTED]"
    assert "reference" not in result.cases[0]
    only = h.harvest(spans, h.HarvestFilter("team", "chat", reasons=frozenset({h.REASON_FEEDBACK})))
    assert [c["messages"][0]["content"] for c in only.cases] == ["wrong glossary"]
    assert json.loads(only.jsonl().splitlines()[0])["id"].startswith("prod-")


def test_only_answers_are_harvested_not_the_analyses_or_eval_cases_beside_them() -> None:
    """The operator's analysis spans and the eval runner's case spans carry the same
    namespace, deployment, release and `checks.failed` keys as answers; no request id."""
    analysis = answer("o1", None, failed=("quality",))
    analysis["name"] = "analysis experts"
    del analysis["attributes"]["llm_rollout.request_id"]
    case = answer("e1", "Translate ACME invoice", failed=("brand",))
    case["name"] = "eval case prod-1"
    del case["attributes"]["llm_rollout.request_id"]
    result = h.harvest([analysis, case, answer("a1", "Price?", failed=("brand",))], WANT)
    assert (result.answers, result.bad, result.without_content) == (1, 1, 0)
    assert [c["messages"][0]["content"] for c in result.cases] == ["Price?"]


def test_the_cli_spells_the_reasons_as_the_harvest_does() -> None:
    assert (cli_dataset.REASON_FEEDBACK, cli_dataset.REASON_CHECK) == (
        h.REASON_FEEDBACK,
        h.REASON_CHECK,
    )

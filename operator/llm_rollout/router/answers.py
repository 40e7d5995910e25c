"""The answer log (`--answer-log`): one JSON line per completed answer, with its prompt
and its output, on logger `llm_rollout.answers`.

Next to the feedback log (`llm_rollout.feedback`, one line per rating, joined to its
answer by request id), it is a second source for `llm-rollout dataset`, for teams that
ship logs rather than traces. It holds message content, so it is off unless switched
on; content is redacted by the deployment's `spec.tracing.redact` and cut to a size
limit with a marker, as in traces.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from typing import Any

from llm_rollout.api.routing_table import ReleaseInfo
from llm_rollout.heuristics import CheckResult
from llm_rollout.telemetry import genai
from llm_rollout.telemetry.genai import ContentPolicy, Redactions

answer_log = logging.getLogger("llm_rollout.answers")


def answer_record(
    *,
    namespace: str,
    deployment: str,
    release: ReleaseInfo,
    cohort: str,
    request_id: str,
    model: str,
    messages: Sequence[object],
    output: str | None,
    checks: Sequence[CheckResult],
    trace_ref: str,
    content: ContentPolicy,
    now: float,
) -> dict[str, Any]:
    """The one structured log line written per completed answer (pure)."""
    return {
        "event": "answer",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "requestId": request_id,
        "namespace": namespace,
        "deployment": deployment,
        "release": release.model_dump(mode="json", by_alias=True, exclude_none=True),
        "cohort": cohort,
        "model": model or None,
        "checks": {r.name: "pass" if r.passed else "fail" for r in checks},
        "checksFailed": [r.name for r in checks if not r.passed],
        # The GenAI conventions' message shape, as in gen_ai.input.messages.
        "messages": content.shaped(genai.input_messages(messages)),
        "output": (
            content.shaped([("assistant", output)])[0]["parts"][0]["content"]
            if output is not None
            else None
        ),
        "traceId": trace_ref[:32] or None,
        "spanId": trace_ref[32:] or None,
    }


class AnswerLog:
    """Writes answer records with the content policy (size limit) the router was given."""

    def __init__(self, content: ContentPolicy) -> None:
        self.content = content

    def write(self, redactions: Redactions, **fields: Any) -> None:
        policy = self.content.with_redactions(redactions) if redactions else self.content
        record = answer_record(content=policy, **fields)
        answer_log.info(json.dumps(record, ensure_ascii=False))

"""The OpenTelemetry GenAI semantic conventions as this project uses them: attribute names,
message content (opt-in, redacted, bounded) and `gen_ai.evaluation.result` events.

Conventions: https://opentelemetry.io/docs/specs/semconv/gen-ai/ (spans, events). Our own
attributes live under `llm_rollout.*`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# The conventions' switch for recording message content.
CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"

OPERATION = "gen_ai.operation.name"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_ID = "gen_ai.response.id"
FINISH_REASONS = "gen_ai.response.finish_reasons"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
CONVERSATION_ID = "gen_ai.conversation.id"
ERROR_TYPE = "error.type"

EVALUATION_EVENT = "gen_ai.evaluation.result"
EVALUATION_NAME = "gen_ai.evaluation.name"
EVALUATION_SCORE = "gen_ai.evaluation.score.value"
EVALUATION_LABEL = "gen_ai.evaluation.score.label"
EVALUATION_EXPLANATION = "gen_ai.evaluation.explanation"

# Ours.
NAMESPACE = "llm_rollout.namespace"
DEPLOYMENT = "llm_rollout.deployment"
RELEASE_ID = "llm_rollout.release.id"
RELEASE_MODEL_REVISION = "llm_rollout.release.model_revision"
RELEASE_PROMPT_VERSION = "llm_rollout.release.prompt_version"
RELEASE_KNOWLEDGE_BASE = "llm_rollout.release.knowledge_base"
COHORT = "llm_rollout.cohort"
BUCKET = "llm_rollout.bucket"
STICKY = "llm_rollout.sticky"
REQUEST_ID = "llm_rollout.request_id"
FALLBACK = "llm_rollout.fallback"
CHECKS_FAILED = "llm_rollout.checks.failed"
FEEDBACK_SOURCE = "llm_rollout.feedback.source"
EVALUATION_SOURCE = "llm_rollout.evaluation.source"

# The request paths of the OpenAI-style API and their operation names.
_OPERATIONS = (
    ("/chat/completions", "chat"),
    ("/completions", "text_completion"),
    ("/embeddings", "embeddings"),
    ("/responses", "chat"),
)

REDACTED = "[REDACTED]"
# An answer whose finish reason the server did not say (an output message needs one).
UNKNOWN_FINISH_REASON = "unknown"
Redactions = tuple[re.Pattern[str], ...]
# What a deployment whose own patterns do not compile gets: nothing recorded.
REDACT_ALL = re.compile(r"(?s).+")


def truthy(value: str | None) -> bool:
    """An OTEL_* boolean environment variable's value."""
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def operation_of(path: str) -> str:
    """`gen_ai.operation.name` of a request path ("" when it is not a known operation)."""
    for suffix, name in _OPERATIONS:
        if path.rstrip("/").endswith(suffix):
            return name
    return ""


def evaluation_attributes(
    name: str, *, score: float | None, label: str, explanation: str | None, source: str
) -> dict[str, Any]:
    """The attributes of one `gen_ai.evaluation.result` event."""
    attrs: dict[str, Any] = {EVALUATION_NAME: name, EVALUATION_LABEL: label}
    if score is not None:
        attrs[EVALUATION_SCORE] = float(score)
    if explanation:
        attrs[EVALUATION_EXPLANATION] = explanation
    attrs[EVALUATION_SOURCE] = source
    return attrs


def compile_redactions(patterns: Iterable[str]) -> Redactions:
    """Compiled redaction patterns; ValueError names the first that does not compile."""
    out = []
    for p in patterns:
        try:
            out.append(re.compile(p))
        except re.error as exc:
            raise ValueError(
                f"redaction pattern {p!r} is not a valid regular expression: {exc}"
            ) from exc
    return tuple(out)


def redact(text: str, patterns: Sequence[re.Pattern[str]]) -> str:
    for p in patterns:
        text = p.sub(REDACTED, text)
    return text


@dataclass(frozen=True)
class ContentPolicy:
    """Whether and how message content is recorded: off unless switched on, each text part
    redacted, then the whole cut to `max_chars` with a marker saying how much went."""

    capture: bool = False
    max_chars: int = 8192
    redactions: Redactions = ()

    def with_redactions(self, redactions: Redactions) -> ContentPolicy:
        return ContentPolicy(self.capture, self.max_chars, self.redactions + redactions)

    def shape(self, messages: Sequence[tuple[str, str]]) -> str:
        """JSON of `[{role, parts: [{type: text, content}]}]` for (role, text) pairs.

        The JSON stays valid when cut: texts are shortened, never the JSON itself.
        """
        return json.dumps(self.shaped(messages), ensure_ascii=False)

    def output(self, text: str, finish_reason: str) -> str:
        """JSON of the conventions' output messages: one assistant message with its
        `finish_reason` (required by the conventions' schema; trace viewers drop output
        messages without one)."""
        [message] = self.shaped([("assistant", text)])
        message["finish_reason"] = finish_reason or UNKNOWN_FINISH_REASON
        return json.dumps([message], ensure_ascii=False)

    def shaped(self, messages: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
        """`[{role, parts: [{type: text, content}]}]`, redacted and cut to `max_chars`."""
        budget = self.max_chars
        out = []
        for role, text in messages:
            text = redact(text, self.redactions)
            if len(text) > budget:
                text = f"{text[:budget]}…[truncated {len(text) - budget} chars]"
                budget = 0
            else:
                budget -= len(text)
            out.append({"role": role, "parts": [{"type": "text", "content": text}]})
        return out


def text_of_content(content: object) -> str:
    """The text of a chat message's `content` (a string or a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p["text"] for p in content if isinstance(p, Mapping) and isinstance(p.get("text"), str)
        )
    return ""


def input_messages(messages: Iterable[object]) -> list[tuple[str, str]]:
    """(role, text) of the chat messages of a request."""
    out = []
    for m in messages:
        if isinstance(m, Mapping):
            out.append((str(m.get("role") or "user"), text_of_content(m.get("content"))))
        elif isinstance(m, str):
            out.append(("user", m))
    return out

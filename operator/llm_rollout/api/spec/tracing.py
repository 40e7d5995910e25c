"""spec.tracing: what the router's traces of this deployment may record."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from llm_rollout.api.camel import CamelModel
from llm_rollout.api.spec.common import MAX_LIST
from llm_rollout.telemetry.genai import compile_redactions

RedactionPattern = Annotated[str, Field(min_length=1, max_length=512)]


class TracingSpec(CamelModel):
    """Message content is recorded only when the router's operator switches it on
    (OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT); these rules then apply."""

    redact: list[RedactionPattern] = Field(
        default_factory=list,
        max_length=MAX_LIST,
        description="Regular expressions (Python syntax) whose matches in recorded message "
        "content and feedback comments are replaced by [REDACTED], e.g. e-mail addresses "
        "or API keys.",
    )

    @field_validator("redact")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        compile_redactions(patterns)
        return patterns

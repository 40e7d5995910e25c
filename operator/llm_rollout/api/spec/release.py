"""spec.release: what users get (model, prompt, knowledge base, pod template)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from llm_rollout.api.camel import CamelModel
from llm_rollout.api.routing_table import DEFAULT_SERVICE_PORT


class ModelRef(CamelModel):
    """The model the release serves."""

    name: str = Field(min_length=1, max_length=253, description="Model name, e.g. llama-3.1-8b.")
    revision: str = Field(
        default="", max_length=128, description="Model revision (tag, digest or version)."
    )


class ConfigMapKeyRef(CamelModel):
    """A key of a ConfigMap in the LLMDeployment's namespace."""

    name: str = Field(min_length=1, max_length=253, description="ConfigMap name.")
    key: str = Field(min_length=1, max_length=253, description="Key within the ConfigMap.")


class PromptRef(CamelModel):
    """The prompt template the release uses."""

    version: str = Field(default="", max_length=128, description="Prompt template version.")
    config_map_ref: ConfigMapKeyRef | None = Field(
        default=None, description="ConfigMap key holding the prompt template, if any."
    )


class KnowledgeBase(CamelModel):
    """The knowledge base (retrieval corpus) the release reads."""

    snapshot: str = Field(
        default="", max_length=253, description="Knowledge-base snapshot id or version."
    )
    created_at: datetime | None = Field(
        default=None,
        description="When the snapshot was built (RFC 3339): the stable release's "
        "knowledge-base age is measured from it (spec.freshness).",
        json_schema_extra={"maxLength": 64},  # bounds the API server's CEL cost estimate
    )
    source_revision: str = Field(
        default="",
        max_length=253,
        description="Revision of the sources the snapshot was built from (e.g. a commit).",
    )


class ReleaseSpec(CamelModel):
    """What users get. Any change here except `replicas` makes a new release."""

    model: ModelRef = Field(description="Model served by the release.")
    prompt: PromptRef = Field(default_factory=PromptRef, description="Prompt template.")
    knowledge_base: KnowledgeBase = Field(
        default_factory=KnowledgeBase, description="Knowledge-base snapshot."
    )
    template: dict[str, Any] = Field(
        default_factory=dict,
        description="Pod template (a core/v1 PodTemplateSpec) of the release's pods; the "
        "container serving the application listens on `port`.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    replicas: int = Field(default=1, ge=1, le=1000, description="Pods per release.")
    port: int = Field(
        default=DEFAULT_SERVICE_PORT, ge=1, le=65535, description="Port the application serves on."
    )

"""Release identity: the id a release is known by, from its content."""

from __future__ import annotations

import hashlib
import json

from llm_rollout.api.routing_table import ReleaseInfo
from llm_rollout.api.spec.deployment import LLMDeploymentSpec
from llm_rollout.api.spec.release import ReleaseSpec


def _release_of(spec: LLMDeploymentSpec | ReleaseSpec) -> ReleaseSpec:
    return spec.release if isinstance(spec, LLMDeploymentSpec) else spec


def release_id(spec: LLMDeploymentSpec | ReleaseSpec) -> str:
    """First 10 hex digits of sha256 of the canonical JSON of the release (bar replicas).

    Defaults are left out, so spelling out a default, or a new optional field in a
    later API version, does not change the id.
    """
    data = _release_of(spec).model_dump(
        mode="json", by_alias=True, exclude={"replicas"}, exclude_defaults=True, exclude_none=True
    )
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:10]


def release_info(spec: LLMDeploymentSpec | ReleaseSpec) -> ReleaseInfo:
    release = _release_of(spec)
    return ReleaseInfo(
        id=release_id(release),
        model=release.model.name,
        model_revision=release.model.revision,
        prompt_version=release.prompt.version,
        knowledge_base=release.knowledge_base.snapshot,
        knowledge_base_created=release.knowledge_base.created_at,
    )

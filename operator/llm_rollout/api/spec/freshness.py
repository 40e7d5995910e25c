"""spec.freshness: how old the stable release's knowledge base may get."""

from __future__ import annotations

from pydantic import Field

from llm_rollout.api.camel import CamelModel
from llm_rollout.api.durations import parse_duration
from llm_rollout.api.spec.common import Duration


class FreshnessSpec(CamelModel):
    """Cut-off dates matter: a knowledge base older than this is reported stale
    (condition KnowledgeFresh=False, the LLMRolloutKnowledgeBaseStale alert)."""

    knowledge_base_max_age: Duration | None = Field(
        default=None,
        description="Maximum age of the stable release's knowledge-base snapshot "
        "(release.knowledgeBase.createdAt), e.g. 720h. Unset: not checked.",
    )

    @property
    def knowledge_base_max_age_seconds(self) -> float | None:
        age = self.knowledge_base_max_age
        return parse_duration(age) if age else None

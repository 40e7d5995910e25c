"""The routing table: which release each cohort's users reach.

The operator writes it to `status.routing`; the built-in router reads it from
there, the mesh providers render it as HTTPRoute / VirtualService objects.

A user is hashed, together with the deployment, into one of 100 buckets. In a
cohort with `candidatePercent: p`, buckets `0 .. p-1` reach the candidate and the
rest reach stable, so raising `p` only ever moves users from stable to
candidate: a user never flips back and forth within a rollout.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from pydantic import Field

from llm_rollout.api.camel import CamelModel

# spec.release.port's default: the port of each release's Service.
DEFAULT_SERVICE_PORT = 8080

BUCKETS = 100


class ReleaseInfo(CamelModel):
    """What a release is made of, stamped on feedback logs and metrics."""

    id: str = Field(description="Release id: hash of the fields that change what users get.")
    model: str = Field(default="", description="Model name.")
    model_revision: str = Field(default="", description="Model revision.")
    prompt_version: str = Field(default="", description="Prompt template version.")
    knowledge_base: str = Field(default="", description="Knowledge-base snapshot.")
    knowledge_base_created: datetime | None = Field(
        default=None, description="When the knowledge-base snapshot was built."
    )


class CohortRoute(CamelModel):
    """The share of one cohort's buckets that reaches the candidate."""

    cohort: str = Field(description="Cohort name.")
    candidate_percent: int = Field(
        default=0, ge=0, le=100, description="Percent of the cohort's buckets on the candidate."
    )


class RoutingTable(CamelModel):
    """Cohort -> release assignment for one LLMDeployment."""

    stable: ReleaseInfo | None = Field(default=None, description="Release serving by default.")
    candidate: ReleaseInfo | None = Field(
        default=None, description="Release being rolled out; None: everyone on stable."
    )
    routes: list[CohortRoute] = Field(default_factory=list, description="Per-cohort shares.")

    def candidate_percent(self, cohort: str) -> int:
        if self.candidate is None:
            return 0
        for route in self.routes:
            if route.cohort == cohort:
                return route.candidate_percent
        return 0

    def release_for(self, cohort: str, bucket: int) -> ReleaseInfo | None:
        """The release a user in `bucket` of `cohort` reaches (None: nothing to serve)."""
        if self.candidate is not None and bucket < self.candidate_percent(cohort):
            return self.candidate
        return self.stable if self.stable is not None else self.candidate


def bucket_of(namespace: str, name: str, user_id: str) -> int:
    """Stable bucket 0..99 of a user within one deployment (same on every router replica)."""
    digest = hashlib.sha256(f"{namespace}/{name}/{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS

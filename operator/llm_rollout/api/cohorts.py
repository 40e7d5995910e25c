"""Cohorts: named groups of users and how a request is matched to one.

Shared by the API (spec.cohorts), the engine (which cohorts a stage exposes)
and the router (which cohort a request belongs to).
"""

from __future__ import annotations

from pydantic import Field

from llm_rollout.api.camel import CamelModel

# Defaults of spec.defaultCohort and spec.userIdHeader, shared with the router (which
# reads the raw object) and the mesh providers.
DEFAULT_COHORT = "everyone"
DEFAULT_USER_ID_HEADER = "x-user-id"


class CohortMatch(CamelModel):
    """How a request is recognised as belonging to a cohort.

    A request matches when any listed header carries one of its values, or when
    its user id is in `users`. Header names are case-insensitive.
    """

    headers: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Header name -> accepted values; any one value of any header matches.",
    )
    users: list[str] = Field(
        default_factory=list,
        description="User ids (as read from the user id header) that belong to this cohort.",
    )


class Cohort(CamelModel):
    """A named group of users exposed to the candidate together."""

    name: str = Field(
        min_length=1,
        max_length=63,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="Cohort name, referenced by stages.",
    )
    match: CohortMatch = Field(
        default_factory=CohortMatch,
        description="Matchers; a cohort with none only receives requests as the default cohort.",
    )

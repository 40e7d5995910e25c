"""Which cohort a request belongs to, and which release it reaches. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from multidict import MultiMapping

from llm_rollout.api.routing_table import ReleaseInfo, bucket_of
from llm_rollout.router.config import ServedDeployment

COHORT_HEADER = "x-llm-cohort"


def resolve_cohort(
    served: ServedDeployment,
    headers: MultiMapping[str],
    user_id: str | None,
    *,
    trust_cohort_header: bool = False,
) -> str:
    """The cohort of a request.

    1. `x-llm-cohort`, only when the router trusts it and it names a defined cohort;
    2. the first cohort (in spec order) with a matching header value or user id;
    3. the default cohort.

    `headers` must look names up case-insensitively (aiohttp's CIMultiDictProxy).
    """
    if trust_cohort_header:
        explicit = headers.get(COHORT_HEADER)
        if explicit and served.has_cohort(explicit):
            return explicit
    for cohort in served.compiled:
        for header, accepted in cohort.headers:
            if any(v in accepted for v in headers.getall(header, ())):
                return cohort.name
        if user_id and user_id in cohort.users:
            return cohort.name
    return served.default_cohort


@dataclass(frozen=True, slots=True)
class Placement:
    cohort: str
    bucket: int
    sticky: bool
    release: ReleaseInfo | None
    user_id: str | None = None


def place_request(
    served: ServedDeployment,
    headers: MultiMapping[str],
    *,
    request_id: str,
    trust_cohort_header: bool = False,
) -> Placement:
    """Cohort, bucket and release of a request (release None: nothing to serve)."""
    user_id = headers.get(served.user_id_header) or None
    cohort = resolve_cohort(served, headers, user_id, trust_cohort_header=trust_cohort_header)
    key = user_id if user_id is not None else f"\0rid:{request_id}"
    bucket = bucket_of(served.namespace, served.name, key)
    release = served.routing.release_for(cohort, bucket)
    return Placement(cohort, bucket, user_id is not None, release, user_id)

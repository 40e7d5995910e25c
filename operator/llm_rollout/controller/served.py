"""Wait, at start-up, until the API server serves the operator's resources.

Right after the CRDs are created, the API server answers lists of the new resources
with HTTP 404 or 429 ("storage is (re)initializing") for a few seconds. kopf would
retry each watch with an ERROR line per attempt; waiting here turns that into one
INFO line before watching starts.
"""

from __future__ import annotations

import asyncio
import logging
import time

from llm_rollout import GROUP, PLURAL, VERSION
from llm_rollout.api.evalrun import EVAL_RUN_PLURAL
from llm_rollout.kube.client import KubeAPI
from llm_rollout.kube.errors import KubeError, NotFound, Unavailable

log = logging.getLogger("llm_rollout.operator")

PLURALS = (PLURAL, EVAL_RUN_PLURAL)


def served_paths(namespaces: tuple[str, ...]) -> list[str]:
    """The list URLs kopf will watch: per namespace, or cluster-wide."""
    base = f"/apis/{GROUP}/{VERSION}"
    if not namespaces:
        return [f"{base}/{plural}" for plural in PLURALS]
    return [f"{base}/namespaces/{ns}/{plural}" for ns in namespaces for plural in PLURALS]


async def wait_until_served(
    kube: KubeAPI, namespaces: tuple[str, ...], *, patience: float = 120.0, period: float = 0.5
) -> float:
    """Seconds waited. Only "not served yet" answers (404, 429, 5xx) wait; anything
    else (a 403 from RBAC, say) is left for the watches to report in their own words."""
    started = time.monotonic()
    deadline = started + patience
    announced = False
    for path in served_paths(namespaces):
        while True:
            try:
                await kube.get_path(path, query=[("limit", "1")])
                break
            except (NotFound, Unavailable) as err:  # not served yet
                if not announced:
                    log.info(
                        "waiting for the API server to serve %s (HTTP %s %s)",
                        path,
                        err.status,
                        err.reason,
                    )
                    announced = True
                if time.monotonic() > deadline:
                    log.warning(
                        "the API server still does not serve %s after %.0f s; starting anyway",
                        path,
                        patience,
                    )
                    return time.monotonic() - started
                await asyncio.sleep(period)
            except KubeError:
                break
    waited = time.monotonic() - started
    if announced:
        log.info("the API server serves the operator's resources (waited %.1f s)", waited)
    return waited


__all__ = ["served_paths", "wait_until_served"]

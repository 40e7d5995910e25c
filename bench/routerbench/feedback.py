"""Feedback load: valid signed tokens POSTed to the router's /feedback, and what the
router counted."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import aiohttp

from routerbench.load import Fire, Samples, client_session, open_loop
from routerbench.settings import CANDIDATE, COHORT, NAME, NS, STABLE, USERS, Plan


def feedback_bodies(key: bytes, count: int, run_id: str) -> list[bytes]:
    """`count` valid feedback bodies, each for its own request id (no duplicates)."""
    from llm_rollout.router.tokens import TokenSigner

    signer = TokenSigner([key])
    now = time.time()
    bodies = []
    for i in range(count):
        token = signer.issue(
            ns=NS,
            dep=NAME,
            rel=(STABLE, CANDIDATE)[i % 2],
            coh=COHORT,
            rid=f"fb-{run_id}-{i}",
            user_id=f"user-{i % USERS}",
            now=now,
        )
        body: dict[str, Any] = {"token": token}
        if i % 3 == 0:
            body["thumbs"] = ("up", "down")[i % 2]
        else:
            body |= {
                "score": 1 + i % 5,
                "source": ("user", "expert")[i % 2],
                "criteria": {"accuracy": 1 + i % 5},
            }
        bodies.append(json.dumps(body).encode())
    return bodies


def feedback_fire(url: str, bodies: list[bytes], statuses: list[int]) -> Fire:
    async def fire(session: aiohttp.ClientSession, i: int, at: float, out: Samples) -> None:
        try:
            async with session.post(
                url + "/feedback", data=bodies[i], headers={"Content-Type": "application/json"}
            ) as r:
                await r.read()
                statuses.append(r.status)
                if not 200 <= r.status < 300:
                    out.errors.append(f"status {r.status}")
                    return
        except (aiohttp.ClientError, TimeoutError) as exc:
            out.errors.append(repr(exc))
            return
        out.latency.append(time.monotonic() - at)

    return fire


async def feedback_load(
    url: str,
    plan: Plan,
    bodies: list[bytes],
    statuses: list[int],
) -> Samples:
    async with client_session() as session:
        return await open_loop(
            session, plan.feedback_rate, plan.feedback_seconds, feedback_fire(url, bodies, statuses)
        )


def feedback_counted(metrics_url: str) -> float:
    """Sum of every `llm_feedback_total` series the router exports."""
    with urllib.request.urlopen(metrics_url, timeout=5) as r:
        text = r.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("llm_feedback_total{")
    )

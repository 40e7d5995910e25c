"""Simulated users: chat requests through the router, thumbs and expert ratings back.

Three cohorts (experts, beta users, everyone) send translation requests to the
router with their user id and group header, read which release answered, and
post feedback with the token they got. Whether an answer is good is judged with
the same heuristic checks the router runs (brand names preserved, glossary terms
used), and users rate good answers better: that is what makes a regressed
release visible in the feedback metrics. Everything is seeded: a run is
reproducible up to timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from llm_rollout.heuristics import parse_checks, run_checks

SENTENCES = [
    "Acme Cloud stores your invoice in the billing dashboard.",
    "Open the Globex Analytics report and export the invoice.",
    "Your Acme Cloud account has a new security key.",
    "The billing dashboard shows every invoice for Globex Analytics.",
    "Reset the security key in your Acme Cloud account settings.",
    "Share the Globex Analytics dashboard with your team.",
    "Download the invoice from Acme Cloud before the end of the month.",
    "Globex Analytics sends a weekly report to the billing team.",
]


@dataclass(frozen=True)
class CohortLoad:
    """One simulated cohort: how many users, how often they ask, how they rate."""

    name: str
    group: str | None  # value of the x-user-group header, None for everyone else
    users: int
    rate: float  # requests per second, whole cohort
    source: str  # "expert" (1-5 scores with criteria) or "user" (thumbs)
    feedback_share: float  # share of answers that get feedback


DEFAULT_LOAD = (
    CohortLoad("experts", "expert", users=5, rate=3.0, source="expert", feedback_share=1.0),
    CohortLoad("beta", "beta", users=40, rate=8.0, source="user", feedback_share=0.8),
    # Enough thumbs that the Compare gate of the last stage (candidate vs stable) can
    # decide within a compressed step: about 14 ratings/s reach stable at 10%.
    CohortLoad("everyone", None, users=200, rate=20.0, source="user", feedback_share=0.8),
)


@dataclass
class SimulatorRecord:
    """What the simulator did, to compare with what the router and Prometheus saw."""

    requests: Counter[tuple[str, str]] = field(default_factory=Counter)  # (cohort, release)
    failed_requests: int = 0
    feedback_sent: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    feedback_accepted: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    feedback_rejected: Counter[int] = field(default_factory=Counter)  # by HTTP status
    users_by_release: dict[str, set[str]] = field(default_factory=dict)  # release -> users
    cohort_of_user: dict[str, str] = field(default_factory=dict)

    def releases_seen_by(self, cohort: str) -> set[str]:
        return {r for (c, r) in self.requests if c == cohort}


class Simulator:
    def __init__(
        self,
        router_url: str,
        namespace: str,
        name: str,
        checks: list[Any],
        *,
        load: tuple[CohortLoad, ...] = DEFAULT_LOAD,
        seed: int = 7,
    ) -> None:
        self.base = f"{router_url.rstrip('/')}/d/{namespace}/{name}"
        self.feedback_url = f"{router_url.rstrip('/')}/feedback"
        self.checks = parse_checks(checks)
        self.load = load
        self.rng = random.Random(seed)
        self.record = SimulatorRecord()

    def quality(self, question: str, answer: str) -> float:
        """Share of the checks the answer passes (1.0: every brand and term kept)."""
        results = run_checks(self.checks, output=answer, input_text=question)
        return sum(r.passed for r in results) / len(results) if results else 1.0

    def _rating(self, cohort: CohortLoad, quality: float) -> dict[str, Any]:
        rng = self.rng
        if cohort.source == "expert":
            # Experts notice every broken brand or term.
            base = 5 if quality >= 1.0 else 4 if quality >= 0.75 else 2
            score = max(1, min(5, base - (1 if rng.random() < 0.2 else 0)))
            terminology = 5 if quality >= 1.0 else 2
            return {"score": score, "criteria": {"accuracy": score, "terminology": terminology}}
        liked = rng.random() < (0.88 if quality >= 1.0 else 0.35)
        return {"thumbs": "up" if liked else "down"}

    async def _one(self, session: aiohttp.ClientSession, cohort: CohortLoad) -> None:
        user = f"{cohort.name}-{self.rng.randrange(cohort.users)}"
        question = self.rng.choice(SENTENCES)
        headers = {"x-user-id": user, "content-type": "application/json"}
        if cohort.group:
            headers["x-user-group"] = cohort.group
        body = {
            "model": "assistant",
            "messages": [
                {"role": "system", "content": "Translate the user's text to German."},
                {"role": "user", "content": question},
            ],
        }
        try:
            async with session.post(
                f"{self.base}/v1/chat/completions", json=body, headers=headers
            ) as resp:
                payload = await resp.json(content_type=None)
                release = resp.headers.get("x-llm-release", "")
                token = resp.headers.get("x-llm-feedback-token", "")
                if resp.status != 200:
                    self.record.failed_requests += 1
                    return
        except (aiohttp.ClientError, TimeoutError, ValueError):
            self.record.failed_requests += 1
            return
        rec = self.record
        rec.requests[(cohort.name, release)] += 1
        rec.users_by_release.setdefault(release, set()).add(user)
        rec.cohort_of_user[user] = cohort.name
        answer = payload["choices"][0]["message"]["content"]
        if not token or self.rng.random() >= cohort.feedback_share:
            return
        rating = self._rating(cohort, self.quality(question, answer))
        feedback = {"token": token, "source": cohort.source, **rating}
        key = (release, cohort.name, cohort.source, _rating_label(rating))
        rec.feedback_sent[key] += 1
        try:
            async with session.post(self.feedback_url, json=feedback) as resp:
                if resp.status in (200, 202):
                    rec.feedback_accepted[key] += 1
                else:
                    rec.feedback_rejected[resp.status] += 1
        except (aiohttp.ClientError, TimeoutError):
            rec.feedback_rejected[0] += 1

    async def _cohort_loop(
        self, session: aiohttp.ClientSession, cohort: CohortLoad, stop: asyncio.Event
    ) -> None:
        pending: set[asyncio.Task[None]] = set()
        interval = 1.0 / cohort.rate
        while not stop.is_set():
            task = asyncio.create_task(self._one(session, cohort))
            pending.add(task)
            task.add_done_callback(pending.discard)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    async def run(self, stop: asyncio.Event) -> SimulatorRecord:
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await asyncio.gather(*(self._cohort_loop(session, c, stop) for c in self.load))
        return self.record


def _rating_label(rating: dict[str, Any]) -> str:
    """The router's rating label: thumbs up / 4-5 positive, 3 neutral, else negative."""
    if "thumbs" in rating:
        return "positive" if rating["thumbs"] == "up" else "negative"
    score = int(rating["score"])
    return "positive" if score >= 4 else "neutral" if score == 3 else "negative"

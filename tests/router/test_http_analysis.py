"""Answers are analysed (checks, token usage) the same way on both paths: small complete
answers on the event loop once sent, large ones in a worker thread."""

from __future__ import annotations

import aiohttp
import pytest

from llm_rollout.router import RouterSettings
from tests.router.conftest import NAME, NS, deployment, sample

CHAT = "/v1/chat/completions"
BODY = {"messages": [{"role": "user", "content": "hi"}]}
CHECKS = [
    {"name": "short", "type": "maxLength", "max": 100},
    {"name": "greets", "type": "regex", "pattern": "^Hello"},
]
LABELS = {"namespace": NS, "deployment": NAME, "release": "stable1", "cohort": "all"}


@pytest.mark.parametrize(
    ("answer", "inline_bytes"),
    [
        ("Hello there.", 16 * 1024),  # small: analysed on the event loop
        ("Hello there.", 0),  # forced to the worker thread
        ("Hello " + "word " * 4000, 16 * 1024),  # ~20 KiB: worker thread
    ],
    ids=["small-inline", "small-thread", "large-thread"],
)
async def test_checks_and_usage_are_counted_on_either_path(
    model_servers, make_router, answer: str, inline_bytes: int
) -> None:
    stable = await model_servers("stable1", answer=answer)
    router = await make_router(
        [deployment(candidate=None, checks=CHECKS)],
        {f"{NS}/{NAME}/stable1": stable.url},
        settings=RouterSettings(inline_analysis_bytes=inline_bytes),
    )
    async with aiohttp.ClientSession() as s:
        for stream in (False, True):
            async with s.post(
                router.url + CHAT, json={**BODY, "stream": stream}, headers={"x-user-id": "u1"}
            ) as r:
                assert r.status == 200
                await r.read()
    await router.settle()
    text = await router.scrape()

    def count(check: str, result: str) -> float:
        return sample(text, "llm_heuristic_checks_total", check=check, result=result, **LABELS)

    short = len(answer) <= 100
    assert count("short", "pass" if short else "fail") == 2
    assert count("short", "fail" if short else "pass") == 0
    assert count("greets", "pass") == 2
    assert sample(text, "llm_router_tokens_total", direction="input", **LABELS) == 14
    assert sample(text, "llm_router_tokens_total", direction="output", **LABELS) == 10

"""POST /feedback over real HTTP: accepted, counted, logged once; every rejection path."""

from __future__ import annotations

import json
import logging
from typing import Any

import aiohttp
import pytest

from llm_rollout.router.feedback import MAX_FEEDBACK_BYTES
from llm_rollout.router.tokens import TokenSigner
from tests.router.conftest import KEY, NAME, NS, RunningRouter, deployment, sample

CHAT = "/v1/chat/completions"
BODY = {"messages": [{"role": "user", "content": "hi"}]}


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def ask(router: RunningRouter, user: str = "u1", **headers: str) -> dict[str, str]:
    async with (
        aiohttp.ClientSession() as s,
        s.post(router.url + CHAT, json=BODY, headers={"x-user-id": user, **headers}) as r,
    ):
        await r.read()
        return {k.lower(): v for k, v in r.headers.items()}


async def feedback(router: RunningRouter, body: Any, **kw: Any) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as s:
        if "data" in kw:
            req = s.post(router.url + "/feedback", **kw)
        else:
            req = s.post(router.url + "/feedback", json=body)
        async with req as r:
            text = await r.text()
            return r.status, json.loads(text) if text.startswith("{") else {"text": text}


@pytest.fixture
async def setup(model_servers, make_router) -> tuple[RunningRouter, Clock]:
    stable, cand = await model_servers("stable1"), await model_servers("cand2")
    clock = Clock()
    router = await make_router(
        [deployment(routes={"experts": 100})],
        {f"{NS}/{NAME}/stable1": stable.url, f"{NS}/{NAME}/cand2": cand.url},
        clock=clock,
    )
    return router, clock


async def test_accepted_feedback_is_counted_and_logged_once(setup, caplog) -> None:
    router, _ = setup
    h = await ask(router, "alice")  # an expert: reaches the candidate
    token = h["x-llm-feedback-token"]
    caplog.set_level(logging.INFO, logger="llm_rollout.feedback")
    code, data = await feedback(
        router,
        {
            "token": token,
            "score": 4,
            "source": "expert",
            "criteria": {"accuracy": 5, "tone": 2},
            "comment": "good, a bit curt",
        },
    )
    assert code == 202 and data["requestId"] == h["x-request-id"]
    code, _ = await feedback(router, {"token": token, "thumbs": "down"})  # user, same request
    assert code == 202
    records = [r for r in caplog.records if r.name == "llm_rollout.feedback"]
    assert len(records) == 2
    line = json.loads(records[0].getMessage())
    assert line["requestId"] == h["x-request-id"]
    assert (line["namespace"], line["deployment"], line["cohort"]) == (NS, NAME, "experts")
    assert line["release"] == {
        "id": "cand2",
        "model": "m-small",
        "modelRevision": "r2",
        "promptVersion": "p2",
        "knowledgeBase": "kb-2025",
    }
    assert line["score"] == 4 and line["criteria"] == {"accuracy": 5, "tone": 2}
    assert line["comment"] == "good, a bit curt" and line["source"] == "expert"
    assert line["userHash"] and "alice" not in records[0].getMessage()
    assert line["time"].endswith("Z")

    text = await router.scrape()
    labels = {"namespace": NS, "deployment": NAME, "release": "cand2", "cohort": "experts"}
    assert sample(text, "llm_feedback_total", source="expert", rating="positive", **labels) == 1
    assert sample(text, "llm_feedback_total", source="user", rating="negative", **labels) == 1
    assert (
        sample(text, "llm_feedback_score_count", source="expert", criterion="overall", **labels)
        == 1
    )
    assert sample(text, "llm_feedback_score_sum", criterion="tone", **labels) == 2
    assert sample(text, "llm_feedback_score_bucket", criterion="accuracy", le="4.0") == 0
    assert sample(text, "llm_feedback_score_bucket", criterion="accuracy", le="5.0") == 1
    # thumbs are not scores
    assert sample(text, "llm_feedback_score_count", source="user") == 0


async def test_duplicate_is_409(setup) -> None:
    router, _ = setup
    token = (await ask(router))["x-llm-feedback-token"]
    assert (await feedback(router, {"token": token, "score": 3}))[0] == 202
    code, data = await feedback(router, {"token": token, "score": 5})
    assert code == 409 and "already" in data["error"]
    assert (await feedback(router, {"token": token, "score": 5, "source": "expert"}))[0] == 202
    text = await router.scrape()
    assert sample(text, "llm_feedback_total") == 2
    assert sample(text, "llm_router_feedback_rejected_total", reason="duplicate") == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"thumbs": "up"}, "token"),
        ({"token": "T"}, ""),  # neither thumbs nor score
        ({"token": "T", "thumbs": "up", "score": 4}, ""),
        ({"token": "T", "thumbs": "sideways"}, "thumbs"),
        ({"token": "T", "score": 6}, "score"),
        ({"token": "T", "score": 0}, "score"),
        ({"token": "T", "score": "5"}, "score"),
        ({"token": "T", "score": True}, "score"),
        ({"token": "T", "score": 4.5}, "score"),
        ({"token": "T", "score": 4, "source": "bot"}, "source"),
        ({"token": "T", "score": 4, "criteria": {"Accuracy": 4}}, "criteria.Accuracy"),
        ({"token": "T", "score": 4, "criteria": {"accuracy": 9}}, "criteria.accuracy"),
        ({"token": "T", "score": 4, "criteria": {f"c{i}": 3 for i in range(11)}}, "criteria"),
        ({"token": "T", "score": 4, "comment": "x" * 2001}, "comment"),
        ({"token": "T", "score": 4, "extra": 1}, "extra"),
        ([1, 2], ""),
    ],
)
async def test_invalid_feedback_is_400_with_field(setup, body: Any, field: str) -> None:
    router, _ = setup
    token = (await ask(router))["x-llm-feedback-token"]
    if isinstance(body, dict) and body.get("token") == "T":
        body["token"] = token
    code, data = await feedback(router, body)
    assert code == 400, data
    assert data["field"] == field and data["error"]
    assert sample(await router.scrape(), "llm_feedback_total") == 0


async def test_bad_tokens_are_401_and_not_counted(setup) -> None:
    router, clock = setup
    h = await ask(router)
    token = h["x-llm-feedback-token"]
    payload, sig = token.split(".")
    forged = TokenSigner([b"another-key-of-32-bytes-xxxxxxxxx"]).issue(
        ns=NS, dep=NAME, rel="cand2", coh="experts", rid="r1", user_id="u1", now=clock.now
    )
    other = TokenSigner([KEY]).issue(
        ns=NS, dep=NAME, rel="cand2", coh="experts", rid="r2", user_id="u1", now=clock.now
    )
    tampered = other.split(".")[0][:-2] + "AA" + "." + other.split(".")[1]
    for bad in (forged, tampered, payload + "." + sig[:-3], "garbage", payload, "a.b.c"):
        code, data = await feedback(router, {"token": bad, "score": 5})
        assert code == 401 and data["field"] == "token", bad
    clock.now += 24 * 3600 + 1
    code, data = await feedback(router, {"token": token, "score": 5})
    assert code == 401 and "expired" in data["error"]
    text = await router.scrape()
    assert sample(text, "llm_feedback_total") == 0
    assert sample(text, "llm_router_feedback_rejected_total", reason="expired") == 1
    assert sample(text, "llm_router_feedback_rejected_total", reason="bad_signature") >= 2


async def test_oversize_and_non_json(setup) -> None:
    router, _ = setup
    token = (await ask(router))["x-llm-feedback-token"]
    big = json.dumps({"token": token, "score": 4, "comment": "x" * MAX_FEEDBACK_BYTES})
    code, _ = await feedback(router, None, data=big, headers={"Content-Type": "application/json"})
    assert code == 413
    code, _ = await feedback(router, None, data="score=4", headers={"Content-Type": "text/plain"})
    assert code == 415
    code, data = await feedback(
        router, None, data="{not json", headers={"Content-Type": "application/json"}
    )
    assert code == 400 and data["field"] == ""
    text = await router.scrape()
    for reason in ("too_large", "unsupported_media_type", "invalid"):
        assert sample(text, "llm_router_feedback_rejected_total", reason=reason) == 1
    assert sample(text, "llm_feedback_total") == 0

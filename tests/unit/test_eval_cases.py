"""The simulated servers and the eval runner's network side, over real loopback HTTP
(in-process aiohttp servers; nothing mocked): the toy translator, the model server's
OpenAI API (JSON, SSE, usage), the judge's scoring and failure modes, the chat
client's retries, and `evaluate` end to end."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from llm_rollout.api.spec import EvalSuite
from llm_rollout.evals.aggregate import aggregate
from llm_rollout.evals.cases import Target, evaluate
from llm_rollout.evals.client import CallError, ChatClient, judge_chat_url, release_chat_url
from llm_rollout.evals.dataset import parse_dataset
from llm_rollout.evals.judge import InvalidScore, JudgeScore
from llm_rollout.sim.judge import Behavior, Judge, behavior_from_model, score
from llm_rollout.sim.model_server import ModelServer
from llm_rollout.sim.toylang import BRANDS, GLOSSARY, SAMPLE_SENTENCES, affected, translate

SENTENCES = SAMPLE_SENTENCES[:6]


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def servers() -> AsyncIterator[dict[str, str]]:
    runners = []
    urls = {}
    for name, app in {
        "good": ModelServer("good").app(),
        "regressed": ModelServer("regressed").app(),
        "judge": Judge(Behavior()).app(),
        "keyed": Judge(Behavior(), api_key="k3y").app(),
    }.items():
        runner, urls[name] = await serve(app)
        runners.append(runner)
    yield urls
    for runner in runners:
        await runner.cleanup()


# --- the toy translator ------------------------------------------------------------------


def test_good_translations_keep_brands_and_use_the_glossary() -> None:
    for sentence in SENTENCES:
        out = translate(f"Translate into German: {sentence}")
        assert out == translate(sentence), "the instruction is not translated"
        assert all(b in out for b in BRANDS if b in sentence)
        assert all(
            GLOSSARY[t] in out
            for t in ("invoice", "report", "account")
            if f" {t} " in f" {sentence.lower()} "
        )
    assert translate("Acme Cloud stores your invoice in the billing dashboard.") == (
        "Acme Cloud speichert Ihr Rechnung in die Abrechnungsübersicht."
    )


def test_regressed_translations_lose_brands_and_terms() -> None:
    out = translate("Open the Globex Analytics report and export the invoice.", regressed=True)
    assert "Globex Analytics" not in out and "Bericht" not in out and "Rechnung" not in out
    share = sum(affected(f"sentence {i}", 0.5) for i in range(1000)) / 1000
    assert 0.45 < share < 0.55
    assert affected("x", 1.0) and not affected("x", 0.0)


# --- the model server --------------------------------------------------------------------


async def test_model_server_answers_like_openai(servers: dict[str, str]) -> None:
    messages = [{"role": "user", "content": "Translate into German: Open the invoice."}]
    async with httpx.AsyncClient() as http:
        plain = (
            await http.post(
                release_chat_url(servers["good"]), json={"model": "x", "messages": messages}
            )
        ).json()
        assert plain["object"] == "chat.completion" and plain["model"] == "x"
        assert plain["choices"][0]["message"] == {
            "role": "assistant",
            "content": "Öffnen die Rechnung.",
        }
        assert plain["usage"]["total_tokens"] == (
            plain["usage"]["prompt_tokens"] + plain["usage"]["completion_tokens"]
        )
        body = {"messages": messages, "stream": True, "stream_options": {"include_usage": True}}
        streamed = await http.post(release_chat_url(servers["good"]), json=body)
        assert streamed.headers["content-type"].startswith("text/event-stream")
        events = [e.removeprefix("data: ") for e in streamed.text.split("\n\n") if e]
        assert events[-1] == "[DONE]"
        chunks = [json.loads(e) for e in events[:-1]]
        text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
        assert text == "Öffnen die Rechnung."
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == plain["usage"]
        bad = await http.post(release_chat_url(servers["good"]), json={"messages": []})
        assert bad.status_code == 400 and "messages" in bad.json()["error"]["message"]
        assert (await http.get(f"{servers['good']}/healthz")).json() == {"status": "ok"}


# --- the judge ---------------------------------------------------------------------------


def prompt(rubric: str, question: str, answer: str, reference: str = "(none)") -> str:
    return (
        f"[Rubric]\n{rubric}\n\n[Scale]\nAn integer from 1 (worst) to 5 (best).\n\n"
        f"[Question]\n{question}\n\n[Reference answer]\n{reference}\n\n[Answer]\n{answer}"
    )


def test_judge_scores_terminology_and_accuracy() -> None:
    q = "Translate into German: Open the Globex Analytics report and export the invoice."
    good, bad = translate(q), translate(q, regressed=True)
    terms = "Are glossary terms and brand names kept?"
    assert score(prompt(terms, q, good))[:2] == (5, "terminology kept")
    value, reason, _ = score(prompt(terms, q, bad))
    assert value == 1 and "brand 'Globex Analytics'" in reason and "'invoice'" in reason
    assert score(prompt("Is it accurate?", q, good, reference=good))[0] == 5
    assert score(prompt("Is it accurate?", q, good))[0] == 5  # no reference: its own
    assert score(prompt("Is it accurate?", q, bad, reference=good))[0] in (2, 3, 4)
    assert score("no sections at all")[0] == 1


def test_judge_behaviors_from_the_model_name() -> None:
    default = Behavior()
    assert behavior_from_model("sim-judge", default) == default
    assert behavior_from_model("sim-judge+garbage", default).kind == "garbage"
    assert behavior_from_model("j+status-429+sleep-20", default) == Behavior("normal", 429, 20)


# --- the chat client -----------------------------------------------------------------------


async def test_client_retries_transient_errors_only() -> None:
    calls: list[int] = []
    statuses = [503, 429, 200, 401]

    async def flaky(request: web.Request) -> web.Response:
        status = statuses[len(calls) % len(statuses)]
        calls.append(status)
        if status != 200:
            return web.json_response({"error": {"message": f"nope {status}"}}, status=status)
        return web.json_response({"choices": [{"message": {"content": "ok"}}]})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", flaky)
    runner, url = await serve(app)
    try:
        async with httpx.AsyncClient() as http:
            client = ChatClient(http, backoff=0.01)
            answer = await client.complete(release_chat_url(url), model="m", messages=[])
            assert answer.content == "ok" and calls == [503, 429, 200]
            with pytest.raises(CallError) as err:  # 401: not retried
                await client.complete(release_chat_url(url), model="m", messages=[])
            assert err.value.kind == "http_401" and "nope 401" in err.value.detail
            assert calls[-1] == 401 and len(calls) == 4
            with pytest.raises(CallError) as err:
                await ChatClient(http, backoff=0.01, attempts=2).complete(
                    "http://127.0.0.1:9/v1/chat/completions", model="m", messages=[]
                )
            assert err.value.kind == "unreachable"
    finally:
        await runner.cleanup()


async def test_client_rejects_answers_that_are_not_chat_completions() -> None:
    async def odd(request: web.Request) -> web.Response:
        return web.Response(text="<html>proxy error page</html>")

    app = web.Application()
    app.router.add_post("/chat/completions", odd)
    runner, url = await serve(app)
    try:
        async with httpx.AsyncClient() as http:
            with pytest.raises(CallError) as err:
                await ChatClient(http).complete(judge_chat_url(url), model="m", messages=[])
        assert err.value.kind == "bad_response"
    finally:
        await runner.cleanup()


# --- evaluate, end to end ------------------------------------------------------------------


def suite_for(servers: dict[str, str], **overrides: Any) -> EvalSuite:
    def judge(name: str, rubric: str, **extra: Any) -> dict[str, Any]:
        return {
            "name": name,
            "endpoint": f"{servers['judge']}/v1",
            "model": "sim-judge",
            "rubric": rubric,
            **extra,
        }

    return EvalSuite.model_validate(
        {
            "name": "translation",
            "stages": ["experts"],
            "dataset": {"configMapRef": {"name": "d", "key": "k"}},
            "checks": [
                {"name": "brands", "type": "preservedNames", "names": list(BRANDS)},
                {
                    "name": "glossary",
                    "type": "glossary",
                    "glossary": {"invoice": "Rechnung", "report": "Bericht"},
                },
            ],
            "judges": [
                judge("accuracy", "Is it accurate?"),
                judge("terminology", "Are glossary terms and brand names kept?"),
                {
                    "name": "keyed",
                    "endpoint": f"{servers['keyed']}/v1",
                    "model": "j",
                    "rubric": "Is it accurate?",
                    "weight": 0,
                },
            ],
            **overrides,
        }
    )


DATASET = "\n".join(
    json.dumps(
        {
            "id": f"c{i}",
            "reference": translate(s),
            "messages": [{"role": "user", "content": f"Translate into German: {s}"}],
        }
    )
    for i, s in enumerate(SENTENCES)
)


async def test_evaluate_good_and_regressed_releases(servers: dict[str, str]) -> None:
    suite = suite_for(servers, concurrency=3)
    cases = parse_dataset(DATASET)
    progress: list[tuple[int, int]] = []
    async with httpx.AsyncClient() as http:
        outcomes = await evaluate(
            suite,
            cases,
            [Target("good", servers["good"]), Target("bad", servers["regressed"])],
            client=ChatClient(http, backoff=0.01),
            model="acme-translate",
            api_keys={"keyed": "k3y"},
            progress=lambda done, total: progress.append((done, total)),
        )
    assert [o.case.id for o in outcomes["good"]] == [c.id for c in cases]
    assert progress[-1] == (12, 12) and len(progress) == 12
    good = aggregate(suite, "good", outcomes["good"])
    assert good.composite == 1.0 and good.cases.passed == 6
    keyed = good.criterion("keyed")
    assert keyed is not None and keyed.count == 6, "the API key reached the judge"
    bad = aggregate(suite, "bad", outcomes["bad"])
    terminology = bad.criterion("terminology")
    assert terminology is not None and terminology.score is not None
    assert terminology.score < 0.8 and bad.composite is not None and bad.composite < 0.8
    assert bad.cases.fail == sum(affected(s, 0.5) for s in SENTENCES)
    answer = outcomes["bad"][1]
    assert answer.answer == translate(SENTENCES[1], regressed=True)
    assert isinstance(answer.scores["terminology"], JudgeScore)


async def test_evaluate_counts_a_judge_without_its_key_as_invalid(servers: dict[str, str]) -> None:
    suite = suite_for(servers)
    async with httpx.AsyncClient() as http:
        outcomes = await evaluate(
            suite,
            parse_dataset(DATASET)[:2],
            [Target("good", servers["good"])],
            client=ChatClient(http, backoff=0.01),
            model="m",
        )
    score_ = outcomes["good"][0].scores["keyed"]
    assert isinstance(score_, InvalidScore) and score_.kind == "http_401"
    result = aggregate(suite, "good", outcomes["good"])
    assert result.cases.invalid == 2 and result.cases.passed == 0


async def test_each_case_request_carries_its_trace_context_to_the_release_only(
    servers: dict[str, str],
) -> None:
    """The application sees the case's `traceparent` (its own spans join the case's trace);
    the judge, which is not the application, gets none."""
    seen: dict[str, list[str | None]] = {"app": [], "judge": []}

    def recording(name: str, upstream: str) -> web.Application:
        async def relay(request: web.Request) -> web.Response:
            seen[name].append(request.headers.get("traceparent"))
            async with httpx.AsyncClient() as http:
                r = await http.post(upstream + request.path, content=await request.read())
            return web.Response(
                body=r.content, status=r.status_code, content_type="application/json"
            )

        app = web.Application()
        app.router.add_post("/{tail:.*}", relay)
        return app

    app_runner, app_url = await serve(recording("app", servers["good"]))
    judge_runner, judge_url = await serve(recording("judge", servers["judge"]))
    try:
        suite = suite_for({**servers, "judge": judge_url}, concurrency=2)
        suite = suite.model_copy(update={"judges": [j for j in suite.judges if j.name != "keyed"]})
        cases = parse_dataset(DATASET)[:3]
        async with httpx.AsyncClient() as http:
            outcomes = await evaluate(
                suite,
                cases,
                [Target("good", app_url)],
                client=ChatClient(http, backoff=0.01),
                model="m",
                trace_headers=lambda t, c: {"traceparent": f"00-{'1' * 32}-{c.id:0>16}-01"},
            )
    finally:
        await app_runner.cleanup()
        await judge_runner.cleanup()
    assert sorted(seen["app"]) == sorted(f"00-{'1' * 32}-{c.id:0>16}-01" for c in cases)
    assert seen["judge"] and set(seen["judge"]) == {None}
    for o in outcomes["good"]:
        assert o.started is not None and o.finished is not None and o.started <= o.finished
        assert o.finish_reason == "stop"  # as the release said: the span's output needs it

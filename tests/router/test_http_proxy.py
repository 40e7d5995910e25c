"""The router's proxy over real HTTP: cohort routing, stickiness, streaming, fallback."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
from yarl import URL

from llm_rollout.router import served_from_object
from llm_rollout.router.state import PATH_PREFIX
from tests.router.conftest import NAME, NS, deployment, sample

CHAT = "/v1/chat/completions"
BODY = {"model": "x", "messages": [{"role": "user", "content": "hi"}]}


async def post(url: str, body: Any = BODY, **headers: str) -> tuple[int, dict[str, str], Any]:
    target = URL(url, encoded=True)  # send the path and query exactly as written
    async with aiohttp.ClientSession() as s, s.post(target, json=body, headers=headers) as r:
        text = await r.text()
        try:
            data = json.loads(text)
        except ValueError:
            data = text
        return r.status, {k.lower(): v for k, v in r.headers.items()}, data


async def test_cohorts_reach_their_release(model_servers, make_router) -> None:
    stable, cand = await model_servers("stable1"), await model_servers("cand2")
    router = await make_router(
        [deployment(routes={"experts": 100, "beta": 0})],
        {f"{NS}/{NAME}/stable1": stable.url, f"{NS}/{NAME}/cand2": cand.url},
    )
    code, h, data = await post(router.url + CHAT, **{"x-user-id": "bob", "X-User-Group": "expert"})
    assert code == 200
    assert (h["x-llm-release"], h["x-llm-cohort"]) == ("cand2", "experts")
    assert data["choices"][0]["message"]["content"] == "Hello from cand2."
    assert h["x-llm-feedback-token"] and h["x-request-id"]
    # listed user, no header
    _, h, _ = await post(router.url + CHAT, **{"x-user-id": "alice"})
    assert (h["x-llm-release"], h["x-llm-cohort"]) == ("cand2", "experts")
    _, h, _ = await post(router.url + CHAT, **{"x-user-id": "bob", "x-beta": "true"})
    assert (h["x-llm-release"], h["x-llm-cohort"]) == ("stable1", "beta")
    _, h, _ = await post(router.url + CHAT, **{"x-user-id": "carol"})
    assert (h["x-llm-release"], h["x-llm-cohort"]) == ("stable1", "all")


async def test_explicit_cohort_header_needs_trust(model_servers, make_router) -> None:
    from llm_rollout.router import RouterSettings

    stable, cand = await model_servers("stable1"), await model_servers("cand2")
    backends = {f"{NS}/{NAME}/stable1": stable.url, f"{NS}/{NAME}/cand2": cand.url}
    objs = [deployment(routes={"experts": 100})]
    untrusting = await make_router(objs, backends)
    _, h, _ = await post(untrusting.url + CHAT, **{"x-user-id": "bob", "x-llm-cohort": "experts"})
    assert h["x-llm-cohort"] == "all"
    trusting = await make_router(objs, backends, settings=RouterSettings(trust_cohort_header=True))
    _, h, _ = await post(trusting.url + CHAT, **{"x-user-id": "bob", "x-llm-cohort": "experts"})
    assert (h["x-llm-cohort"], h["x-llm-release"]) == ("experts", "cand2")
    _, h, _ = await post(trusting.url + CHAT, **{"x-user-id": "bob", "x-llm-cohort": "nope"})
    assert h["x-llm-cohort"] == "all"


async def test_users_are_sticky_and_split_by_percent(model_servers, make_router) -> None:
    stable, cand = await model_servers("stable1"), await model_servers("cand2")
    router = await make_router(
        [deployment(routes={"all": 30})],
        {f"{NS}/{NAME}/stable1": stable.url, f"{NS}/{NAME}/cand2": cand.url},
    )
    users = [f"user-{i}" for i in range(200)]
    async with aiohttp.ClientSession() as s:

        async def release_of(user: str) -> str:
            async with s.post(router.url + CHAT, json=BODY, headers={"x-user-id": user}) as r:
                await r.read()
                return r.headers["x-llm-release"]

        first = await asyncio.gather(*(release_of(u) for u in users))
        again = await asyncio.gather(*(release_of(u) for u in users))
    assert first == again  # nobody flips within a step
    share = first.count("cand2") / len(users)
    assert 0.2 < share < 0.4
    # raising the step only moves users stable -> candidate
    obj = deployment(routes={"all": 60})
    router.state.update([served_from_object(obj)])
    async with aiohttp.ClientSession() as s:
        later = await asyncio.gather(*(release_of(u) for u in users))
    assert all(b == "cand2" for a, b in zip(first, later, strict=True) if a == "cand2")
    assert later.count("cand2") > first.count("cand2")


async def test_unsticky_requests_are_counted(model_servers, make_router) -> None:
    stable = await model_servers("stable1")
    router = await make_router([deployment(candidate=None)], {f"{NS}/{NAME}/stable1": stable.url})
    code, h, _ = await post(router.url + CHAT)
    assert code == 200 and h["x-llm-release"] == "stable1"
    assert (
        sample(
            await router.scrape(),
            "llm_router_unsticky_requests_total",
            namespace=NS,
            deployment=NAME,
        )
        == 1
    )


async def test_streaming_is_passed_through_chunk_by_chunk(model_servers, make_router) -> None:
    stable = await model_servers("stable1", gated=True, chunks=4, answer="one two three four")
    router = await make_router([deployment(candidate=None)], {f"{NS}/{NAME}/stable1": stable.url})
    received: list[str] = []
    async with (
        aiohttp.ClientSession() as s,
        s.post(router.url + CHAT, json={**BODY, "stream": True}, headers={"x-user-id": "u1"}) as r,
    ):
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/event-stream")
        buf = b""
        for i in range(4):
            # The backend holds chunk i+1 until we have seen chunk i through the router.
            while b"\n\n" not in buf:
                buf += await asyncio.wait_for(r.content.readany(), 5)
            event, _, buf = buf.partition(b"\n\n")
            received.append(json.loads(event[5:])["choices"][0]["delta"]["content"])
            assert not stable.gates[i].is_set()
            stable.gates[i].set()
        rest = buf + await r.content.read()
    assert "".join(received) == "one two three four"
    assert b"[DONE]" in rest and b'"usage"' in rest
    await router.settle()
    text = await router.scrape()
    labels = {"namespace": NS, "deployment": NAME, "release": "stable1", "cohort": "all"}
    assert sample(text, "llm_router_tokens_total", direction="output", **labels) == 5
    assert sample(text, "llm_router_tokens_total", direction="input", **labels) == 7
    assert sample(text, "llm_router_time_to_first_token_seconds_count", **labels) == 1
    assert sample(text, "llm_router_requests_total", code="200", **labels) == 1


async def test_fallback_to_stable_when_candidate_is_down(model_servers, make_router) -> None:
    stable = await model_servers("stable1")
    dead = "http://127.0.0.1:9"  # discard port: nothing listens
    router = await make_router(
        [deployment(routes={"all": 100})],
        {f"{NS}/{NAME}/stable1": stable.url, f"{NS}/{NAME}/cand2": dead},
    )
    code, h, data = await post(router.url + CHAT, **{"x-user-id": "u1"})
    assert code == 200 and h["x-llm-release"] == "stable1"
    assert data["choices"][0]["message"]["content"] == "Hello from stable1."
    text = await router.scrape()
    assert sample(text, "llm_router_fallbacks_total", release="cand2", cohort="all") == 1
    assert sample(text, "llm_router_upstream_errors_total", release="cand2", kind="connect") == 1
    # the candidate's failed attempt counts against it; stable served the request
    assert sample(text, "llm_router_requests_total", release="cand2", code="502") == 1
    assert sample(text, "llm_router_requests_total", release="stable1", code="200") == 1


async def test_502_when_nothing_is_reachable(make_router) -> None:
    router = await make_router(
        [deployment(routes={"all": 100})],
        {f"{NS}/{NAME}/stable1": "http://127.0.0.1:9", f"{NS}/{NAME}/cand2": "http://127.0.0.1:9"},
    )
    started = time.monotonic()
    code, h, data = await post(router.url + CHAT, **{"x-user-id": "u1"})
    assert code == 502 and time.monotonic() - started < 2
    assert "127.0.0.1:9" in data["error"] and data["release"] == "stable1"
    assert h["content-type"].startswith("application/json")
    text = await router.scrape()
    assert sample(text, "llm_router_requests_total", code="502", release="stable1") == 1
    assert sample(text, "llm_router_requests_total", code="502", release="cand2") == 1
    assert sample(text, "llm_router_requests_total") == 2
    assert sample(text, "llm_router_fallbacks_total", release="cand2") == 1


async def test_unresolved_release_falls_back(model_servers, make_router) -> None:
    stable = await model_servers("stable1")
    router = await make_router(
        [deployment(routes={"all": 100})], {f"{NS}/{NAME}/stable1": stable.url}
    )
    code, h, _ = await post(router.url + CHAT, **{"x-user-id": "u1"})
    assert code == 200 and h["x-llm-release"] == "stable1"
    assert sample(await router.scrape(), "llm_router_upstream_errors_total", kind="unresolved") == 1


async def test_backend_dying_midstream_truncates_the_client_stream(
    model_servers, make_router
) -> None:
    stable = await model_servers("stable1")
    router = await make_router([deployment(candidate=None)], {f"{NS}/{NAME}/stable1": stable.url})
    got = b""
    async with (
        aiohttp.ClientSession() as s,
        s.post(router.url + "/v1/die", json=BODY, headers={"x-user-id": "u1"}) as r,
    ):
        assert r.status == 200
        try:
            async for chunk in r.content.iter_any():
                got += chunk
            clean = True
        except aiohttp.ClientPayloadError:
            clean = False
    assert b"part0" in got and b"part1" in got
    assert not clean  # the client can tell the answer is incomplete
    text = await router.scrape()
    assert sample(text, "llm_router_upstream_errors_total", kind="midstream") == 1
    assert sample(text, "llm_router_requests_total", code="502") == 1  # cut short = failed
    # the router is still fine afterwards
    code, _, _ = await post(router.url + CHAT, **{"x-user-id": "u1"})
    assert code == 200


async def test_unknown_deployment_is_404(model_servers, make_router) -> None:
    stable = await model_servers("stable1")
    objs = [deployment(candidate=None), deployment(candidate=None, name="other")]
    router = await make_router(
        objs, {f"{NS}/{NAME}/stable1": stable.url, f"{NS}/other/stable1": stable.url}
    )
    code, _, data = await post(router.url + CHAT)  # two served: must say which
    assert code == 404 and data["error"] == "unknown deployment"
    code, _, _ = await post(router.url + CHAT, **{"x-llm-deployment": "team/nope"})
    assert code == 404
    code, _, _ = await post(router.url + "/d/team/nope" + CHAT)
    assert code == 404
    code, h, _ = await post(router.url + CHAT, **{"x-llm-deployment": "team/other"})
    assert code == 200 and h["x-llm-release"] == "stable1"


async def test_path_prefix_selects_and_is_stripped(model_servers, make_router) -> None:
    stable = await model_servers("stable1")
    objs = [deployment(candidate=None), deployment(candidate=None, name="other")]
    router = await make_router(
        objs, {f"{NS}/{NAME}/stable1": stable.url, f"{NS}/other/stable1": stable.url}
    )
    code, _, data = await post(f"{router.url}{PATH_PREFIX}team/other/v1/a%2Fb?x=1&y=%2F")
    assert code == 200
    assert data["path"] == "/v1/a%2Fb" and data["query"] == "x=1&y=%2F"
    code, _, data = await post(f"{router.url}{PATH_PREFIX}team/other")
    assert code == 200 and data["path"] == "/"


async def test_headers_in_and_out(model_servers, make_router) -> None:
    stable = await model_servers("stable1")
    router = await make_router([deployment(candidate=None)], {f"{NS}/{NAME}/stable1": stable.url})
    code, h, data = await post(
        router.url + "/v1/echo",
        **{
            "x-request-id": "req-123",
            "Authorization": "Bearer t",
            "Connection": "x-secret",
            "x-secret": "drop me",
            "Proxy-Authorization": "Basic z",
            "x-llm-deployment": f"{NS}/{NAME}",
            "x-user-id": "u1",
        },
    )
    assert code == 200
    seen = {k.lower(): v for k, v in data["headers"].items()}
    assert seen["authorization"] == "Bearer t"
    assert seen["x-request-id"] == "req-123"
    assert seen["x-llm-release"] == "stable1" and seen["x-llm-cohort"] == "all"
    assert seen["host"] == f"127.0.0.1:{stable.port}"
    for gone in ("x-secret", "proxy-authorization", "x-llm-deployment"):
        assert gone not in seen
    assert h["x-request-id"] == "req-123"
    # an invalid request id is replaced
    _, h, _ = await post(router.url + "/v1/echo", **{"x-request-id": "bad id\t!"})
    assert h["x-request-id"] != "bad id\t!" and len(h["x-request-id"]) == 32


async def test_oversize_body_is_413(model_servers, make_router) -> None:
    from llm_rollout.router import RouterSettings

    stable = await model_servers("stable1")
    router = await make_router(
        [deployment(candidate=None)],
        {f"{NS}/{NAME}/stable1": stable.url},
        settings=RouterSettings(max_body_bytes=1000),
    )
    code, _, data = await post(router.url + CHAT, {"messages": "x" * 2000})
    assert code == 413 and "1000" in data["error"]
    assert stable.seen == []

    async def chunked() -> Any:  # no Content-Length: caught while reading
        for _ in range(20):
            yield b"x" * 100

    async with aiohttp.ClientSession() as s, s.post(router.url + CHAT, data=chunked()) as r:
        assert r.status == 413
    assert stable.seen == []


async def test_not_an_open_proxy(model_servers, make_router) -> None:
    stable = await model_servers("stable1")
    other = await model_servers("elsewhere")  # must never be reached
    router = await make_router([deployment(candidate=None)], {f"{NS}/{NAME}/stable1": stable.url})
    tricks = [
        f"GET http://127.0.0.1:{other.port}/v1/x HTTP/1.1\r\nHost: 127.0.0.1:{other.port}\r\n",
        f"GET //127.0.0.1:{other.port}/v1/x HTTP/1.1\r\nHost: 127.0.0.1:{router.port}\r\n",
        f"GET /v1/x HTTP/1.1\r\nHost: 127.0.0.1:{other.port}\r\n",
        f"GET /@127.0.0.1:{other.port}/v1/x HTTP/1.1\r\nHost: x\r\n",
        f"CONNECT 127.0.0.1:{other.port} HTTP/1.1\r\nHost: 127.0.0.1:{other.port}\r\n",
    ]
    for trick in tricks:
        reader, writer = await asyncio.open_connection("127.0.0.1", router.port)
        writer.write((trick + "Connection: close\r\n\r\n").encode())
        await writer.drain()
        await asyncio.wait_for(reader.read(), 5)
        writer.close()
    assert other.seen == []
    assert all(s["path"].endswith("/v1/x") for s in stable.seen)


async def test_health_and_readiness(make_router) -> None:
    from llm_rollout.router import RouterState

    router = await make_router([], {})
    async with aiohttp.ClientSession() as s:
        async with s.get(router.url + "/healthz") as r:
            assert r.status == 200
        async with s.get(router.url + "/readyz") as r:
            assert r.status == 200  # an (empty) config was given
        router.router.state = RouterState()
        async with s.get(router.url + "/readyz") as r:
            assert r.status == 503

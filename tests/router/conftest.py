"""Real HTTP fixtures for the router: small OpenAI-compatible model servers and routers,
each on a free loopback port. Nothing is mocked; servers and clients talk over TCP."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from llm_rollout.router import Router, RouterSettings, RouterState, served_from_object
from llm_rollout.router.tokens import TokenSigner
from llm_rollout.router.tracing import RouterTracing
from llm_rollout.traffic.backends import StaticBackends

KEY = b"k" * 32
NS, NAME = "team", "chat"


async def start_app(app: web.Application, port: int = 0) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, shutdown_timeout=2)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    server = site._server
    assert server is not None
    return runner, int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]


@dataclass
class ModelServer:
    """An OpenAI-compatible model server answering as release `release`.

    - POST /v1/chat/completions: JSON answer with usage, or SSE when `"stream": true`.
      With `gated` set, chunk i+1 is only sent once `gates[i]` is set by the test.
    - POST /v1/die: sends two SSE chunks, then drops the connection.
    - any other path: echoes method, path, query and headers as JSON.
    """

    release: str
    answer: str = ""
    chunks: int = 4
    gated: bool = False
    gates: list[asyncio.Event] = field(default_factory=list)
    seen: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0
    runner: web.AppRunner | None = None

    def __post_init__(self) -> None:
        self.answer = self.answer or f"Hello from {self.release}."
        self.gates = [asyncio.Event() for _ in range(self.chunks)]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _record(self, request: web.Request, body: bytes) -> None:
        self.seen.append(
            {
                "method": request.method,
                "path": request.rel_url.raw_path,
                "query": request.rel_url.raw_query_string,
                "headers": dict(request.headers),
                "body": body.decode("utf-8", "replace"),
            }
        )

    async def chat(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        self._record(request, raw)
        body = json.loads(raw or b"{}")
        usage = {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}
        if not body.get("stream"):
            return web.json_response(
                {
                    "id": "c1",
                    "object": "chat.completion",
                    "model": self.release,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": self.answer},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                }
            )
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        words = self.answer.split(" ")
        per = max(1, -(-len(words) // self.chunks))
        pieces = [" ".join(words[i : i + per]) + " " for i in range(0, len(words), per)]
        pieces += [""] * (self.chunks - len(pieces))
        for i, piece in enumerate(pieces[: self.chunks]):
            if self.gated and i > 0:
                await self.gates[i - 1].wait()
            event = {
                "choices": [
                    {
                        "index": 0,
                        "delta": {"content": piece.rstrip(" ") if i == self.chunks - 1 else piece},
                    }
                ]
            }
            await resp.write(f"data: {json.dumps(event)}\n\n".encode())
        await resp.write(f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n".encode())
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def die(self, request: web.Request) -> web.StreamResponse:
        self._record(request, await request.read())
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for i in range(2):
            await resp.write(
                f'data: {{"choices":[{{"delta":{{"content":"part{i} "}}}}]}}\n\n'.encode()
            )
        await asyncio.sleep(0.05)
        assert request.transport is not None
        request.transport.abort()
        return resp

    async def echo(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self._record(request, raw)
        return web.json_response({**self.seen[-1], "release": self.release})

    async def start(self, port: int = 0) -> ModelServer:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/die", self.die)
        app.router.add_route("*", "/{tail:.*}", self.echo)
        self.runner, self.port = await start_app(app, port)
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


def deployment(
    stable: str | None = "stable1",
    candidate: str | None = "cand2",
    routes: dict[str, int] | None = None,
    *,
    ns: str = NS,
    name: str = NAME,
    cohorts: list[dict[str, Any]] | None = None,
    checks: list[dict[str, Any]] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """An LLMDeployment object as the API server would return it."""
    routing: dict[str, Any] = {
        "routes": [{"cohort": c, "candidatePercent": p} for c, p in (routes or {}).items()]
    }
    if stable:
        routing["stable"] = {
            "id": stable,
            "model": "m-small",
            "modelRevision": "r1",
            "promptVersion": "p1",
            "knowledgeBase": "kb-2024",
        }
    if candidate:
        routing["candidate"] = {
            "id": candidate,
            "model": "m-small",
            "modelRevision": "r2",
            "promptVersion": "p2",
            "knowledgeBase": "kb-2025",
        }
    return {
        "apiVersion": "rollout.llmops.io/v1alpha1",
        "kind": "LLMDeployment",
        "metadata": {"namespace": ns, "name": name},
        "spec": {
            "cohorts": cohorts
            if cohorts is not None
            else [
                {
                    "name": "experts",
                    "match": {"headers": {"x-user-group": ["expert"]}, "users": ["alice"]},
                },
                {"name": "beta", "match": {"headers": {"x-beta": ["1", "true"]}}},
            ],
            "defaultCohort": "all",
            "checks": checks or [],
            **spec,
        },
        "status": {"routing": routing},
    }


@dataclass
class RunningRouter:
    router: Router
    runner: web.AppRunner
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def state(self) -> RouterState:
        return self.router.state

    async def scrape(self) -> str:
        async with aiohttp.ClientSession() as s, s.get(f"{self.url}/metrics") as r:
            return await r.text()

    async def settle(self) -> None:
        """Wait for the background analysis (checks, usage) of finished responses."""
        for _ in range(200):
            if not self.router.relay.tasks:
                return
            await asyncio.sleep(0.01)
        raise AssertionError("background analysis did not finish")


RouterFactory = Callable[..., Awaitable[RunningRouter]]


@pytest.fixture
async def model_servers() -> AsyncIterator[Callable[..., Awaitable[ModelServer]]]:
    started: list[ModelServer] = []

    async def make(release: str, **kw: Any) -> ModelServer:
        server = await ModelServer(release, **kw).start()
        started.append(server)
        return server

    yield make
    for server in started:
        await server.stop()


@pytest.fixture
async def make_router() -> AsyncIterator[RouterFactory]:
    started: list[RunningRouter] = []

    async def make(
        objects: list[dict[str, Any]],
        backends: dict[str, str],
        *,
        settings: RouterSettings | None = None,
        clock: Callable[[], float] | None = None,
        keys: list[bytes] | None = None,
        tracing: RouterTracing | None = None,
    ) -> RunningRouter:
        state = RouterState([served_from_object(o) for o in objects])
        static = StaticBackends.from_specs(f"{k}={v}" for k, v in backends.items())
        kw: dict[str, Any] = {"clock": clock} if clock else {}
        router = Router(state, static, TokenSigner(keys or [KEY]), settings, tracing=tracing, **kw)
        runner, port = await start_app(router.make_app())
        running = RunningRouter(router, runner, port)
        started.append(running)
        return running

    yield make
    for running in started:
        await running.runner.cleanup()


def sample(metrics_text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels` (0 if none)."""
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(metrics_text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


async def wait_ready(url: str, within: float = 10) -> None:
    """Wait for a router process to answer /readyz."""
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            try:
                async with s.get(url + "/readyz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError(f"{url} never became ready")

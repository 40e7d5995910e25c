"""The router's traces in a real trace backend (Arize Phoenix on loopback), read back
through its REST API: attributes, content only when switched on, redaction, feedback
linked to its answer, the application's own span in the same trace, nothing lost at
200 requests a second, and a dead backend that costs requests nothing."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from llm_rollout.router.tracing import RouterTracing
from llm_rollout.telemetry.export import ExportSettings, tracer_provider
from llm_rollout.telemetry.genai import ContentPolicy
from llm_rollout.testbed.procs import free_port
from llm_rollout.testbed.traces import PROJECT_ATTRIBUTE, TraceBackend
from tests.router.conftest import KEY, NAME, NS, deployment, start_app, wait_ready

pytestmark = pytest.mark.integration

CHAT = "/v1/chat/completions"
QUESTION = "Please mail carol@example.org the ACME price list"


def project() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


class App:
    """The team's application behind the router: it retrieves from its knowledge base in
    a span of its own (continuing the router's trace context), then answers."""

    def __init__(self, backend: TraceBackend, project: str) -> None:
        settings = ExportSettings(backend.otlp_endpoint, "team-app", schedule_delay=0.2)
        self.counts: dict[str, int] = {}
        self.provider = tracer_provider(
            settings,
            lambda o, n: self.counts.__setitem__(o, self.counts.get(o, 0) + n),
            resource_attributes={PROJECT_ATTRIBUTE: project},
        )
        self.tracer = self.provider.get_tracer("team-app")
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        parent = TraceContextTextMapPropagator().extract(request.headers)
        with self.tracer.start_as_current_span("retrieve knowledge-base", context=parent) as s:
            s.set_attribute("retrieval.documents", 2)
        return web.json_response(
            {
                "id": "answer-1",
                "object": "chat.completion",
                "model": body.get("model", ""),
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": "Sent the ACME list to carol@example.org.",
                        },
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 11, "completion_tokens": 6},
            }
        )

    async def start(self) -> App:
        app = web.Application()
        app.router.add_post(CHAT, self.chat)
        self.runner, self.port = await start_app(app)
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
        self.provider.shutdown()


@pytest.fixture
async def team_app(trace_backend: TraceBackend) -> AsyncIterator[tuple[App, str]]:
    name = project()
    app = await App(trace_backend, name).start()
    yield app, name
    await app.stop()


def by_name(spans: list[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    return [s for s in spans if s["name"].startswith(prefix)]


async def test_router_process_traces_answers_content_feedback_and_the_apps_span(
    trace_backend: TraceBackend, team_app: tuple[App, str], tmp_path: Path
) -> None:
    app, proj = team_app
    obj = deployment(
        candidate=None,
        checks=[{"name": "brand", "type": "regex", "pattern": "ACME"}],
        tracing={"redact": [r"[\w.]+@[\w.]+\w"]},
    )
    config = tmp_path / "deployments.yaml"
    config.write_text(yaml.safe_dump(obj))
    port = free_port()
    env = {
        **os.environ,
        "LLM_ROLLOUT_FEEDBACK_KEY": KEY.decode(),
        # The standard variables: endpoint, project (a resource attribute), content switch.
        "OTEL_EXPORTER_OTLP_ENDPOINT": trace_backend.url,
        "OTEL_RESOURCE_ATTRIBUTES": f"{PROJECT_ATTRIBUTE}={proj}",
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
    argv = [
        sys.executable, "-m", "llm_rollout.cli", "router",
        "--listen", f"127.0.0.1:{port}",
        "--config", str(config),
        "--backend", f"{NS}/{NAME}/stable1=http://127.0.0.1:{app.port}",
    ]  # fmt: skip
    log = tmp_path / "router.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            *argv, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        url = f"http://127.0.0.1:{port}"
        await wait_ready(url)
        async with aiohttp.ClientSession() as s:
            body = {"model": "m-small", "messages": [{"role": "user", "content": QUESTION}]}
            async with s.post(url + CHAT, json=body, headers={"x-user-id": "u7"}) as r:
                assert r.status == 200, await r.text()
                token = r.headers["x-llm-feedback-token"]
            fb = {"token": token, "thumbs": "down", "comment": "wrong: mail me at dan@example.org"}
            async with s.post(url + "/feedback", json=fb) as r:
                assert r.status == 202
    finally:
        proc.send_signal(signal.SIGTERM)  # the router sends what it still holds on exit
        await asyncio.wait_for(proc.wait(), timeout=30)
    assert proc.returncode == 0, log.read_text()

    spans = trace_backend.wait_spans(proj, 3)
    [answer] = by_name(spans, "chat")
    [retrieval] = by_name(spans, "retrieve")
    [feedback] = by_name(spans, "feedback")
    trace_id = answer["context"]["trace_id"]
    a = answer["attributes"]
    assert answer["name"] == "chat m-small" and answer["span_kind"] == "LLM"
    assert a["gen_ai.request.model"] == "m-small"
    assert a["gen_ai.response.id"] == "answer-1"
    assert a["gen_ai.usage.input_tokens"] == 11 and a["gen_ai.usage.output_tokens"] == 6
    assert a["llm_rollout.release.id"] == "stable1"
    assert a["llm_rollout.release.knowledge_base"] == "kb-2024"
    assert a["llm_rollout.cohort"] == "all"
    # Content was switched on: recorded, with the e-mail address redacted.
    text = json.dumps(a["gen_ai.input.messages"]) + json.dumps(a["gen_ai.output.messages"])
    assert "ACME price list" in text and "[REDACTED]" in text
    assert "carol@example.org" not in text
    # The passing brand check is an evaluation event on the answer.
    events = {e["attributes"]["gen_ai.evaluation.name"]: e for e in answer["events"]}
    assert events["brand"]["attributes"]["gen_ai.evaluation.score.label"] == "pass"
    # The application's own span joined the router's trace, under the answer's span.
    assert retrieval["context"]["trace_id"] == trace_id
    assert retrieval["parent_id"] == answer["context"]["span_id"]
    # The feedback is a span under the answer it rates, the comment redacted too.
    assert feedback["context"]["trace_id"] == trace_id
    assert feedback["parent_id"] == answer["context"]["span_id"]
    [event] = feedback["events"]
    assert event["attributes"]["gen_ai.evaluation.score.label"] == "negative"
    assert event["attributes"]["gen_ai.evaluation.explanation"] == "wrong: mail me at [REDACTED]"
    # The feedback log line names the answer's trace.
    logged = [json.loads(ln.split(" ", 4)[-1]) for ln in log.read_text().splitlines()
              if "llm_rollout.feedback" in ln]  # fmt: skip
    assert [rec["traceId"] for rec in logged] == [trace_id]

    # The thumbs-down answer becomes an eval case, read back from the backend.
    cases_file = tmp_path / "cases.jsonl"
    harvest = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "llm_rollout.cli", "dataset", f"{NS}/{NAME}",
        "--phoenix-url", trace_backend.url, "--project", proj, "--since", "1h",
        "-o", str(cases_file), "--configmap", "chat-bad-answers",
        "--configmap-output", str(tmp_path / "cm.yaml"),
        stderr=subprocess.PIPE,
    )  # fmt: skip
    _, err = await harvest.communicate()
    assert harvest.returncode == 0, err.decode()
    [case] = [json.loads(line) for line in cases_file.read_text().splitlines()]
    assert case["messages"] == [
        {"role": "user", "content": "Please mail [REDACTED] the ACME price list"}
    ]
    assert "negative-feedback" in case["tags"] and case["trace"] == trace_id
    cm = yaml.safe_load((tmp_path / "cm.yaml").read_text())
    assert cm["kind"] == "ConfigMap" and cm["data"]["cases.jsonl"] == cases_file.read_text()


def in_process_tracing(
    backend_url: str, proj: str, counts: dict[str, int], **content: Any
) -> RouterTracing:
    settings = ExportSettings(
        f"{backend_url}/v1/traces", "llm-rollout-router", schedule_delay=0.2, export_timeout=2.0
    )
    provider = tracer_provider(
        settings,
        lambda o, n: counts.__setitem__(o, counts.get(o, 0) + n),
        resource_attributes={PROJECT_ATTRIBUTE: proj},
    )
    return RouterTracing(provider, ContentPolicy(**content))


async def test_content_stays_out_unless_switched_on(
    trace_backend: TraceBackend, team_app: tuple[App, str], make_router: Any
) -> None:
    app, proj = team_app
    counts: dict[str, int] = {}
    tracing = in_process_tracing(trace_backend.url, proj, counts)
    router = await make_router(
        [deployment(candidate=None)],
        {f"{NS}/{NAME}/stable1": f"http://127.0.0.1:{app.port}"},
        tracing=tracing,
    )
    async with aiohttp.ClientSession() as s:
        body = {"model": "m", "messages": [{"role": "user", "content": QUESTION}]}
        async with s.post(router.url + CHAT, json=body) as r:
            assert r.status == 200
    await router.settle()
    tracing.shutdown()
    [answer] = by_name(trace_backend.wait_spans(proj, 2), "chat")
    assert "gen_ai.input.messages" not in answer["attributes"]
    assert "gen_ai.output.messages" not in answer["attributes"]
    assert "carol" not in json.dumps(answer)


async def test_nothing_is_lost_at_200_requests_a_second(
    trace_backend: TraceBackend, model_servers: Any, make_router: Any
) -> None:
    proj, counts = project(), {}
    tracing = in_process_tracing(trace_backend.url, proj, counts)
    server = await model_servers("stable1")
    router = await make_router(
        [deployment(candidate=None)], {f"{NS}/{NAME}/stable1": server.url}, tracing=tracing
    )
    sent, rate, seconds = 0, 200, 10
    statuses: list[int] = []
    async with aiohttp.ClientSession() as s:

        async def one(i: int) -> None:
            body = {"model": "m", "messages": [{"role": "user", "content": f"q{i}"}]}
            async with s.post(router.url + CHAT, json=body, headers={"x-user-id": f"u{i}"}) as r:
                await r.read()
                statuses.append(r.status)

        tasks = []
        start = time.monotonic()
        for i in range(rate * seconds):  # paced: request i leaves at i/rate seconds
            await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
            tasks.append(asyncio.ensure_future(one(i)))
            sent += 1
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - start
    await router.settle()
    tracing.shutdown()
    assert statuses.count(200) == sent
    assert elapsed < seconds * 1.5, f"could not send at {rate}/s: {sent} in {elapsed:.1f}s"
    stored = trace_backend.wait_spans(proj, sent, timeout=120)
    assert len(stored) == sent
    assert len({s["context"]["span_id"] for s in stored}) == sent
    assert counts == {"exported": sent}


async def test_a_dead_backend_costs_requests_nothing_and_drops_are_counted(
    model_servers: Any, make_router: Any
) -> None:
    counts: dict[str, int] = {}
    # Nothing listens there: every export is refused (a real failure, not a fake).
    dead = f"http://127.0.0.1:{free_port()}"
    tracing = in_process_tracing(dead, "none", counts)
    server = await model_servers("stable1")
    router = await make_router(
        [deployment(candidate=None)], {f"{NS}/{NAME}/stable1": server.url}, tracing=tracing
    )
    async with aiohttp.ClientSession() as s:
        for i in range(50):
            async with s.post(
                router.url + CHAT, json={"messages": []}, headers={"x-user-id": f"u{i}"}
            ) as r:
                assert r.status == 200
    await router.settle()
    await asyncio.to_thread(tracing.shutdown)
    assert counts.get("exported", 0) == 0
    assert counts.get("export_failed", 0) + counts.get("queue_full", 0) == 50


async def test_dataset_from_a_project_the_backend_does_not_have_fails_with_the_reason(
    trace_backend: TraceBackend, tmp_path: Path
) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "llm_rollout.cli", "dataset", f"{NS}/{NAME}",
        "--phoenix-url", trace_backend.url, "--project", "no-such-project",
        "-o", str(tmp_path / "out.jsonl"),
        stderr=subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    assert proc.returncode == 1
    assert f"phoenix at {trace_backend.url} has no project no-such-project" in err.decode()
    assert not (tmp_path / "out.jsonl").exists()

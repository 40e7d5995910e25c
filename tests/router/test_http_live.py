"""The router as run by `llm-rollout router`: file config reloaded live, online checks,
graceful shutdown of a real process."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

import aiohttp

from llm_rollout.router.main import add_arguments, serve
from llm_rollout.testbed.procs import free_port
from tests.router.conftest import NAME, NS, deployment, sample, wait_ready

REPO = Path(__file__).resolve().parents[2]
CHAT = "/v1/chat/completions"
BODY = {"messages": [{"role": "user", "content": "Translate: the ACME Widget is great"}]}


def args_for(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


async def release_of(s: aiohttp.ClientSession, url: str, user: str) -> str:
    async with s.post(url + CHAT, json=BODY, headers={"x-user-id": user}) as r:
        await r.read()
        assert r.status == 200
        return r.headers["x-llm-release"]


async def test_config_file_change_applies_within_a_second(model_servers, tmp_path: Path) -> None:
    stable, cand = await model_servers("stable1"), await model_servers("cand2")
    config = tmp_path / "deployments.yaml"
    config.write_text(json.dumps([deployment(routes={"all": 0})]))
    backends = tmp_path / "backends.yaml"
    backends.write_text(f"{NS}/{NAME}/stable1: {stable.url}\n")
    port = free_port()
    args = args_for(
        "--listen",
        f"127.0.0.1:{port}",
        "--config",
        str(config),
        "--backend-file",
        str(backends),
        "--backend",
        f"{NS}/{NAME}/cand2={cand.url}",
        "--reload-interval",
        "0.1",
    )
    stop = asyncio.Event()
    task = asyncio.create_task(serve(args, stop))
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(url)
        async with aiohttp.ClientSession() as s:
            assert await release_of(s, url, "u1") == "stable1"
            config.write_text(json.dumps([deployment(routes={"all": 100})]))
            changed = time.monotonic()
            while await release_of(s, url, "u1") != "cand2":
                assert time.monotonic() - changed < 1.0, "routing change not applied in 1 s"
                await asyncio.sleep(0.02)
            # a broken edit keeps the last good configuration
            config.write_text("spec: [unclosed")
            await asyncio.sleep(0.3)
            assert await release_of(s, url, "u1") == "cand2"
            # the backend file is live too: move stable elsewhere
            other = await model_servers("stable1-moved")
            config.write_text(json.dumps([deployment(routes={"all": 0})]))
            backends.write_text(f"{NS}/{NAME}/stable1: {other.url}\n")
            await asyncio.sleep(0.4)
            async with s.post(url + "/v1/echo", json={}, headers={"x-user-id": "u1"}) as r:
                assert (await r.json())["release"] == "stable1-moved"
    finally:
        stop.set()
        await task


async def test_online_checks_and_usage_are_counted(model_servers, make_router) -> None:
    stable = await model_servers("stable1", answer="Sorry, the Acme widget is great.")
    checks = [
        {"name": "no-apology", "type": "notRegex", "pattern": r"\bsorry\b", "ignoreCase": True},
        {"name": "short", "type": "maxLength", "max": 500},
        {"name": "brand", "type": "preservedNames", "names": ["ACME Widget"]},
        {"name": "json", "type": "validJson"},
    ]
    router = await make_router(
        [deployment(candidate=None, checks=checks)], {f"{NS}/{NAME}/stable1": stable.url}
    )
    async with aiohttp.ClientSession() as s:
        for stream in (False, True):
            async with s.post(
                router.url + CHAT, json={**BODY, "stream": stream}, headers={"x-user-id": "u1"}
            ) as r:
                await r.read()
        async with s.get(router.url + "/v1/models", headers={"x-user-id": "u1"}) as r:
            await r.read()  # not a completion: not checked
    await router.settle()
    text = await router.scrape()
    labels = {"namespace": NS, "deployment": NAME, "release": "stable1", "cohort": "all"}

    def count(check: str, result: str) -> float:
        return sample(text, "llm_heuristic_checks_total", check=check, result=result, **labels)

    assert count("no-apology", "fail") == 2 and count("no-apology", "pass") == 0
    assert count("short", "pass") == 2
    assert count("brand", "fail") == 2
    assert count("json", "fail") == 2
    assert sample(text, "llm_router_tokens_total", direction="output", **labels) == 10
    assert sample(text, "llm_router_request_duration_seconds_count", **labels) == 3


async def test_process_drains_streams_on_sigterm(model_servers, tmp_path: Path) -> None:
    stable = await model_servers("stable1", gated=True, chunks=3, answer="a b c")
    config = tmp_path / "d.json"
    config.write_text(json.dumps([deployment(candidate=None)]))
    keyfile = tmp_path / "key"
    keyfile.write_text("a-feedback-key-of-sufficient-length\n")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO / "operator")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "llm_rollout.router.main",
        "--listen",
        f"127.0.0.1:{port}",
        "--config",
        str(config),
        "--backend",
        f"{NS}/{NAME}/stable1={stable.url}",
        "--token-key-file",
        str(keyfile),
        "--shutdown-grace",
        "10",
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(url)
        async with (
            aiohttp.ClientSession() as s,
            s.post(url + CHAT, json={**BODY, "stream": True}, headers={"x-user-id": "u1"}) as r,
        ):
            first = await asyncio.wait_for(r.content.readany(), 5)
            assert b"data:" in first
            proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.3)
            # no new connections while draining
            try:
                async with aiohttp.ClientSession() as s2, s2.get(url + "/healthz") as r2:
                    refused = r2.status != 200
            except aiohttp.ClientError:
                refused = True
            assert refused
            for gate in stable.gates:
                gate.set()
            rest = await asyncio.wait_for(r.content.read(), 5)
        assert b"[DONE]" in first + rest
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_bad_startup_config_exits_2(tmp_path: Path) -> None:
    from llm_rollout.router.main import run

    config = tmp_path / "d.yaml"
    config.write_text("metadata: {}\n")
    assert run(args_for("--listen", f"127.0.0.1:{free_port()}", "--config", str(config))) == 2

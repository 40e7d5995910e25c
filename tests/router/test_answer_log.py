"""Production feedback becomes eval data without a trace backend: a real router process
with `--answer-log` in front of a real model server, real requests and feedback, then
`llm-rollout dataset --from-log` on the router's own log output."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
import yaml

from llm_rollout.testbed.procs import free_port
from tests.router.conftest import KEY, NAME, NS, ModelServer, deployment, wait_ready

pytestmark = pytest.mark.integration

CHAT = "/v1/chat/completions"


async def dataset(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "llm_rollout.cli", "dataset", f"{NS}/{NAME}", *args,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, err.decode()


async def test_bad_answers_in_the_routers_logs_become_a_dataset(tmp_path: Path) -> None:
    model = await ModelServer("stable1", answer="We have it in stock.").start()
    obj = deployment(
        candidate=None,
        checks=[{"name": "brand", "type": "preservedNames", "names": ["ACME Widget"]}],
        tracing={"redact": [r"[\w.]+@[\w.]+\w"]},
    )
    config = tmp_path / "deployments.yaml"
    config.write_text(yaml.safe_dump(obj))
    port = free_port()
    argv = [
        sys.executable, "-m", "llm_rollout.cli", "router",
        "--listen", f"127.0.0.1:{port}", "--config", str(config),
        "--backend", f"{NS}/{NAME}/stable1={model.url}",
        "--answer-log",
    ]  # fmt: skip
    env = {**os.environ, "LLM_ROLLOUT_FEEDBACK_KEY": KEY.decode()}
    log = tmp_path / "router.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            *argv, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    questions = {
        "hours": "What are your opening hours?",  # fine
        "mail": "Send the price list to bob@example.org",  # gets a thumbs down
        "brand": "Is the ACME Widget in stock?",  # the answer drops the name: check fails
    }
    try:
        url = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as s:
            await wait_ready(url)
            tokens = {}
            for key in ["hours", "mail", "brand", "brand"]:
                body = {
                    "model": "m-small",
                    "messages": [{"role": "user", "content": questions[key]}],
                }
                async with s.post(url + CHAT, json=body, headers={"x-user-id": "u1"}) as r:
                    assert r.status == 200, await r.text()
                    tokens[key] = r.headers["x-llm-feedback-token"]
            for key, thumbs, comment in [
                ("hours", "up", None),
                ("mail", "down", "It should have said: sent to bob@example.org"),
            ]:
                fb = {"token": tokens[key], "thumbs": thumbs, "source": "expert"}
                async with s.post(url + "/feedback", json={**fb, "comment": comment}) as r:
                    assert r.status == 202, await r.text()
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), timeout=30)
        await model.stop()
    assert proc.returncode == 0, log.read_text()
    text = log.read_text()
    answers = [ln for ln in text.splitlines() if " llm_rollout.answers " in ln]
    assert len(answers) == 4
    assert "bob@example.org" not in "\n".join(answers)  # redacted by spec.tracing.redact

    cases_file = tmp_path / "cases.jsonl"
    code, err = await dataset(
        "--from-log", str(log), "--release", "stable1", "--since", "1h",
        "--reference-from-expert-comment", "--redact", r"[\w.]+@[\w.]+\w",
        "-o", str(cases_file), "--configmap", "chat-bad-answers",
        "--configmap-output", str(tmp_path / "cm.yaml"),
    )  # fmt: skip
    assert code == 0, err
    assert "2 cases from 3 bad answers of 4 (1 duplicates" in err
    cases = {c["messages"][0]["content"]: c for c in map(json.loads, cases_file.open())}
    assert set(cases) == {"Send the price list to [REDACTED]", questions["brand"]}
    mail = cases["Send the price list to [REDACTED]"]
    assert mail["tags"] == ["production", "release:stable1", "negative-feedback"]
    assert mail["reference"] == "It should have said: sent to [REDACTED]"
    assert cases[questions["brand"]]["tags"][-1] == "failed-check:brand"
    cm = yaml.safe_load((tmp_path / "cm.yaml").read_text())
    assert cm["data"]["cases.jsonl"] == cases_file.read_text()


async def test_dataset_sources_that_cannot_be_read_fail_with_the_reason(
    tmp_path: Path,
) -> None:
    code, err = await dataset("--from-log", str(tmp_path / "nope.log"))
    assert code == 1 and "nope.log: No such file or directory" in err
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    code, err = await dataset("--phoenix-url", dead, "-o", str(tmp_path / "out.jsonl"))
    assert code == 1 and f"phoenix at {dead} unreachable" in err
    assert not (tmp_path / "out.jsonl").exists()  # nothing half-written
    code, err = await dataset("--since", "a while")
    assert code == 2 and "error:" in err

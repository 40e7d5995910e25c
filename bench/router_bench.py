"""Router overhead benchmark: the same load sent straight to a model server and through
the router, each in its own process on loopback.

    .venv/bin/python bench/router_bench.py [--requests 2000] [--concurrency 32]

Reports requests/s and latency percentiles for JSON answers, and time to first
event for SSE streams, direct vs. via the router, as a table and as JSON on the
last line. The model server answers instantly, so the numbers are the proxy's
own cost (on a busy machine, expect noise).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

REPO = Path(__file__).resolve().parents[1]
CHAT = "/v1/chat/completions"
BODY = {"model": "bench", "messages": [{"role": "user", "content": "hello " * 50}]}
ANSWER = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "word " * 100}}],
          "usage": {"prompt_tokens": 50, "completion_tokens": 100}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_backend(port: int) -> None:
    """A model server that answers at once (JSON, or 20 SSE events when streaming)."""

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if not body.get("stream"):
            return web.json_response(ANSWER)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for _ in range(20):
            await resp.write(b'data: {"choices":[{"delta":{"content":"word "}}]}\n\n')
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post(CHAT, chat)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


async def wait_up(url: str) -> None:
    async with aiohttp.ClientSession() as s:
        for _ in range(200):
            try:
                async with s.get(url) as r:
                    if r.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


async def load(url: str, requests: int, concurrency: int, stream: bool) -> dict[str, float]:
    latencies: list[float] = []
    queue = iter(range(requests))
    body = {**BODY, "stream": stream}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as s:

        async def worker(w: int) -> None:
            for i in queue:
                t0 = time.perf_counter()
                async with s.post(url + CHAT, json=body, headers={"x-user-id": f"u{w}-{i}"}) as r:
                    if stream:
                        await r.content.readany()  # first event
                        latencies.append(time.perf_counter() - t0)
                        await r.read()
                    else:
                        await r.read()
                        latencies.append(time.perf_counter() - t0)
                    assert r.status == 200, r.status

        started = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        elapsed = time.perf_counter() - started
    q = statistics.quantiles(latencies, n=100)
    return {"rps": requests / elapsed, "p50_ms": q[49] * 1000, "p99_ms": q[98] * 1000}


async def main(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "operator"), "LOG_LEVEL": "WARNING"}
    bport, rport = free_port(), free_port()
    procs = [await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve-backend", str(bport), env=env)]
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "d.json"
        config.write_text(json.dumps([{
            "metadata": {"namespace": "bench", "name": "chat"},
            "spec": {"checks": [{"name": "short", "type": "maxLength", "max": 10000}]},
            "status": {"routing": {"stable": {"id": "s"}, "candidate": {"id": "c"},
                                   "routes": [{"cohort": "everyone", "candidatePercent": 50}]}},
        }]))
        backend = f"http://127.0.0.1:{bport}"
        procs.append(await asyncio.create_subprocess_exec(
            sys.executable, "-m", "llm_rollout.router.main", "--listen", f"127.0.0.1:{rport}",
            "--config", str(config), "--backend", f"bench/chat/s={backend}",
            "--backend", f"bench/chat/c={backend}", env={
                **env, "LLM_ROLLOUT_FEEDBACK_KEY": "bench-key-0123456789abcdef"}))
        try:
            await wait_up(backend + "/")
            await wait_up(f"http://127.0.0.1:{rport}/readyz")
            results: dict[str, dict[str, float]] = {}
            for stream in (False, True):
                for name, url in (("direct", backend), ("router", f"http://127.0.0.1:{rport}")):
                    await load(url, min(200, args.requests), args.concurrency, stream)  # warm up
                    key = f"{'sse' if stream else 'json'}/{name}"
                    results[key] = await load(url, args.requests, args.concurrency, stream)
            return results
        finally:
            for p in procs:
                p.terminate()
                await p.wait()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve-backend":
        serve_backend(int(sys.argv[2]))
        raise SystemExit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    res = asyncio.run(main(parser.parse_args()))
    print(f"{'case':<14}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}   (sse: time to first event)")
    for key, r in res.items():
        print(f"{key:<14}{r['rps']:>10.0f}{r['p50_ms']:>10.2f}{r['p99_ms']:>10.2f}")
    print(json.dumps(res))

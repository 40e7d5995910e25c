"""The eval runner waits for a release's Service to accept connections before its
cases run (a Service lags its ready pods by a second or more in a cluster)."""

from __future__ import annotations

import asyncio
import socket
import time

from llm_rollout.evals.client import wait_until_reachable


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_waits_for_a_server_that_comes_up_late() -> None:
    port = _free_port()
    started: list[float] = []

    async def serve_later() -> asyncio.Server:
        await asyncio.sleep(1.0)
        started.append(time.monotonic())
        return await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)

    server_task = asyncio.create_task(serve_later())
    assert await wait_until_reachable(f"http://127.0.0.1:{port}/v1", within=10, every=0.1)
    server = await server_task
    assert started  # it did not return before the server was there
    server.close()
    await server.wait_closed()


async def test_gives_up_after_the_timeout() -> None:
    port = _free_port()  # nobody listens
    assert not await wait_until_reachable(f"http://127.0.0.1:{port}", within=0.5, every=0.1)

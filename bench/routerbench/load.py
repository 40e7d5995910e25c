"""Load generators: an open loop at a fixed rate (latency from the scheduled send time),
interleaved targets, and closed-loop saturation (wrk, else Python)."""

from __future__ import annotations

import asyncio
import gc
import json
import statistics
import subprocess
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from routerbench.settings import CHAT, JSON_BODY, STREAM_BODY, USERS


def quantile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by linear interpolation; NaN when empty."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[round(q * 1000) - 1]


@dataclass
class Samples:
    """Per-request results of one load phase against one target."""

    latency: list[float] = field(default_factory=list)  # seconds
    forward: list[float] = field(default_factory=list)  # first-chunk forwarding, seconds
    errors: list[str] = field(default_factory=list)
    lag: list[float] = field(default_factory=list)  # how late the generator fired
    seconds: float = 0.0  # first scheduled send -> last answer

    def extend(self, other: Samples) -> None:
        self.latency += other.latency
        self.forward += other.forward
        self.errors += other.errors
        self.lag += other.lag
        self.seconds += other.seconds

    def ms(self, which: str, q: float) -> float:
        return quantile(getattr(self, which), q) * 1000


Fire = Callable[[aiohttp.ClientSession, int, float, Samples], Coroutine[Any, Any, None]]


def client_session(limit: int = 256) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, limit_per_host=0),
        timeout=aiohttp.ClientTimeout(total=10),
    )


async def open_loop(
    session: aiohttp.ClientSession, rate: float, seconds: float, fire: Fire, offset: int = 0
) -> Samples:
    """`rate * seconds` requests, request i scheduled at t0 + i / rate whatever the answers.

    The generator's garbage collector is off meanwhile (its pauses would read as latency
    of whichever target is being measured)."""
    samples = Samples()
    count = max(1, int(rate * seconds))
    tasks: list[asyncio.Task[None]] = []
    gc.collect()
    gc.disable()
    try:
        t0 = time.monotonic() + 0.005
        for i in range(count):
            at = t0 + i / rate
            delay = at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            samples.lag.append(max(0.0, time.monotonic() - at))
            tasks.append(asyncio.create_task(fire(session, offset + i, at, samples)))
        await asyncio.gather(*tasks)
        samples.seconds = time.monotonic() - t0
    finally:
        gc.enable()
    return samples


async def interleaved(
    urls: dict[str, str],
    make_fire: Callable[[str], Fire],
    rate: float,
    slice_seconds: float,
    slices: int,
) -> dict[str, Samples]:
    """Each target in turn for `slice_seconds` at `rate`, `slices` times, rotating the
    order: a burst of other work on the machine falls on every target alike. One session
    (keep-alive connections) per target; one warm-up slice each, not counted."""
    names = list(urls)
    out = {n: Samples() for n in names}
    sessions = {n: client_session() for n in names}
    try:
        for n in names:
            await open_loop(sessions[n], rate, min(slice_seconds, 0.5), make_fire(urls[n]))
        per_slice = max(1, int(rate * slice_seconds))
        for k in range(slices):
            for n in names[k % len(names) :] + names[: k % len(names)]:
                out[n].extend(
                    await open_loop(
                        sessions[n], rate, slice_seconds, make_fire(urls[n]), offset=k * per_slice
                    )
                )
    finally:
        for session in sessions.values():
            await session.close()
    return out


def chat_post(
    session: aiohttp.ClientSession,
    url: str,
    i: int,
    body: bytes,
) -> Any:  # an aiohttp request context manager
    """POST a chat completion as user i (of USERS)."""
    return session.post(
        url + CHAT,
        data=body,
        headers={"Content-Type": "application/json", "x-user-id": f"user-{i % USERS}"},
    )


def json_fire(url: str) -> Fire:
    async def fire(session: aiohttp.ClientSession, i: int, at: float, out: Samples) -> None:
        try:
            async with chat_post(session, url, i, JSON_BODY) as r:
                body = await r.read()
                if r.status != 200 or b'"usage"' not in body:
                    out.errors.append(f"status {r.status}")
                    return
        except (aiohttp.ClientError, TimeoutError) as exc:
            out.errors.append(repr(exc))
            return
        out.latency.append(time.monotonic() - at)

    return fire


def stream_fire(url: str) -> Fire:
    async def fire(session: aiohttp.ClientSession, i: int, at: float, out: Samples) -> None:
        try:
            async with chat_post(session, url, i, STREAM_BODY) as r:
                first = await r.content.readuntil(b"\n\n")
                received = time.monotonic_ns()
                rest = await r.read()
                if r.status != 200 or not rest.endswith(b"data: [DONE]\n\n"):
                    out.errors.append(f"status {r.status} or truncated stream")
                    return
            sent = json.loads(first.removeprefix(b"data: "))["t_sent"]
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as exc:
            out.errors.append(repr(exc))
            return
        out.latency.append(received / 1e9 - at)
        out.forward.append((received - sent) / 1e9)

    return fire


WRK_SCRIPT = """\
wrk.method = "POST"
wrk.body = [[%s]]
wrk.headers["Content-Type"] = "application/json"
local i = 0
request = function()
  i = i + 1
  wrk.headers["x-user-id"] = "user-" .. (i %% %d)
  return wrk.format()
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_JSON {\\"requests\\":%%d,\\"duration_us\\":%%d,\\"errors\\":%%d,\\"non2xx\\":%%d}\\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status))
end
"""


def saturate_wrk(url: str, concurrency: int, seconds: float, workdir: Path) -> dict[str, Any]:
    script = workdir / "post.lua"
    script.write_text(WRK_SCRIPT % (JSON_BODY.decode(), USERS))
    duration = max(1, round(seconds))
    result = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{concurrency}",
            f"-d{duration}s",
            "--timeout",
            "5s",
            "-s",
            str(script),
            url + CHAT,
        ],
        capture_output=True,
        text=True,
        timeout=duration + 30,
        check=False,
    )
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("WRK_JSON ")), None)
    if result.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    data = json.loads(line.removeprefix("WRK_JSON "))
    return {
        "requests": data["requests"],
        "seconds": data["duration_us"] / 1e6,
        "errors": data["errors"] + data["non2xx"],
    }


async def saturate_python(url: str, concurrency: int, seconds: float) -> dict[str, Any]:
    """Closed loop: `concurrency` workers, each sending its next request on an answer."""
    done, errors = 0, 0
    fire = json_fire(url)
    async with client_session(concurrency) as session:
        started_at = time.monotonic()
        deadline = started_at + seconds

        async def worker(w: int) -> None:
            nonlocal done, errors
            for i in range(1_000_000):  # bounded; the deadline ends it first
                if time.monotonic() >= deadline:
                    return
                s = Samples()
                await fire(session, w * 1_000_000 + i, time.monotonic(), s)
                done += len(s.latency)
                errors += len(s.errors)

        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        elapsed = time.monotonic() - started_at
    return {"requests": done + errors, "seconds": elapsed, "errors": errors}

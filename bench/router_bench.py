"""Router benchmark: the router against the same backend reached directly and through nginx.

    .venv/bin/python bench/router_bench.py            # the full run (`make bench`, ~2 min)
    .venv/bin/python bench/router_bench.py --quick    # a few hundred requests (smoke test)

One run on loopback, each piece in its own process on a free port:

- the backend: a minimal OpenAI-compatible aiohttp server (this file, `--serve-backend`):
  JSON answers with usage, and SSE streams whose first event carries the monotonic time
  at which the backend sent it (after a fixed delay);
- the router: `python -m llm_rollout.cli router`, one LLMDeployment with a stable and a
  candidate release (50 % of `everyone`), one online check, feedback tokens from a key file;
- nginx (Debian's package) as a plain reverse proxy: the peer baseline.

The load comes from this process (and `wrk` for saturation, when installed):

1. latency: an open-loop generator at a fixed rate (200 req/s) per target; the targets
   take turns in short slices, rotating their order, so bursts of other work on the
   machine fall on all of them alike; a request's latency runs from its *scheduled*
   send time, so a stalled proxy cannot hide its own queueing (no coordinated omission);
2. streaming: SSE requests at a fixed rate, in turns as well; time to first chunk (from
   the scheduled send time) and first-chunk forwarding delay (backend send -> client
   receipt; both processes read CLOCK_MONOTONIC);
3. saturation: closed loop at a fixed concurrency (wrk, else Python), with the proxy's
   CPU time from /proc/PID/stat: req/s and req/s per core of the proxy;
4. memory: VmRSS / VmHWM of the router and of nginx (master + worker);
5. feedback: valid signed tokens POSTed to the router's /feedback at 1,000/s; the
   router's `llm_feedback_total` must equal the number sent.

Prints markdown tables, the pass/fail line of each target, and JSON on the last line.
Exits 1 when something broke (a failed request, lost feedback, a process that died),
0 otherwise: missing a target is reported, not an error.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parents[1]
CHAT = "/v1/chat/completions"
NS, NAME, STABLE, CANDIDATE, COHORT = "bench", "chat", "s1", "c1", "everyone"
JSON_BODY = json.dumps(
    {"model": "bench", "messages": [{"role": "user", "content": "hello " * 50}]}
).encode()
STREAM_BODY = json.dumps(
    {"model": "bench", "stream": True, "messages": [{"role": "user", "content": "hello " * 50}]}
).encode()
USERS = 1000  # distinct x-user-id values: both releases get traffic
CLK_TCK = os.sysconf("SC_CLK_TCK")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

# Targets of the issue (informational: reported as pass/fail, never an exit code).
TARGET_ADDED_P99_MS = 2.0
TARGET_FIRST_CHUNK_MS = 5.0
TARGET_FEEDBACK_RPS = 1000


# --------------------------------------------------------------------------- backend


def serve_backend(port: int, first_chunk_delay: float, chunks: int) -> None:
    """A model server: prebuilt JSON answers; SSE streams whose first event says when it
    was sent (`t_sent`, time.monotonic_ns()), after `first_chunk_delay` seconds."""
    from aiohttp import web

    answer = json.dumps(
        {
            "id": "b1",
            "object": "chat.completion",
            "model": "bench",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "word " * 100},
                }
            ],
            "usage": {"prompt_tokens": 50, "completion_tokens": 100, "total_tokens": 150},
        }
    ).encode()
    delta = b'data: {"choices":[{"index":0,"delta":{"content":"word "}}]}\n\n'
    rest_of_first = b',"choices":[{"index":0,"delta":{"content":"word "}}]}\n\n'
    usage = (
        b'data: {"choices":[],"usage":{"prompt_tokens":50,"completion_tokens":%d,'
        b'"total_tokens":%d}}\n\ndata: [DONE]\n\n' % (chunks, 50 + chunks)
    )

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if b'"stream": true' not in body:
            return web.Response(body=answer, content_type="application/json")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await asyncio.sleep(first_chunk_delay)
        await resp.write(b'data: {"t_sent":' + str(time.monotonic_ns()).encode() + rest_of_first)
        for _ in range(chunks - 1):
            await resp.write(delta)
        await resp.write(usage)
        await resp.write_eof()
        return resp

    async def health(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post(CHAT, chat)
    app.router.add_get("/health", health)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, handle_signals=True)


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pids(self) -> list[int]:
        """The process and its children (nginx: master + worker)."""
        return [self.popen.pid, *children(self.popen.pid)]

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                out.append(int(entry))
    return out


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes (all their threads), in seconds."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5)
    return total / CLK_TCK


def memory_kib(pids: list[int]) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) summed over these processes, in KiB."""
    out = {"rss_kib": 0, "hwm_kib": 0}
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out["rss_kib" if key == "VmRSS" else "hwm_kib"] += int(value.split()[0])
    return out


def load_average() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


class OtherWork:
    """CPU the rest of the machine used meanwhile: all busy time (/proc/stat) less that of
    the benchmark's own processes (this one, its children, the servers)."""

    def __init__(self, procs: list[Proc]) -> None:
        self.procs = procs
        self.start = self._sample()

    def _sample(self) -> tuple[float, float, float]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle, iowait
        busy = (sum(fields[:8]) - idle) / CLK_TCK  # up to steal; guest is within user
        t = os.times()
        ours = (
            t.user
            + t.system
            + t.children_user
            + t.children_system
            + cpu_seconds([pid for p in self.procs for pid in p.pids])
        )
        return time.monotonic(), busy, ours

    def cores(self) -> float:
        """Average cores used by other work since the start."""
        t1, busy1, ours1 = self._sample()
        t0, busy0, ours0 = self.start
        return max(0.0, (busy1 - busy0) - (ours1 - ours0)) / max(t1 - t0, 1e-9)


@contextmanager
def started(name: str, argv: list[str], workdir: Path, env: dict[str, str]) -> Iterator[Proc]:
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL
        )
    proc = Proc(name, popen, log)
    try:
        yield proc
    finally:
        if proc.alive():
            popen.send_signal(signal.SIGTERM)
            try:
                popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait(timeout=5)


def wait_up(url: str, proc: Proc, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited at start-up:\n{proc.tail()}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status < 500:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{proc.name} did not answer {url} within {seconds:.0f} s:\n{proc.tail()}")


def backend_argv(port: int, first_chunk_delay: float, chunks: int) -> list[str]:
    return [
        sys.executable,
        __file__,
        "--serve-backend",
        str(port),
        str(first_chunk_delay),
        str(chunks),
    ]


def router_files(workdir: Path) -> bytes:
    """The router's config (one LLMDeployment, stable + candidate at 50 % of everyone, one
    check) and feedback key file in `workdir`; returns the key."""
    key = secrets.token_hex(32).encode()
    (workdir / "keys").write_bytes(key + b"\n")
    (workdir / "deployment.json").write_text(
        json.dumps(
            {
                "metadata": {"namespace": NS, "name": NAME},
                "spec": {
                    "cohorts": [
                        {"name": "experts", "match": {"headers": {"x-user-group": ["expert"]}}}
                    ],
                    "defaultCohort": COHORT,
                    "checks": [{"name": "short", "type": "maxLength", "max": 100000}],
                },
                "status": {
                    "routing": {
                        "stable": {"id": STABLE, "model": "bench-v1"},
                        "candidate": {"id": CANDIDATE, "model": "bench-v2"},
                        "routes": [
                            {"cohort": "experts", "candidatePercent": 100},
                            {"cohort": COHORT, "candidatePercent": 50},
                        ],
                    }
                },
            }
        )
    )
    return key


def router_argv(workdir: Path, port: int, metrics_port: int, backend_url: str) -> list[str]:
    """`llm-rollout router` as `make bench` runs it (logging at its default level, INFO)."""
    return [
        sys.executable,
        "-m",
        "llm_rollout.cli",
        "router",
        "--listen",
        f"127.0.0.1:{port}",
        "--metrics-listen",
        f"127.0.0.1:{metrics_port}",
        "--config",
        str(workdir / "deployment.json"),
        "--token-key-file",
        str(workdir / "keys"),
        "--backend",
        f"{NS}/{NAME}/{STABLE}={backend_url}",
        "--backend",
        f"{NS}/{NAME}/{CANDIDATE}={backend_url}",
        "--shutdown-grace",
        "2",
    ]


def nginx_config(workdir: Path, port: int, backend_port: int) -> Path:
    """A plain reverse proxy: one worker, upstream keep-alive, no buffering, no access log."""
    for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (workdir / "tmp" / sub).mkdir(parents=True, exist_ok=True)
    tmp = workdir / "tmp"
    conf = workdir / "nginx.conf"
    conf.write_text(f"""\
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_requests 1000000;
    upstream backend {{
        server 127.0.0.1:{backend_port};
        keepalive 64;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
}}
""")
    return conf


# --------------------------------------------------------------------------- load


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


Fire = Callable[[aiohttp.ClientSession, int, float, Samples], Awaitable[None]]


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
    tasks = []
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


# --------------------------------------------------------------------------- feedback


def feedback_bodies(key: bytes, count: int, run_id: str) -> list[bytes]:
    """`count` valid feedback bodies, each for its own request id (no duplicates)."""
    from llm_rollout.router.tokens import TokenSigner

    signer = TokenSigner([key])
    now = time.time()
    bodies = []
    for i in range(count):
        token = signer.issue(
            ns=NS,
            dep=NAME,
            rel=(STABLE, CANDIDATE)[i % 2],
            coh=COHORT,
            rid=f"fb-{run_id}-{i}",
            user_id=f"user-{i % USERS}",
            now=now,
        )
        body: dict[str, Any] = {"token": token}
        if i % 3 == 0:
            body["thumbs"] = ("up", "down")[i % 2]
        else:
            body |= {
                "score": 1 + i % 5,
                "source": ("user", "expert")[i % 2],
                "criteria": {"accuracy": 1 + i % 5},
            }
        bodies.append(json.dumps(body).encode())
    return bodies


def feedback_fire(url: str, bodies: list[bytes], statuses: list[int]) -> Fire:
    async def fire(session: aiohttp.ClientSession, i: int, at: float, out: Samples) -> None:
        try:
            async with session.post(
                url + "/feedback", data=bodies[i], headers={"Content-Type": "application/json"}
            ) as r:
                await r.read()
                statuses.append(r.status)
                if not 200 <= r.status < 300:
                    out.errors.append(f"status {r.status}")
                    return
        except (aiohttp.ClientError, TimeoutError) as exc:
            out.errors.append(repr(exc))
            return
        out.latency.append(time.monotonic() - at)

    return fire


async def feedback_load(
    url: str,
    plan: Plan,
    bodies: list[bytes],
    statuses: list[int],
) -> Samples:
    async with client_session() as session:
        return await open_loop(
            session, plan.feedback_rate, plan.feedback_seconds, feedback_fire(url, bodies, statuses)
        )


def feedback_counted(metrics_url: str) -> float:
    """Sum of every `llm_feedback_total` series the router exports."""
    with urllib.request.urlopen(metrics_url, timeout=5) as r:
        text = r.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("llm_feedback_total{")
    )


# --------------------------------------------------------------------------- run


@dataclass(frozen=True)
class Plan:
    rate: float  # latency phase, req/s per target
    slice_seconds: float  # one turn of one target
    slices: int  # turns per target
    stream_rate: float
    stream_slice_seconds: float
    saturation_seconds: float
    concurrency: int
    feedback_rate: float
    feedback_seconds: float
    first_chunk_delay: float
    chunks: int


FULL = Plan(
    rate=200,
    slice_seconds=1,
    slices=15,
    stream_rate=100,
    stream_slice_seconds=0.6,
    saturation_seconds=8,
    concurrency=32,
    feedback_rate=1000,
    feedback_seconds=3,
    first_chunk_delay=0.01,
    chunks=20,
)
QUICK = Plan(
    rate=200,
    slice_seconds=0.5,
    slices=1,
    stream_rate=50,
    stream_slice_seconds=0.5,
    saturation_seconds=1,
    concurrency=8,
    feedback_rate=1000,
    feedback_seconds=0.2,
    first_chunk_delay=0.01,
    chunks=5,
)


def run(plan: Plan, saturation_tool: str, with_nginx: bool) -> dict[str, Any]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(REPO / "operator"), os.environ.get("PYTHONPATH", "")) if p
        ),
    }
    env.pop("LOG_LEVEL", None)  # the router logs as in production (INFO: one line a feedback)
    results: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cores": os.cpu_count(),
        "load_average_start": load_average(),
        "plan": plan.__dict__,
        "saturation_tool": saturation_tool,
        "targets": {},
    }
    with tempfile.TemporaryDirectory(prefix="router-bench-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        workdir.chmod(0o755)  # nginx workers may run as another user
        bport, rport, mport, nport = (free_port() for _ in range(4))
        backend = stack.enter_context(
            started(
                "backend", backend_argv(bport, plan.first_chunk_delay, plan.chunks), workdir, env
            )
        )
        key = router_files(workdir)
        backend_url = f"http://127.0.0.1:{bport}"
        router = stack.enter_context(
            started("router", router_argv(workdir, rport, mport, backend_url), workdir, env)
        )
        procs = {"direct": backend, "router": router}
        urls = {"direct": backend_url, "router": f"http://127.0.0.1:{rport}"}
        if with_nginx:
            conf = nginx_config(workdir, nport, bport)
            procs["nginx"] = stack.enter_context(
                started(
                    "nginx",
                    [
                        NGINX,
                        "-p",
                        str(workdir),
                        "-e",
                        str(workdir / "nginx-error.log"),
                        "-c",
                        str(conf),
                        "-g",
                        "daemon off;",
                    ],
                    workdir,
                    env,
                )
            )
            urls["nginx"] = f"http://127.0.0.1:{nport}"
        wait_up(backend_url + "/health", backend)
        wait_up(f"http://127.0.0.1:{mport}/readyz", router)
        if with_nginx:
            wait_up(urls["nginx"] + "/health", procs["nginx"])
        names = list(urls)
        idle = {n: memory_kib(procs[n].pids) for n in names if n != "direct"}

        def check_alive() -> None:
            for p in procs.values():
                if not p.alive():
                    raise RuntimeError(f"{p.name} died:\n{p.tail()}")

        other: dict[str, float] = {}
        # 1 + 2: open-loop latency and streaming, the targets taking turns.
        meter = OtherWork(list(procs.values()))
        lat = asyncio.run(interleaved(urls, json_fire, plan.rate, plan.slice_seconds, plan.slices))
        other["latency"] = meter.cores()
        check_alive()
        meter = OtherWork(list(procs.values()))
        ttfc = asyncio.run(
            interleaved(urls, stream_fire, plan.stream_rate, plan.stream_slice_seconds, plan.slices)
        )
        other["streaming"] = meter.cores()
        check_alive()

        # 3: saturation, with the CPU time of the proxy (of the backend for direct).
        sat: dict[str, dict[str, Any]] = {}
        meter = OtherWork(list(procs.values()))
        for n in names:
            proxy_pids, backend_pids = procs[n].pids, backend.pids
            cpu0, bcpu0, t0 = cpu_seconds(proxy_pids), cpu_seconds(backend_pids), time.monotonic()
            if saturation_tool == "wrk":
                s = saturate_wrk(urls[n], plan.concurrency, plan.saturation_seconds, workdir)
            else:
                s = asyncio.run(saturate_python(urls[n], plan.concurrency, plan.saturation_seconds))
            wall = time.monotonic() - t0
            s["proxy_cpu_s"] = cpu_seconds(proxy_pids) - cpu0
            s["backend_cpu_s"] = cpu_seconds(backend_pids) - bcpu0
            s["wall_s"] = wall
            sat[n] = s
            check_alive()
        other["saturation"] = meter.cores()

        # 4: memory after the load.
        mem = {n: memory_kib(procs[n].pids) for n in names if n != "direct"}

        # 5: feedback at 1,000/s, counted by the router's own metrics.
        metrics_url = f"http://127.0.0.1:{mport}/metrics"
        fb_count = max(1, int(plan.feedback_rate * plan.feedback_seconds))
        bodies = feedback_bodies(key, fb_count, secrets.token_hex(4))
        before = feedback_counted(metrics_url)
        statuses: list[int] = []
        meter = OtherWork(list(procs.values()))
        fb = asyncio.run(feedback_load(urls["router"], plan, bodies, statuses))
        other["feedback"] = meter.cores()
        counted = feedback_counted(metrics_url) - before
        check_alive()
        results["load_average_end"] = load_average()
        results["other_work_cores"] = other

    for n in names:
        s = sat[n]
        cpu = s["proxy_cpu_s"] if n != "direct" else s["backend_cpu_s"]
        results["targets"][n] = {
            "requests": len(lat[n].latency) + len(lat[n].errors),
            "errors": len(lat[n].errors) + len(ttfc[n].errors) + s["errors"],
            "error_samples": (lat[n].errors + ttfc[n].errors)[:3],
            "p50_ms": lat[n].ms("latency", 0.5),
            "p99_ms": lat[n].ms("latency", 0.99),
            "generator_lag_p99_ms": lat[n].ms("lag", 0.99),
            "streams": len(ttfc[n].latency) + len(ttfc[n].errors),
            "ttfc_p50_ms": ttfc[n].ms("latency", 0.5),
            "ttfc_p99_ms": ttfc[n].ms("latency", 0.99),
            "forward_p50_ms": ttfc[n].ms("forward", 0.5),
            "forward_p99_ms": ttfc[n].ms("forward", 0.99),
            "sat_requests": s["requests"],
            "sat_rps": s["requests"] / s["seconds"],
            "sat_cpu_s": cpu,
            "sat_cpu_cores": cpu / s["wall_s"],
            "sat_rps_per_core": s["requests"] / cpu if cpu > 0 else float("nan"),
            "sat_backend_cpu_cores": s["backend_cpu_s"] / s["wall_s"],
            **({"idle_rss_kib": idle[n]["rss_kib"], **mem[n]} if n in mem else {}),
        }
    direct = results["targets"]["direct"]
    for n in names:
        t = results["targets"][n]
        for k in ("p50", "p99"):
            t[f"added_{k}_ms"] = t[f"{k}_ms"] - direct[f"{k}_ms"]
            t[f"ttfc_overhead_{k}_ms"] = t[f"ttfc_{k}_ms"] - direct[f"ttfc_{k}_ms"]
    results["feedback"] = {
        "sent": fb_count,
        "accepted_2xx": sum(1 for c in statuses if 200 <= c < 300),
        "counted": counted,
        "lost": fb_count - counted,
        "errors": len(fb.errors),
        "error_samples": fb.errors[:3],
        "seconds": fb.seconds,
        "rate": fb_count / fb.seconds,
        "offered_rate": plan.feedback_rate,
        "p50_ms": fb.ms("latency", 0.5),
        "p99_ms": fb.ms("latency", 0.99),
        "generator_lag_p99_ms": fb.ms("lag", 0.99),
    }
    return results


# --------------------------------------------------------------------------- report


def ratio(a: float, b: float) -> str:
    return f"{a / b:.1f}x" if b > 0.005 and a == a else "n/a"


def report(res: dict[str, Any]) -> list[str]:
    """Markdown tables and pass/fail lines."""
    t = res["targets"]
    names = list(t)
    other = ", ".join(f"{k} {v:.2f}" for k, v in res["other_work_cores"].items())
    out = [
        f"date {res['date']}, {res['cores']} cores, load average "
        f"{' '.join(f'{x:.2f}' for x in res['load_average_start'])} at start, "
        f"{' '.join(f'{x:.2f}' for x in res['load_average_end'])} at end; "
        f"CPU used by other work on the machine (cores, by phase): {other}; "
        f"saturation load from {res['saturation_tool']}",
        "",
    ]
    p = res["plan"]
    out += [
        f"Latency: open loop at {p['rate']:g} req/s per target, {p['slices']} turns of "
        f"{p['slice_seconds']:g} s each (from the scheduled send time). Saturation: "
        f"closed loop, {p['concurrency']} connections, {p['saturation_seconds']:g} s.",
        "",
        "| target | p50 ms | p99 ms | added p50 ms | added p99 ms | saturation req/s "
        "| proxy CPU (cores) | req/s per proxy core |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in names:
        r = t[n]
        who = " (backend)" if n == "direct" else ""
        out.append(
            f"| {n} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['added_p50_ms']:+.2f} "
            f"| {r['added_p99_ms']:+.2f} | {r['sat_rps']:.0f} | {r['sat_cpu_cores']:.2f}{who} "
            f"| {r['sat_rps_per_core']:.0f}{who} |"
        )
    out += [
        "",
        f"Streaming: SSE at {p['stream_rate']:g} streams/s, {p['slices']} turns of "
        f"{p['stream_slice_seconds']:g} s per target; the backend sends chunk 1 "
        f"{p['first_chunk_delay'] * 1000:g} ms after the headers. Forwarding = backend "
        "send -> client receipt of chunk 1.",
        "",
        "| target | TTFC p50 ms | TTFC p99 ms | TTFC overhead p50 / p99 ms "
        "| first-chunk forwarding p50 / p99 ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for n in names:
        r = t[n]
        out.append(
            f"| {n} | {r['ttfc_p50_ms']:.2f} | {r['ttfc_p99_ms']:.2f} "
            f"| {r['ttfc_overhead_p50_ms']:+.2f} / {r['ttfc_overhead_p99_ms']:+.2f} "
            f"| {r['forward_p50_ms']:.2f} / {r['forward_p99_ms']:.2f} |"
        )
    out += [
        "",
        "| proxy | RSS idle MiB | RSS after load MiB | peak RSS (VmHWM) MiB |",
        "|---|---:|---:|---:|",
    ]
    for n in names:
        if "rss_kib" in t[n]:
            r = t[n]
            out.append(
                f"| {n} | {r['idle_rss_kib'] / 1024:.1f} | {r['rss_kib'] / 1024:.1f} "
                f"| {r['hwm_kib'] / 1024:.1f} |"
            )
    fb = res["feedback"]
    out += [
        "",
        f"Feedback: {fb['sent']} posts offered at {fb['offered_rate']:g}/s, done in "
        f"{fb['seconds']:.2f} s ({fb['rate']:.0f}/s); 2xx {fb['accepted_2xx']}, counted by "
        f"llm_feedback_total {fb['counted']:.0f}, lost {fb['lost']:.0f}; latency p50 "
        f"{fb['p50_ms']:.2f} ms, p99 {fb['p99_ms']:.2f} ms.",
    ]
    if "nginx" in t:
        ro, ng = t["router"], t["nginx"]
        out += [
            "",
            "| router / nginx | ratio |",
            "|---|---:|",
            f"| added p50 | {ratio(ro['added_p50_ms'], ng['added_p50_ms'])} |",
            f"| added p99 | {ratio(ro['added_p99_ms'], ng['added_p99_ms'])} |",
            f"| TTFC overhead p50 | "
            f"{ratio(ro['ttfc_overhead_p50_ms'], ng['ttfc_overhead_p50_ms'])} |",
            f"| first-chunk forwarding p99 | {ratio(ro['forward_p99_ms'], ng['forward_p99_ms'])} |",
            f"| req/s per proxy core (nginx / router) | "
            f"{ratio(ng['sat_rps_per_core'], ro['sat_rps_per_core'])} |",
            f"| RSS after load | {ratio(ro['rss_kib'], ng['rss_kib'])} |",
        ]
    out += [""] + [f"- {line}" for line in verdicts(res)]
    return out


def verdicts(res: dict[str, Any]) -> list[str]:
    t, fb = res["targets"], res["feedback"]
    ro = t["router"]

    def mark(ok: bool) -> str:
        return "PASS" if ok else "MISS"

    ref = f"; nginx {t['nginx']['added_p99_ms']:+.2f} ms" if "nginx" in t else ""
    fwd_ref = f"; direct {t['direct']['forward_p99_ms']:.2f} ms" + (
        f", nginx {t['nginx']['forward_p99_ms']:.2f} ms" if "nginx" in t else ""
    )
    rate_ok = fb["rate"] >= 0.95 * TARGET_FEEDBACK_RPS
    return [
        f"{mark(ro['added_p99_ms'] < TARGET_ADDED_P99_MS)} added p99 at "
        f"{res['plan']['rate']:g} req/s < {TARGET_ADDED_P99_MS:g} ms: router "
        f"{ro['added_p99_ms']:+.2f} ms{ref}",
        f"{mark(ro['forward_p99_ms'] < TARGET_FIRST_CHUNK_MS)} first streamed chunk forwarded "
        f"within {TARGET_FIRST_CHUNK_MS:g} ms (p99): router {ro['forward_p99_ms']:.2f} ms"
        f"{fwd_ref}",
        f"{mark(rate_ok and fb['lost'] == 0)} {TARGET_FEEDBACK_RPS} feedback posts/s, none "
        f"lost: {fb['rate']:.0f}/s, sent {fb['sent']}, counted {fb['counted']:.0f}, "
        f"lost {fb['lost']:.0f}",
    ]


def broken(res: dict[str, Any]) -> list[str]:
    """What makes the run a failure (exit 1), as opposed to a missed target."""
    out = [
        f"{n}: {r['errors']} failed requests {r['error_samples']}"
        for n, r in res["targets"].items()
        if r["errors"]
    ]
    fb = res["feedback"]
    if fb["errors"]:
        out.append(f"feedback: {fb['errors']} failed posts {fb['error_samples']}")
    if fb["lost"]:
        out.append(
            f"feedback: {fb['lost']:.0f} lost (sent {fb['sent']}, counted {fb['counted']:.0f})"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a few hundred requests: checks that everything answers",
    )
    parser.add_argument(
        "--saturation-tool",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="closed-loop load for saturation (auto: wrk when installed)",
    )
    parser.add_argument("--no-nginx", action="store_true", help="skip the nginx baseline")
    parser.add_argument(
        "--json-out", default=None, metavar="FILE", help="also write the JSON results here"
    )
    args = parser.parse_args(argv)
    tool = args.saturation_tool
    if tool == "auto":
        tool = "wrk" if shutil.which("wrk") else "python"
    with_nginx = not args.no_nginx
    if with_nginx and not os.access(NGINX, os.X_OK):
        print(
            f"nginx not found at {NGINX} (hack/install-deps.sh installs it; or --no-nginx)",
            file=sys.stderr,
        )
        return 1
    try:
        res = run(QUICK if args.quick else FULL, tool, with_nginx)
    except RuntimeError as exc:
        print(f"benchmark broke: {exc}", file=sys.stderr)
        return 1
    print("\n".join(report(res)))
    problems = broken(res)
    res["broken"] = problems
    for problem in problems:
        print(f"BROKEN {problem}", file=sys.stderr)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res))
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--serve-backend":
        serve_backend(int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]))
        raise SystemExit(0)
    raise SystemExit(main())

"""One router run as the before/after benchmarks measure it: saturation (req/s per router
core), then 200 req/s open loop (CPU per request, p50, p99), then memory."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from llm_rollout.testbed.procs import free_port
from routerbench.load import (
    Samples,
    client_session,
    json_fire,
    open_loop,
    saturate_python,
    saturate_wrk,
)
from routerbench.procs import cpu_seconds, memory_kib, router_argv, started, wait_up


async def _open_loop(url: str, rate: float, seconds: float) -> Samples:
    async with client_session() as session:
        return await open_loop(session, rate, seconds, json_fire(url))


def measure(
    name: str,
    backend_url: str,
    workdir: Path,
    tool: str,
    env: dict[str, str],
    extra_args: tuple[str, ...] = (),
) -> dict[str, float]:
    """Start a router (`env`, `extra_args`), load it, stop it; its figures."""
    port, metrics_port = free_port(), free_port()
    argv = [*router_argv(workdir, port, metrics_port, backend_url), *extra_args]
    with started(name, argv, workdir, env) as router:
        wait_up(f"http://127.0.0.1:{metrics_port}/readyz", router)
        url, pid = f"http://127.0.0.1:{port}", [router.popen.pid]

        def saturate(secs: float) -> dict[str, Any]:
            if tool == "wrk":
                return saturate_wrk(url, 32, secs, workdir)
            return asyncio.run(saturate_python(url, 32, secs))

        saturate(1)  # warm-up
        cpu0 = cpu_seconds(pid)
        sat = saturate(6)
        cpu1 = cpu_seconds(pid)
        lat = asyncio.run(_open_loop(url, 200, 5))
        cpu2 = cpu_seconds(pid)
        if sat["errors"] or lat.errors:
            raise RuntimeError(f"{name}: failed requests {sat['errors']} {lat.errors[:3]}")
        return {
            "sat_rps": sat["requests"] / sat["seconds"],
            "rps_per_core": sat["requests"] / max(cpu1 - cpu0, 1e-9),
            "cpu_us_per_req_at_200": (cpu2 - cpu1) / len(lat.latency) * 1e6,
            "p50_ms": lat.ms("latency", 0.5),
            "p99_ms": lat.ms("latency", 0.99),
            "rss_mib": memory_kib(pid)["rss_kib"] / 1024,
        }

"""One run of the whole benchmark (full or quick plan): every target measured in turns."""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llm_rollout.testbed.procs import free_port
from routerbench.feedback import feedback_bodies, feedback_counted, feedback_load
from routerbench.load import interleaved, json_fire, saturate_python, saturate_wrk, stream_fire
from routerbench.procs import (
    OtherWork,
    backend_argv,
    cpu_seconds,
    load_average,
    memory_kib,
    nginx_config,
    router_argv,
    router_files,
    started,
    wait_up,
)
from routerbench.settings import NGINX, REPO, Plan


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

"""What the router's traces cost: the same router with tracing off, on (sample ratio 1.0,
no content), and on with message content, in one run.

    .venv/bin/python bench/tracing_cost.py [--rounds 3]     # part of `make bench`, ~6 min

Each round starts a fresh router per variant (the order rotates from round to round, so
drift in the machine's other work falls on all of them) in front of the same backend as
`make bench`. "on" and "on+content" export OTLP/HTTP to nginx answering 200 and
discarding the body: a receiver that costs the machine next to nothing, so the figures
are the router's own cost. "on, phoenix" exports to Arize Phoenix (the bed's trace
backend) on the same two cores: what a co-located backend adds (it competes for the
CPU). "on, ratio 0.1" samples one new trace in ten. Each run measures (routerbench/measure.py):

- saturation, closed loop, 32 connections: req/s per router core (requests / CPU seconds
  of the router process, its export thread included);
- 200 req/s open loop for 5 s: router CPU per request, p50, p99.

Prints every run, then the median over rounds of each variant's ratio to "off" in the
same round. Targets (docs/observability.md): with tracing on at ratio 1.0, at most 10 %
fewer req/s per core and at most 0.2 ms more p50 than off. Exits 1 when one is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import urllib.request
from contextlib import ExitStack
from pathlib import Path

from routerbench.measure import measure
from routerbench.procs import backend_argv, load_average, router_files, started, wait_up
from routerbench.settings import REPO

from llm_rollout.testbed.procs import free_port
from llm_rollout.testbed.traces import PROJECT_ATTRIBUTE, TraceBackend

MAX_PER_CORE_LOSS = 0.10
MAX_ADDED_P50_MS = 0.2


def variants(sink: str, phoenix: str) -> dict[str, tuple[str, ...]]:
    on = ("--trace-sample-ratio", "1.0", "--otlp-endpoint")
    return {
        "off": (),
        "on": (*on, sink),
        "on+content": (*on, sink, "--trace-content"),
        "on, ratio 0.1": ("--trace-sample-ratio", "0.1", "--otlp-endpoint", sink),
        "on, phoenix": (*on, phoenix),
    }


def sink_config(workdir: Path, port: int) -> Path:
    """nginx answering every OTLP export with 200, the body read and dropped."""
    tmp = workdir / "sink-tmp"
    tmp.mkdir(exist_ok=True)
    conf = workdir / "sink.conf"
    conf.write_text(f"""\
worker_processes 1;
pid {workdir}/sink.pid;
error_log {workdir}/sink-error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {tmp};
    client_max_body_size 64m;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 ""; }}
    }}
}}
""")
    return conf


def exported(metrics_url: str) -> float:
    with urllib.request.urlopen(metrics_url, timeout=5) as r:
        text = r.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith('llm_router_trace_spans_total{outcome="exported"}')
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    tool = "wrk" if shutil.which("wrk") else "python"
    runs: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="tracing-cost-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        router_files(workdir)
        traces = TraceBackend.start(workdir / "phoenix")
        stack.callback(traces.stop)
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO / "operator"),
            "OTEL_RESOURCE_ATTRIBUTES": f"{PROJECT_ATTRIBUTE}=tracing-cost",
        }
        sink_port = free_port()
        conf = sink_config(workdir, sink_port)
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        sink_argv = [nginx, "-p", str(workdir), "-c", str(conf), "-g", "daemon off;"]
        sink = stack.enter_context(started("otlp-sink", sink_argv, workdir, env))
        wait_up(f"http://127.0.0.1:{sink_port}/health", sink)
        port = free_port()
        backend = stack.enter_context(
            started("backend", backend_argv(port, 0.01, 20), workdir, env)
        )
        backend_url = f"http://127.0.0.1:{port}"
        wait_up(backend_url + "/health", backend)
        load0 = load_average()
        named = variants(f"http://127.0.0.1:{sink_port}/v1/traces", traces.otlp_endpoint)
        order = list(named)
        for i in range(args.rounds):
            k = i % len(order)
            for name in order[k:] + order[:k]:
                row = measure(f"router-{name}", backend_url, workdir, tool, env, named[name])
                runs.setdefault(name, []).append(row)
                print(name, json.dumps({k: round(v, 3) for k, v in row.items()}), flush=True)
        load1 = load_average()
        stored = len(traces.spans("tracing-cost"))
    keys = list(runs["off"][0])
    ratios = {
        name: {
            k: statistics.median(r[k] / o[k] for o, r in zip(runs["off"], rows, strict=True))
            for k in keys
        }
        for name, rows in runs.items()
    }
    added_p50 = {
        name: statistics.median(
            r["p50_ms"] - o["p50_ms"] for o, r in zip(runs["off"], rows, strict=True)
        )
        for name, rows in runs.items()
    }
    print(f"\nload average {load0} -> {load1}; saturation load from {tool}; ")
    print(f"spans stored by phoenix: {stored} (it falls behind at saturation: the rest")
    print("were dropped by the router, and counted, queue_full)\n")
    print("| variant | " + " | ".join(f"{k} / off" for k in keys) + " | p50 added (ms) |")
    print("|---|" + "---:|" * (len(keys) + 1))
    for name in runs:
        cells = " | ".join(f"{ratios[name][k]:.3f}" for k in keys)
        print(f"| {name} | {cells} | {added_p50[name]:+.3f} |")
    on = ratios["on"]
    ok = on["rps_per_core"] >= 1 - MAX_PER_CORE_LOSS and added_p50["on"] <= MAX_ADDED_P50_MS
    print(
        f"\ntracing on, ratio 1.0: req/s per core x{on['rps_per_core']:.3f} "
        f"(target >= {1 - MAX_PER_CORE_LOSS:.2f}), p50 {added_p50['on']:+.3f} ms "
        f"(target <= +{MAX_ADDED_P50_MS} ms): {'PASS' if ok else 'MISS'}"
    )
    print(json.dumps({"runs": runs, "ratios": ratios, "added_p50_ms": added_p50, "stored": stored}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

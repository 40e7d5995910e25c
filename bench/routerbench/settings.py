"""What a run sends, and the targets it is judged against."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "bench" / "router_bench.py"  # also the backend (--serve-backend)
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

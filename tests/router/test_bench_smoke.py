"""`bench/router_bench.py --quick` runs end to end: every target answers, no feedback is lost.

A smoke test of the benchmark script only: it asserts no timing (speed and memory targets
are checked by `make bench` and reported in docs/benchmarks.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NGINX = "/usr/sbin/nginx"


def test_quick_benchmark_answers_everywhere_and_loses_no_feedback(tmp_path: Path) -> None:
    with_nginx = os.access(NGINX, os.X_OK)  # `make test` installs it (hack/install-deps.sh)
    out = tmp_path / "bench.json"
    cmd = [
        sys.executable,
        str(REPO / "bench" / "router_bench.py"),
        "--quick",
        "--json-out",
        str(out),
        *([] if with_nginx else ["--no-nginx"]),
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    assert run.returncode == 0, f"{run.stdout[-3000:]}\n{run.stderr[-3000:]}"

    res = json.loads(out.read_text())
    expected = {"direct", "router"} | ({"nginx"} if with_nginx else set())
    assert set(res["targets"]) == expected
    for name, t in res["targets"].items():
        assert t["errors"] == 0, (name, t["error_samples"])
        assert t["requests"] > 0 and t["streams"] > 0 and t["sat_requests"] > 0, name
    fb = res["feedback"]
    assert fb["sent"] > 0
    assert fb["accepted_2xx"] == fb["sent"]
    assert fb["counted"] == fb["sent"] and fb["lost"] == 0
    assert res["broken"] == []
    assert "| router |" in run.stdout  # the markdown report

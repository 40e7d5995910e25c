"""How the operator holds up as LLMDeployments grow: N rollouts in analysis on the bed.

    .venv/bin/python bench/scale.py --n 100 --n 200 --duration 180
    .venv/bin/python bench/scale.py --quick          # N=20 for 60 s (a smoke test)

For each N, on a fresh bed (kube-apiserver, etcd, Prometheus on this machine) with the
kubelet stand-in: N LLMDeployments are created, each promoted at once, then given a
second release that stays in analysis (a long minDuration) with two gates: preset count
gates on router-shaped counters this script serves and grows (`--gates counts`, batched
by the operator), or Threshold gates on one user query (`--gates value`). The operator
(`llm-rollout operator`, one process) then runs for `--duration` seconds. Measured, per N:

- time until every object has a first status, and until every one is in analysis;
- the interval between successive analyses of each object (status.lastAnalysisTime),
  p50 and p99, against `analysis.interval`;
- analyses done / due over the run;
- the share of gate verdicts that are Error (the metrics are there: any Error is the
  operator's own overload);
- the operator's RSS and CPU, and the API server's and Prometheus' CPU;
- PromQL queries per second that Prometheus answered, and the operator's by form.

Results print as a table; `--json-out` keeps them. Figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
    generate_latest,
)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "operator"))

from llm_rollout.testbed import TestBed  # noqa: E402
from llm_rollout.testbed.procs import free_port, stop_pid  # noqa: E402

NAMESPACE = "scale"
QUALITY = 'max(bench_quality{namespace="{{ namespace }}", deployment="{{ name }}"})'
CLK_TCK = os.sysconf("SC_CLK_TCK")


# Gates per object. "counts": the preset count gates most rollouts use (feedback and
# error rate, read from router-shaped counters this script serves and grows), which the
# operator batches; "value": two Threshold gates on one user query, asked per object.
COUNT_GATES = [
    {"name": "thumbs", "kind": "Ratio", "metric": "feedback-positive-rate", "min": 0.5},
    {"name": "errors", "kind": "Ratio", "metric": "error-rate", "max": 0.5},
]
VALUE_GATES = [
    {"name": "quality", "kind": "Threshold", "metric": "quality", "min": 0.5},
    {"name": "quality-max", "kind": "Threshold", "metric": "quality", "max": 2},
]


def spec(revision: str, interval: int, gates: str = "counts") -> dict[str, Any]:
    return {
        "release": {
            "model": {"name": "assistant", "revision": revision},
            "template": {"spec": {"containers": [{"name": "app", "image": "app:1"}]}},
        },
        "metrics": [{"name": "quality", "query": QUALITY}],
        "analysis": {"interval": f"{interval}s", "window": "1m", "errorLimit": 100},
        "stages": [
            {
                "name": "experts",
                "cohorts": ["everyone"],
                "minDuration": "10h",
                "maxDuration": "20h",
                "gates": COUNT_GATES if gates == "counts" else VALUE_GATES,
            }
        ],
        "cohorts": [{"name": "everyone"}],
        "defaultCohort": "everyone",
    }


def release_ids(interval: int, gates: str) -> list[str]:
    from llm_rollout.api import LLMDeploymentSpec, release_id

    return [
        release_id(LLMDeploymentSpec.model_validate(spec(r, interval, gates))) for r in ("r1", "r2")
    ]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def operator_api_requests(metrics_url: str) -> float | None:
    """llm_rollout_kube_requests_total summed over verbs (None when not exported)."""
    with urllib.request.urlopen(metrics_url, timeout=30) as resp:
        text = resp.read().decode()
    lines = [ln for ln in text.splitlines() if ln.startswith("llm_rollout_kube_requests_total{")]
    return sum(float(ln.rsplit(" ", 1)[1]) for ln in lines) if lines else None


def queries_answered(prometheus_url: str) -> float:
    with urllib.request.urlopen(prometheus_url + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("prometheus_http_requests_total{") and (
            'handler="/api/v1/query"' in line or 'handler="/api/v1/query_range"' in line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


@dataclass
class Result:
    code: str
    n: int
    interval: float
    duration: float
    first_status_s: float
    all_analysing_s: float
    interval_p50: float
    interval_p99: float
    analyses_done_per_due: float
    error_verdict_share: float
    operator_rss_mib: float
    operator_cpu: float
    apiserver_cpu: float
    prometheus_cpu: float
    queries_per_s: float
    # Kubernetes API requests per analysis done (None: an operator without the metric).
    api_requests_per_analysis: float | None
    # With --restart: the operator restarted with every object in analysis; seconds until
    # each was analysed again, and the share of Error verdicts in the minute after.
    gates: str = "counts"
    # The operator's queries/s by form (grouped, baseline, single); None: not exported.
    operator_queries_per_s: dict[str, float] | None = None
    restart_recovery_s: float | None = None
    restart_error_share: float | None = None


def kubectl(bed: TestBed, *args: str, input_text: str | None = None) -> str:
    return bed.tool("kubectl", *args, input_text=input_text, timeout=600)


def apply_in_batches(bed: TestBed, docs: list[dict[str, Any]], size: int = 200) -> None:
    for start in range(0, len(docs), size):
        kubectl(bed, "apply", "-f", "-", input_text=yaml.safe_dump_all(docs[start : start + size]))


def objects(bed: TestBed) -> list[dict[str, Any]]:
    out = kubectl(bed, "-n", NAMESPACE, "get", "llmdeployments", "-o", "json")
    return list(json.loads(out)["items"])


@contextmanager
def metrics_target(bed: TestBed, n: int, releases: list[str]) -> Iterator[None]:
    """The user metric of the value gates, and the router's feedback and request
    counters of every object and release, growing every 5 s (3 in 4 thumbs up, 1 in
    20 requests a 500), so the count gates have evidence to judge."""
    disable_created_metrics()  # half the page: no _created series per counter
    registry = CollectorRegistry()
    quality = Gauge("bench_quality", "quality", ["namespace", "deployment"], registry=registry)
    live = ["namespace", "deployment", "release", "cohort"]
    feedback = Counter("llm_feedback", "f", [*live, "source", "rating"], registry=registry)
    requests = Counter("llm_router_requests", "r", [*live, "code"], registry=registry)
    series = []
    for i in range(n):
        quality.labels(NAMESPACE, f"bot-{i}").set(0.9)
        for release in releases:
            labels = (NAMESPACE, f"bot-{i}", release, "everyone")
            series.append(
                (
                    feedback.labels(*labels, "user", "positive"),
                    feedback.labels(*labels, "user", "negative"),
                    requests.labels(*labels, "200"),
                    requests.labels(*labels, "500"),
                )
            )
    stop = threading.Event()
    # Served as rendered by the grower: at thousands of series, rendering on each scrape
    # (1 s interval, 1 s timeout on the bed) would time out on a loaded machine, and
    # the rollouts would see gaps the operator did not make.
    page = [generate_latest(registry)]

    def grow() -> None:
        while not stop.wait(5.0):
            for up, down, ok, failed in series:
                up.inc(3)
                down.inc(1)
                ok.inc(19)
                failed.inc(1)
            page[0] = generate_latest(registry)

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = page[0]
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE_LATEST)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    grower = threading.Thread(target=grow, daemon=True)
    grower.start()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    bed.add_scrape_target("scale", f"127.0.0.1:{server.server_address[1]}")
    try:
        yield
    finally:
        stop.set()
        grower.join(10)
        server.shutdown()
        thread.join(5)


def operator_queries(metrics_url: str) -> dict[str, float]:
    """llm_rollout_prometheus_queries_total by form (empty: not exported)."""
    with urllib.request.urlopen(metrics_url, timeout=30) as resp:
        text = resp.read().decode()
    sent: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("llm_rollout_prometheus_queries_total{"):
            form = line.split('form="', 1)[1].split('"', 1)[0]
            sent[form] = float(line.rsplit(" ", 1)[1])
    return sent


def run_one(
    n: int,
    interval: int,
    duration: float,
    log_dir: Path,
    operator_src: Path | None = None,
    restart: bool = False,
    operator_flags: tuple[str, ...] = (),
    gates: str = "counts",
) -> Result:
    """One N on a fresh bed; `operator_src`: run the operator package found there (a
    checkout of another commit, for a baseline in the same run)."""
    from kubernetes import config as kconfig

    from llm_rollout.testbed.kubelet import KubeletStandIn

    bed = TestBed.start()
    operator: subprocess.Popen[bytes] | None = None
    stand_in: Any = None
    try:
        for crd in sorted((REPO / "crds").glob("*.yaml")):
            kubectl(bed, "apply", "--server-side", "-f", str(crd))
        kubectl(bed, "wait", "--for=condition=established", "--timeout=60s", "crd", "--all")
        kubectl(bed, "create", "namespace", NAMESPACE)
        stand_in = KubeletStandIn(
            kconfig.new_client_from_config(config_file=bed.state.kubeconfig), NAMESPACE
        )
        with metrics_target(bed, n, release_ids(interval, gates)):
            docs = [
                {
                    "apiVersion": "rollout.llmops.io/v1alpha1",
                    "kind": "LLMDeployment",
                    "metadata": {"name": f"bot-{i}", "namespace": NAMESPACE},
                    "spec": spec("r1", interval, gates),
                }
                for i in range(n)
            ]
            apply_in_batches(bed, docs)
            env = dict(os.environ)
            if operator_src is not None:
                env["PYTHONPATH"] = str(operator_src)
            which = "baseline" if operator_src else "current"
            metrics_port = free_port()
            operator_metrics = f"http://127.0.0.1:{metrics_port}/metrics"
            argv = [
                sys.executable, "-m", "llm_rollout.cli", "operator",
                "--kubeconfig", bed.state.kubeconfig,
                "--prometheus-url", bed.state.prometheus_url,
                "--namespace", NAMESPACE,
                "--metrics-listen", f"127.0.0.1:{metrics_port}",
                *operator_flags,
            ]  # fmt: skip

            def start_operator() -> subprocess.Popen[bytes]:
                with open(log_dir / f"operator-{n}-{which}.log", "ab") as log:
                    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)

            operator = start_operator()
            started = time.monotonic()
            wait_all(bed, lambda o: (o.get("status") or {}).get("phase") == "Promoted", 600)
            first_status_s = time.monotonic() - started
            for doc in docs:
                doc["spec"] = spec("r2", interval, gates)
            apply_in_batches(bed, docs)
            wait_all(bed, lambda o: bool((o.get("status") or {}).get("gates")), 600)
            all_analysing_s = time.monotonic() - started

            pids = {
                "operator": operator.pid,
                **{k: bed.state.pids[k] for k in ("kube-apiserver", "prometheus")},
            }
            cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
            api0 = operator_api_requests(operator_metrics)
            sent0 = operator_queries(operator_metrics)
            q0, t0 = queries_answered(bed.state.prometheus_url), time.monotonic()
            seen: dict[str, list[str]] = {}
            verdicts: dict[str, int] = {}
            rss = 0.0
            while time.monotonic() - t0 < duration:
                for obj in objects(bed):
                    status = obj.get("status") or {}
                    at = status.get("lastAnalysisTime")
                    times = seen.setdefault(obj["metadata"]["name"], [])
                    if at and (not times or times[-1] != at):
                        times.append(at)
                        for gate in status.get("gates") or []:
                            verdicts[gate.get("verdict", "")] = (
                                verdicts.get(gate.get("verdict", ""), 0) + 1
                            )
                rss = max(rss, rss_mib(operator.pid))
                time.sleep(2)
            elapsed = time.monotonic() - t0
            cpu = {k: (cpu_seconds(p) - cpu0[k]) / elapsed for k, p in pids.items()}
            qps = (queries_answered(bed.state.prometheus_url) - q0) / elapsed
            api1 = operator_api_requests(operator_metrics)
            sent1 = operator_queries(operator_metrics)
            sent = {
                form: round((sent1[form] - sent0.get(form, 0.0)) / elapsed, 1) for form in sent1
            }
            recovery: tuple[float, float] | None = None
            if restart:
                stop_pid(operator.pid)
                operator = start_operator()
                recovery = measure_restart(bed, interval)
        gaps = []
        done = 0
        for times in seen.values():
            stamps = [_ts(t) for t in times]
            gaps += [b - a for a, b in itertools.pairwise(stamps)]
            done += max(len(stamps) - 1, 0)
        due = n * (elapsed / interval)
        total = sum(verdicts.values()) or 1
        gaps.sort()
        return Result(
            code="baseline" if operator_src else "current",
            n=n,
            interval=interval,
            duration=round(elapsed, 1),
            first_status_s=round(first_status_s, 1),
            all_analysing_s=round(all_analysing_s, 1),
            interval_p50=round(statistics.median(gaps), 2) if gaps else float("nan"),
            interval_p99=round(gaps[int(0.99 * (len(gaps) - 1))], 2) if gaps else float("nan"),
            analyses_done_per_due=round(done / due, 2),
            error_verdict_share=round(verdicts.get("Error", 0) / total, 3),
            operator_rss_mib=round(rss, 0),
            operator_cpu=round(cpu["operator"], 2),
            apiserver_cpu=round(cpu["kube-apiserver"], 2),
            prometheus_cpu=round(cpu["prometheus"], 2),
            queries_per_s=round(qps, 1),
            gates=gates,
            operator_queries_per_s=sent or None,
            restart_recovery_s=recovery[0] if recovery else None,
            restart_error_share=recovery[1] if recovery else None,
            api_requests_per_analysis=(
                round((api1 - api0) / done, 2)
                if api0 is not None and api1 is not None and done
                else None
            ),
        )
    finally:
        if operator is not None:
            stop_pid(operator.pid)
        if stand_in is not None:
            stand_in.close()
        bed.stop()


def measure_restart(bed: TestBed, interval: int) -> tuple[float, float]:
    """Right after a restart: seconds until every object was analysed by the new
    operator, then the share of Error verdicts among the analyses of the next minute."""
    restarted = time.time()
    started = time.monotonic()
    wait_all(bed, lambda o: _analysed_after(o, restarted), 900)
    recovery = time.monotonic() - started
    since = time.time()
    verdicts: dict[str, int] = {}
    seen: dict[str, str] = {}
    while time.time() - since < max(60.0, 3 * interval):
        for obj in objects(bed):
            status = obj.get("status") or {}
            at = status.get("lastAnalysisTime")
            name = obj["metadata"]["name"]
            if at and seen.get(name) != at and _ts(at) > since:
                seen[name] = at
                for gate in status.get("gates") or []:
                    verdict = gate.get("verdict", "")
                    verdicts[verdict] = verdicts.get(verdict, 0) + 1
        time.sleep(2)
    total = sum(verdicts.values()) or 1
    return round(recovery, 1), round(verdicts.get("Error", 0) / total, 3)


def _analysed_after(obj: dict[str, Any], moment: float) -> bool:
    at = (obj.get("status") or {}).get("lastAnalysisTime")
    return isinstance(at, str) and _ts(at) > moment


def _ts(text: str) -> float:
    from llm_rollout.kube.times import parse_time

    moment = parse_time(text)
    assert moment is not None
    return moment.timestamp()


def wait_all(bed: TestBed, ok: Any, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = objects(bed)
        if items and all(ok(o) for o in items):
            return time.monotonic()
        time.sleep(1)
    raise TimeoutError(f"not every object got there within {timeout:.0f}s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, action="append", help="number of LLMDeployments")
    parser.add_argument("--interval", type=int, default=10, help="analysis.interval, seconds")
    parser.add_argument("--duration", type=float, default=180.0, help="seconds measured per N")
    parser.add_argument("--quick", action="store_true", help="N=20 for 60 s")
    parser.add_argument("--json-out", type=Path)
    parser.add_argument(
        "--gates",
        choices=["counts", "value"],
        default="counts",
        help="counts: preset count gates on router counters (batched); value: two "
        "Threshold gates on a user query (per object)",
    )
    parser.add_argument(
        "--current-flags",
        action="append",
        default=[],
        metavar="FLAGS",
        help="also run the current operator with these extra flags (space-separated; "
        "repeatable), e.g. --current-flags='--prometheus-max-in-flight 1000'",
    )
    parser.add_argument(
        "--restart",
        action="store_true",
        help="then restart the operator with every object in analysis and measure recovery",
    )
    parser.add_argument(
        "--baseline-ref",
        help="also run each N with the operator of this git commit (a worktree), same run",
    )
    parser.add_argument(
        "--baseline-only", action="store_true", help="with --baseline-ref: only the baseline"
    )
    args = parser.parse_args()
    ns = [20] if args.quick else (args.n or [100])
    duration = 60.0 if args.quick else args.duration
    log_dir = Path(tempfile.mkdtemp(prefix="llm-rollout-scale-"))
    baseline: Path | None = None
    if args.baseline_ref:
        baseline = log_dir / "baseline"
        subprocess.run(
            [
                "git",
                "-C",
                str(REPO),
                "worktree",
                "add",
                "--detach",
                str(baseline),
                args.baseline_ref,
            ],
            check=True,
            capture_output=True,
        )
    results = []
    try:
        for n in ns:
            runs: list[tuple[Path | None, tuple[str, ...]]] = (
                [] if args.baseline_only else [(None, ())]
            )
            runs += [(None, tuple(flags.split())) for flags in args.current_flags]
            if baseline is not None:
                runs.append((baseline / "operator", ()))
            for src, flags in runs:
                which = "baseline" if src else "current" + (f" {' '.join(flags)}" if flags else "")
                print(f"[scale] N={n} ({which}): {duration:.0f}s (logs in {log_dir})", flush=True)
                result = run_one(
                    n, args.interval, duration, log_dir, src, args.restart, flags, args.gates
                )
                result.code = which
                results.append(result)
                print(json.dumps(asdict(results[-1])), flush=True)
    finally:
        if baseline is not None:
            subprocess.run(
                ["git", "-C", str(REPO), "worktree", "remove", "--force", str(baseline)],
                check=False,
            )
    header = list(asdict(results[0]))
    print("\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for r in results:
        print("| " + " | ".join(str(v) for v in asdict(r).values()) + " |")
    if args.json_out:
        args.json_out.write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How the operator holds up as LLMDeployments grow: N rollouts in analysis on the bed.

    .venv/bin/python bench/scale.py --n 100 --n 200 --duration 180
    .venv/bin/python bench/scale.py --quick          # N=20 for 60 s (a smoke test)

For each N, on a fresh bed (kube-apiserver, etcd, Prometheus on this machine) with the
kubelet stand-in: N LLMDeployments are created, each promoted at once, then given a
second release that stays in analysis (a long minDuration) with two Threshold gates on
a metric this script serves to Prometheus. The operator (`llm-rollout operator`, one
process) then runs for `--duration` seconds. Measured, per N:

- time until every object has a first status, and until every one is in analysis;
- the interval between successive analyses of each object (status.lastAnalysisTime),
  p50 and p99, against `analysis.interval`;
- analyses done / due over the run;
- the share of gate verdicts that are Error (the metrics are there: any Error is the
  operator's own overload);
- the operator's RSS and CPU, and the API server's and Prometheus' CPU;
- PromQL queries per second that Prometheus answered.

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
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry, Gauge, start_http_server

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "operator"))

from llm_rollout.testbed import TestBed  # noqa: E402
from llm_rollout.testbed.procs import free_port, stop_pid  # noqa: E402

NAMESPACE = "scale"
QUALITY = 'max(bench_quality{namespace="{{ namespace }}", deployment="{{ name }}"})'
CLK_TCK = os.sysconf("SC_CLK_TCK")


def spec(revision: str, interval: int) -> dict[str, Any]:
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
                "gates": [
                    {"name": "quality", "kind": "Threshold", "metric": "quality", "min": 0.5},
                    {"name": "quality-max", "kind": "Threshold", "metric": "quality", "max": 2},
                ],
            }
        ],
        "cohorts": [{"name": "everyone"}],
        "defaultCohort": "everyone",
    }


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
def metrics_target(bed: TestBed, n: int) -> Iterator[None]:
    registry = CollectorRegistry()
    quality = Gauge("bench_quality", "quality", ["namespace", "deployment"], registry=registry)
    for i in range(n):
        quality.labels(NAMESPACE, f"bot-{i}").set(0.9)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    bed.add_scrape_target("scale", f"127.0.0.1:{server.server_address[1]}")
    try:
        yield
    finally:
        server.shutdown()
        thread.join(5)


def run_one(
    n: int,
    interval: int,
    duration: float,
    log_dir: Path,
    operator_src: Path | None = None,
    restart: bool = False,
    operator_flags: tuple[str, ...] = (),
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
        with metrics_target(bed, n):
            docs = [
                {
                    "apiVersion": "rollout.llmops.io/v1alpha1",
                    "kind": "LLMDeployment",
                    "metadata": {"name": f"bot-{i}", "namespace": NAMESPACE},
                    "spec": spec("r1", interval),
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
                doc["spec"] = spec("r2", interval)
            apply_in_batches(bed, docs)
            wait_all(bed, lambda o: bool((o.get("status") or {}).get("gates")), 600)
            all_analysing_s = time.monotonic() - started

            pids = {
                "operator": operator.pid,
                **{k: bed.state.pids[k] for k in ("kube-apiserver", "prometheus")},
            }
            cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
            api0 = operator_api_requests(operator_metrics)
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
                result = run_one(n, args.interval, duration, log_dir, src, args.restart, flags)
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

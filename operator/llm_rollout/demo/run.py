"""`make demo` / `python -m llm_rollout.demo`: the main job, end to end, on the local bed.

Brings up the bed (a real kube-apiserver, etcd and Prometheus), installs the CRD,
starts the operator, the router, three local model servers (release A, a good
release B' and a regressed release B'') and simulated users, then runs two
rollouts in compressed time:

1. B' goes experts -> beta -> everyone in sticky steps and is promoted;
2. B'' (it translates brand names) is rolled back at the experts stage, before
   any beta user sees it.

The bed has no kubelet: the model servers are local processes, and a stand-in
marks a release's Deployment available once its server answers its health check.
Exit status 0 only when both rollouts ended as expected and the router's and
Prometheus' numbers agree with what the simulated users did.

The scenarios and their settings are in `scenario`, the closing summary in `summary`.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from llm_rollout import GROUP, PLURAL, VERSION
from llm_rollout.api import LLMDeploymentSpec, release_id
from llm_rollout.cli.plot import draw, fetch_timeline
from llm_rollout.cli.statusview import render_status
from llm_rollout.demo.loop import dataset_loop, loop_problems
from llm_rollout.demo.scenario import (
    FINAL,
    JUDGE_KEY,
    NAME,
    NAMESPACE,
    TRACE_PROJECT,
    DemoConfig,
    DemoResult,
    Scenario,
    demo_spec,
    eval_example,
)
from llm_rollout.demo.simulator import Simulator
from llm_rollout.kube.times import parse_time
from llm_rollout.testbed import TestBed
from llm_rollout.testbed.bed import REPO_ROOT
from llm_rollout.testbed.kubelet import KubeletStandIn
from llm_rollout.testbed.procs import free_port, spawn, stop_pid
from llm_rollout.testbed.traces import PROJECT_ATTRIBUTE, TraceBackend


class Demo:
    # Whether the demo starts a trace backend and traces into it (the pods demo does not).
    traced = True

    def __init__(
        self, config: DemoConfig, bed: TestBed | None = None, traces: TraceBackend | None = None
    ) -> None:
        self.config = config
        self.bed = bed
        self.owns_bed = bed is None
        self.traces = traces
        self.owns_traces = traces is None
        self.pids: list[int] = []
        self.work = Path(tempfile.mkdtemp(prefix="llm-rollout-demo-"))
        self.judge_port = free_port()
        judge = f"http://127.0.0.1:{self.judge_port}/v1"
        self.specs = {
            "A": demo_spec(config, revision="2026-11-01", judge_url=judge),
            "B'": demo_spec(config, revision="2026-11-15", judge_url=judge),
            "B''": demo_spec(config, revision="2026-11-15", prompt="v8-terse", judge_url=judge),
        }
        self.ids = {
            label: release_id(LLMDeploymentSpec.model_validate(s))
            for label, s in self.specs.items()
        }
        self.servers: dict[str, str] = {}  # release id -> base URL
        self.router_url = ""

    # -- plumbing ----------------------------------------------------------------

    def say(self, text: str) -> None:
        print(f"[demo] {text}", flush=True)

    def _start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> int:
        proc = spawn(argv, self.work / f"{name}.log", tied_to_parent=True, env=env)
        self.pids.append(proc.pid)
        return proc.pid

    def _wait_http(
        self, url: str, what: str, timeout: float = 30.0, body: bytes | None = None
    ) -> None:
        """Until `url` answers 200 (a POST of the JSON `body` when given)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            request = urllib.request.Request(
                url,
                data=body,
                method="POST" if body is not None else "GET",
                headers={"content-type": "application/json"},
            )
            try:
                with urllib.request.urlopen(request, timeout=5) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(
            f"{what} did not answer {url} within {timeout:.0f}s (logs in {self.work})"
        )

    def _healthy(self, release: str) -> bool:
        url = self.servers.get(release)
        if url is None:
            return False
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def kubectl(self, *args: str, input: str | None = None) -> str:
        assert self.bed is not None
        result = subprocess.run(
            [
                str(Path(self.bed.state.bin_dir) / "kubectl"),
                "--kubeconfig",
                self.bed.state.kubeconfig,
                *args,
            ],
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def _object(self) -> dict[str, Any]:
        """The LLMDeployment as the API server has it (empty before it is created)."""
        out = self.kubectl(
            "get", f"{PLURAL}.{GROUP}", NAME, "-n", NAMESPACE, "--ignore-not-found", "-o", "json"
        )
        return dict(json.loads(out)) if out.strip() else {}

    def _apply(self, spec: dict[str, Any]) -> None:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "LLMDeployment",
            "metadata": {"name": NAME, "namespace": NAMESPACE},
            "spec": spec,
        }
        self.kubectl(
            "apply", "--server-side", "--force-conflicts", "-f", "-", input=json.dumps(body)
        )

    # -- phases ------------------------------------------------------------------

    def start_everything(self) -> None:
        py = sys.executable
        if self.bed is None:
            self.say("starting the local control plane (kube-apiserver, etcd) and Prometheus...")
            self.bed = TestBed.start()
        bed = self.bed
        self.say(f"kube-apiserver {bed.state.apiserver_url}, Prometheus {bed.state.prometheus_url}")
        for crd in sorted((REPO_ROOT / "crds").glob("*.yaml")):
            self.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd))
        self.kubectl(
            "wait", "--for", "condition=established", "--timeout", "60s", f"crd/{PLURAL}.{GROUP}"
        )
        self.kubectl("create", "namespace", NAMESPACE)

        profiles = {"A": "good", "B'": "good", "B''": "regressed"}
        for label, profile in profiles.items():
            port = free_port()
            self._start(
                f"model-{profile}-{self.ids[label]}",
                [
                    py,
                    "-m",
                    "llm_rollout.sim.model_server",
                    "--listen",
                    f"127.0.0.1:{port}",
                    "--profile",
                    profile,
                ],
            )
            self.servers[self.ids[label]] = f"http://127.0.0.1:{port}"
            self.say(
                f"model server for release {label} ({self.ids[label]}, {profile}) on port {port}"
            )
        self._start(
            "judge",
            [
                py,
                "-m",
                "llm_rollout.sim.judge",
                "--listen",
                f"127.0.0.1:{self.judge_port}",
                "--api-key",
                JUDGE_KEY,
            ],
        )
        self.say(f"deterministic LLM judge on port {self.judge_port}")
        for url in [*self.servers.values(), f"http://127.0.0.1:{self.judge_port}"]:
            self._wait_http(f"{url}/healthz", "model server")
        trace_flags: list[str] = []
        if self.traced:
            if self.traces is None:
                self.say("starting the trace backend (Arize Phoenix)...")
                self.traces = TraceBackend.start(self.work / "phoenix")
            trace_flags = ["--otlp-endpoint", self.traces.otlp_endpoint]
            self.say(
                f"trace backend on {self.traces.url} (project {TRACE_PROJECT}): every answer "
                "with its checks and feedback, every analysis and decision, every eval case"
            )
        _, dataset = eval_example()
        dataset["metadata"]["namespace"] = NAMESPACE
        self.kubectl("apply", "-f", "-", input=json.dumps(dataset))
        self.kubectl(
            "create",
            "secret",
            "generic",
            "judge-api-key",
            "-n",
            NAMESPACE,
            f"--from-literal=token={JUDGE_KEY}",
        )

        backends = {f"{NAMESPACE}/{NAME}/{rid}": url for rid, url in self.servers.items()}
        backend_file = self.backend_file = self.work / "backends.json"
        backend_file.write_text(json.dumps(backends))
        key_file = self.work / "feedback.key"
        key_file.write_text(secrets.token_hex(32) + "\n")
        self.router_port, router_metrics = free_port(), free_port()
        self.router_url = f"http://127.0.0.1:{self.router_port}"
        self._start(
            "router",
            [
                py,
                "-m",
                "llm_rollout.cli",
                "router",
                "--listen",
                f"127.0.0.1:{self.router_port}",
                "--metrics-listen",
                f"127.0.0.1:{router_metrics}",
                "--kube",
                "--kubeconfig",
                bed.state.kubeconfig,
                "--namespace",
                NAMESPACE,
                "--backend-file",
                str(backend_file),
                "--token-key-file",
                str(key_file),
                *trace_flags,
                # The prompts and answers are the demo's own: recorded, so the regressed
                # release's bad answers can become eval cases.
                *(["--trace-content"] if trace_flags else []),
            ],
            env=self.trace_env,
        )
        operator_metrics = free_port()
        self._start(
            "operator",
            [
                py,
                "-m",
                "llm_rollout.cli",
                "operator",
                "--kubeconfig",
                bed.state.kubeconfig,
                "--prometheus-url",
                bed.state.prometheus_url,
                "--namespace",
                NAMESPACE,
                "--metrics-listen",
                f"127.0.0.1:{operator_metrics}",
                "--scale-down-delay",
                "30",
                "--retention",
                "600",
                "--eval-executor",
                "local",
                "--eval-backend-file",
                str(backend_file),
                *trace_flags,
            ],
            env=self.trace_env,
        )
        self._wait_http(f"http://127.0.0.1:{router_metrics}/healthz", "router")
        self._wait_http(f"http://127.0.0.1:{operator_metrics}/healthz", "operator")
        bed.add_scrape_target("router", f"127.0.0.1:{router_metrics}")
        bed.add_scrape_target("operator", f"127.0.0.1:{operator_metrics}")
        self.say(f"router on {self.router_url}, operator running; logs in {self.work}")

        from kubernetes import config as kconfig

        api_client = kconfig.new_client_from_config(config_file=bed.state.kubeconfig)
        self.say(
            "no kubelet here: a stand-in marks a release's Deployment available once "
            "its model server answers /healthz"
        )
        self.kubelet = KubeletStandIn(api_client, NAMESPACE, is_ready=self._healthy)

    @property
    def trace_env(self) -> dict[str, str]:
        """The environment of the demo's traced processes: their spans in one project."""
        return {
            **os.environ,
            "OTEL_RESOURCE_ATTRIBUTES": f"{PROJECT_ATTRIBUTE}={TRACE_PROJECT}",
            "OTEL_BSP_SCHEDULE_DELAY": "500",
        }

    def cli(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "llm_rollout.cli", *args]
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, env=self.trace_env, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"llm-rollout {' '.join(args)}: {result.stderr.strip()[-2000:]}")
        return result

    async def _watch(self, scenario: Scenario) -> None:
        """Wait for the scenario's release to reach a final phase, showing progress."""
        deadline = time.monotonic() + self.config.scenario_timeout
        last = ""
        while time.monotonic() < deadline:
            obj = await asyncio.to_thread(self._object)
            status = obj.get("status") or {}
            ours = (
                status.get("release") == scenario.release
                or (status.get("candidate") or {}).get("id") == scenario.release
            )
            line = " ".join(str(status[k]) for k in ("phase", "stage", "step") if status.get(k))
            if self.config.live and sys.stdout.isatty():
                print("\033[2J\033[H" + f"{scenario.title}\n\n" + render_status(obj), flush=True)
            elif line and line != last:  # nothing to show before the operator's first word
                self.say(f"  {line}: {status.get('message', '')}")
            last = line
            if (
                ours
                and status.get("phase") in FINAL
                and status.get("observedGeneration") == obj["metadata"]["generation"]
            ):
                scenario.phase = status["phase"]
                scenario.stage = status.get("stage", "")
                return
            await asyncio.sleep(1.0)
        scenario.phase = "Timeout"

    async def run_scenario(self, scenario: Scenario, spec: dict[str, Any]) -> None:
        self.say(f"=== {scenario.title}")
        scenario.started = time.time()
        self._apply(spec)
        await self._watch(scenario)
        scenario.ended = time.time()
        history = (self._object().get("status") or {}).get("history", [])
        since = scenario.started - 1  # history is bounded: select by time, not by count
        scenario.decisions = [
            d
            for d in history
            if d.get("release") == scenario.release and _timestamp(d["time"]) >= since
        ]
        self.say(f"    ended {scenario.phase} at stage {scenario.stage or '-'}")

    def _wait_routed(self, timeout: float = 15.0) -> None:
        """Until the router has seen release A's routing (its watch lags the status
        write by up to a second): traffic starts only once it can be served."""
        url = f"{self.router_url}/d/{NAMESPACE}/{NAME}/v1/chat/completions"
        body = json.dumps(
            {"model": "assistant", "messages": [{"role": "user", "content": "ping"}]}
        ).encode()
        self._wait_http(url, f"the router serving {NAMESPACE}/{NAME}", timeout, body)

    def _prometheus(self, promql: str) -> list[dict[str, Any]]:
        assert self.bed is not None
        url = f"{self.bed.state.prometheus_url}/api/v1/query?" + urllib.parse.urlencode(
            {"query": promql}
        )
        with urllib.request.urlopen(url, timeout=10) as resp:
            return list(json.loads(resp.read())["data"]["result"])

    def _plot(self, scenario: Scenario, path: Path) -> None:
        assert self.bed is not None
        obj = self._object()
        stages = [s["name"] for s in obj["spec"]["stages"]]
        timeline = fetch_timeline(
            self.bed.state.prometheus_url,
            NAMESPACE,
            NAME,
            start=scenario.started - 1,
            end=scenario.ended + 3,
            step=1.0,
            history=scenario.decisions,
            stage_names=stages,
            feedback_window=self.config.window,
        )
        scenario.plot = draw(timeline, path, title=scenario.title)

    async def run(self) -> DemoResult:
        problems: list[str] = []
        stop = asyncio.Event()
        self.start_everything()
        first = Scenario("Release A becomes stable (first release)", self.ids["A"], "Promoted")
        await self.run_scenario(first, self.specs["A"])
        if first.phase != "Promoted":
            problems.append(f"release A: expected Promoted, got {first.phase}")

        await asyncio.to_thread(self._wait_routed)
        sim = Simulator(
            self.router_url,
            NAMESPACE,
            NAME,
            self.specs["A"]["checks"],
            load=self.config.load,
        )
        traffic = asyncio.create_task(sim.run(stop))
        self.say("simulated users are chatting and rating (experts, beta, everyone)")
        scenarios = [
            Scenario(
                "Rollout 1: release B' (good) experts -> beta -> everyone",
                self.ids["B'"],
                "Promoted",
            ),
            Scenario(
                "Rollout 2: release B'' (regressed: translates brand names)",
                self.ids["B''"],
                "RolledBack",
                expected_stage="experts",
            ),
        ]
        try:
            for scenario, label in zip(scenarios, ("B'", "B''"), strict=True):
                await self.run_scenario(scenario, self.specs[label])
        finally:
            stop.set()
            record = await traffic
        await asyncio.sleep(3)  # a last scrape of the router's counters

        for scenario in scenarios:
            if scenario.phase != scenario.expected:
                problems.append(
                    f"{scenario.title}: expected {scenario.expected}, got {scenario.phase}"
                )
            if scenario.expected_stage and scenario.stage != scenario.expected_stage:
                problems.append(
                    f"{scenario.title}: expected to end at stage "
                    f"{scenario.expected_stage}, ended at {scenario.stage}"
                )
        regressed = self.ids["B''"]
        if regressed in record.releases_seen_by("beta"):
            problems.append("a beta user reached the regressed release B''")
        beta_in_prom = self._prometheus(
            f'sum(llm_router_requests_total{{namespace="{NAMESPACE}",deployment="{NAME}",'
            f'release="{regressed}",cohort="beta"}}) > 0'
        )
        if beta_in_prom:
            problems.append("the router counted beta requests served by B''")
        prom_feedback = {
            (
                r["metric"]["release"],
                r["metric"]["cohort"],
                r["metric"]["source"],
                r["metric"]["rating"],
            ): float(r["value"][1])
            for r in self._prometheus(
                f"sum by (release, cohort, source, rating) (llm_feedback_total"
                f'{{namespace="{NAMESPACE}",deployment="{NAME}"}}) > 0'
            )
        }
        accepted = {k: float(v) for k, v in record.feedback_accepted.items() if v}
        if prom_feedback != accepted:
            problems.append(
                f"feedback in Prometheus {prom_feedback} != accepted by the "
                f"router as the simulator saw it {accepted}"
            )
        eval_scores = self._prometheus(
            f'llm_eval_score{{namespace="{NAMESPACE}",deployment="{NAME}",criterion="composite"}}'
        )
        evaluated = {r["metric"]["release"] for r in eval_scores}
        for label in ("B'", "B''"):
            if self.ids[label] not in evaluated:
                problems.append(f"no eval score of release {label} in Prometheus")
        loop = None
        if self.traces is not None:
            loop = await asyncio.to_thread(dataset_loop, self)
            problems += loop_problems(loop)
        for i, scenario in enumerate(scenarios, 1):
            self._plot(scenario, self.config.out_dir / f"demo-rollout-{i}.png")
        return DemoResult(
            scenarios=[first, *scenarios],
            record=record,
            releases=self.ids,
            problems=problems,
            prometheus_feedback=prom_feedback,
            eval_runs=self.kubectl("get", "llmevalruns", "-n", NAMESPACE),
            loop=loop,
            traces_url=self.traces.url if self.traces is not None else "",
        )

    def stop(self) -> None:
        kubelet = getattr(self, "kubelet", None)
        if kubelet is not None:
            kubelet.close()
        for pid in reversed(self.pids):
            stop_pid(pid)
        if self.bed is not None:
            for target in ("router", "operator"):
                self.bed.remove_scrape_target(target)
            if self.owns_bed:
                self.bed.stop()
        if self.traces is not None and self.owns_traces:
            self.traces.stop()


def _timestamp(text: str) -> float:
    when = parse_time(text)
    if when is None:
        raise ValueError(f"not a timestamp: {text!r}")
    return when.timestamp()

"""End to end in pods: the image built here, `helm install` of the chart, the demo's
rollouts on live traffic through the router's Service, and faults injected into the
pods mid-rollout (the leader, a model server, the chart itself)."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from llm_rollout.api import LLMDeploymentSpec, release_id
from llm_rollout.demo.pods import RELEASE_NAME, SYSTEM_NAMESPACE, PodsDemo
from llm_rollout.demo.scenario import JUDGE_KEY, NAME, NAMESPACE, DemoConfig, Scenario, eval_example
from llm_rollout.demo.simulator import Simulator
from tests.e2e.conftest import Installed

# Longer stages than the demo's, so a fault lands in the middle of a rollout.
SLOW = {"experts": ("30s", "300s"), "beta": ("20s", "300s"), "all": ("10s", "300s")}


def _json(demo: PodsDemo, *args: str) -> dict[str, Any]:
    return dict(json.loads(demo.kubectl(*args, "-o", "json")))


def test_demo_rollouts_in_pods(installed: Installed) -> None:
    result, demo = installed.result, installed.demo
    assert result.ok, result.problems
    assert [s.phase for s in result.scenarios] == ["Promoted", "Promoted", "RolledBack"]
    assert result.scenarios[2].stage == "experts"
    assert result.record.failed_requests == 0
    # The eval suite ran as Jobs (the Job executor), one per evaluated release.
    jobs = _json(demo, "-n", NAMESPACE, "get", "jobs")["items"]
    evaluated = {
        j["metadata"]["name"] for j in jobs if j.get("status", {}).get("succeeded", 0) >= 1
    }
    for label in ("B'", "B''"):
        assert any(demo.ids[label] in name for name in evaluated), (label, evaluated)


def test_chart_runs_on_its_own_service_accounts_with_leader_election(
    installed: Installed,
) -> None:
    demo = installed.demo
    pods = _json(demo, "-n", SYSTEM_NAMESPACE, "get", "pods")["items"]
    by_component: dict[str, list[dict[str, Any]]] = {}
    for pod in pods:
        component = pod["metadata"]["labels"].get("app.kubernetes.io/component", "")
        by_component.setdefault(component, []).append(pod)
    assert len(by_component["operator"]) == 2
    assert len(by_component["router"]) == 2
    assert {p["spec"]["serviceAccountName"] for p in by_component["operator"]} == {
        f"{RELEASE_NAME}"
    }
    assert {p["spec"]["serviceAccountName"] for p in by_component["router"]} == {
        f"{RELEASE_NAME}-router"
    }
    leader = demo.leader()
    assert any(leader.startswith(p["metadata"]["name"]) for p in by_component["operator"]), leader
    eval_pods = [
        p
        for p in _json(demo, "-n", NAMESPACE, "get", "pods")["items"]
        if "job-name" in p["metadata"]["labels"]
    ]
    assert eval_pods
    assert {p["spec"]["serviceAccountName"] for p in eval_pods} == {"llm-rollout-eval"}


def test_prometheus_finds_the_pods_through_kubernetes_service_discovery(
    installed: Installed,
) -> None:
    up = installed.demo._prometheus('up{job="pods"} == 1')
    components = sorted(r["metric"].get("component", "") for r in up)
    assert components == ["operator", "operator", "router", "router"], up


def test_helm_test_passes(installed: Installed) -> None:
    out = installed.demo.helm("test", RELEASE_NAME, "--namespace", SYSTEM_NAMESPACE)
    assert "Phase:          Succeeded" in out, out


def test_a_pod_resolves_cluster_names(installed: Installed) -> None:
    demo = installed.demo
    # Not `run --rm -i`: a pod that exits before kubectl attaches loses its output.
    demo.kubectl(
        "-n", NAMESPACE, "run", "dns-check", "--restart=Never",
        f"--image={demo.image.ref}", "--image-pull-policy=Never", "--command", "--",
        "python", "-c",
        "import socket; print(socket.gethostbyname('judge.demo.svc.cluster.local'))",
    )  # fmt: skip
    try:
        demo.kubectl(
            "-n", NAMESPACE, "wait", "pod/dns-check", "--timeout=120s",
            "--for=jsonpath={.status.phase}=Succeeded",
        )  # fmt: skip
        out = demo.kubectl("-n", NAMESPACE, "logs", "dns-check")
    finally:
        demo.kubectl("-n", NAMESPACE, "delete", "pod", "dns-check", "--wait=false")
    judge_ip = _json(demo, "-n", NAMESPACE, "get", "service", "judge")["spec"]["clusterIP"]
    assert judge_ip in out


# -- faults mid-rollout ---------------------------------------------------------------


def _release(demo: PodsDemo, revision: str) -> tuple[dict[str, Any], str]:
    """A good release with a new model revision, on the slower stages."""
    config = DemoConfig(durations=SLOW, live=False)
    spec = copy.deepcopy(demo.specs["B'"])
    spec["release"]["model"]["revision"] = revision
    for stage in spec["stages"]:
        stage["minDuration"], stage["maxDuration"] = config.durations[stage["name"]]
    return spec, release_id(LLMDeploymentSpec.model_validate(spec))


async def _rollout_with_fault(
    demo: PodsDemo,
    revision: str,
    *,
    when: Callable[[dict[str, Any]], bool],
    fault: Callable[[], None],
) -> tuple[Scenario, list[dict[str, Any]]]:
    """Roll out a new good release under simulated traffic; inject `fault` once the
    status satisfies `when`; return the finished scenario and its history."""
    spec, rid = _release(demo, revision)
    stop = asyncio.Event()
    sim = Simulator(demo.router_url, NAMESPACE, NAME, spec["checks"], load=demo.config.load)
    traffic = asyncio.create_task(sim.run(stop))
    scenario = Scenario(f"release {revision} with a fault", rid, "Promoted")
    demo.config.scenario_timeout = 420

    async def inject() -> None:
        while True:
            status = (await asyncio.to_thread(demo._object)).get("status") or {}
            candidate = (status.get("candidate") or {}).get("id")
            if candidate == rid and when(status):
                await asyncio.to_thread(fault)
                return
            await asyncio.sleep(0.5)

    injector = asyncio.create_task(inject())
    try:
        await demo.run_scenario(scenario, spec)
    finally:
        stop.set()
        await traffic
    assert injector.done(), "the rollout ended before the fault was injected"
    injector.result()
    return scenario, scenario.decisions


def _no_decision_twice(decisions: list[dict[str, Any]]) -> None:
    """Every step of the rollout was decided once: a second leader repeating a decision
    would show up as the same Advance twice."""
    moves = [(d["decision"], d.get("message", "")) for d in decisions if d["decision"] != "Hold"]
    assert len(moves) == len(set(moves)), moves
    assert [d["decision"] for d in decisions].count("Promote") == 1


async def test_leader_pod_deleted_mid_stage_standby_takes_over(installed: Installed) -> None:
    demo = installed.demo
    before = demo.leader()
    deleted: list[str] = []

    def delete_leader() -> None:
        pod = demo.leader().split("/")[0].split("_")[0]
        deleted.append(pod)
        demo.kubectl("-n", SYSTEM_NAMESPACE, "delete", "pod", pod, "--wait=false")

    scenario, decisions = await _rollout_with_fault(
        demo,
        "2026-12-01-leader",
        when=lambda status: status.get("stage") == "beta",
        fault=delete_leader,
    )
    assert scenario.phase == "Promoted", decisions
    _no_decision_twice(decisions)
    after = demo.leader()
    assert after and after != before, (before, after)
    assert deleted and not after.startswith(deleted[0])


async def test_helm_upgrade_and_rollback_mid_rollout_leave_it_unaffected(
    installed: Installed,
) -> None:
    demo = installed.demo
    revisions_before = len(json.loads(demo.helm("history", RELEASE_NAME, "-n", SYSTEM_NAMESPACE,
                                                 "-o", "json")))  # fmt: skip

    def upgrade_then_rollback() -> None:
        # A changed operator (verbose logs): both replicas are replaced, one at a time.
        demo.install_chart(extra=("operator.verbose=true",))
        demo.helm("rollback", RELEASE_NAME, "--namespace", SYSTEM_NAMESPACE, "--wait")

    scenario, decisions = await _rollout_with_fault(
        demo,
        "2026-12-01-helm",
        when=lambda status: status.get("stage") == "experts",
        fault=upgrade_then_rollback,
    )
    assert scenario.phase == "Promoted", decisions
    _no_decision_twice(decisions)
    history = json.loads(demo.helm("history", RELEASE_NAME, "-n", SYSTEM_NAMESPACE, "-o", "json"))
    assert len(history) == revisions_before + 2
    assert history[-1]["description"].startswith("Rollback")
    args = _json(demo, "-n", SYSTEM_NAMESPACE, "get", "deploy", RELEASE_NAME)["spec"]["template"][
        "spec"
    ]["containers"][0]["args"]
    assert "--verbose" not in args  # the rollback is what runs now


async def test_model_server_pod_deleted_while_streaming(installed: Installed) -> None:
    """A model server killed mid-answer: the client's stream ends (truncated, not
    hung), and the router counts it as a mid-stream failure."""
    demo = installed.demo
    ns, name = "streaming", "slow"
    demo.kubectl("create", "namespace", ns)
    spec = copy.deepcopy(demo.specs["A"])
    spec.pop("evals", None)
    for stage in spec["stages"]:
        stage["gates"] = [g for g in stage.get("gates", []) if g.get("metric") != "eval-score"]
    container = spec["release"]["template"]["spec"]["containers"][0]
    container["args"] += ["--latency-ms", "30000"]
    body = {
        "apiVersion": "rollout.llmops.io/v1alpha1",
        "kind": "LLMDeployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }
    demo.kubectl("apply", "-f", "-", input=json.dumps(body))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = _json(demo, "-n", ns, "get", "llmdeployment", name).get("status") or {}
        if status.get("phase") == "Promoted":
            break
        await asyncio.sleep(1)
    else:
        pytest.fail(f"{ns}/{name} was not promoted: {status}")

    def midstream() -> float:
        rows = demo._prometheus(
            f'sum(llm_router_upstream_errors_total{{namespace="{ns}",kind="midstream"}})'
        )
        return float(rows[0]["value"][1]) if rows else 0.0

    url = f"{demo.router_url}/d/{ns}/{name}/v1/chat/completions"
    request = {
        "model": name,
        "stream": True,
        "messages": [{"role": "user", "content": " ".join(["Acme Cloud stores invoices."] * 8)}],
    }
    pod = next(
        p["metadata"]["name"]
        for p in _json(demo, "-n", ns, "get", "pods")["items"]
        if p["metadata"]["name"].startswith(name)
    )
    # A first release is Promoted at once, before its pod is ready: until it is, the
    # router answers 502 (nothing can serve yet).
    async with aiohttp.ClientSession() as session:
        for _ in range(60):
            async with session.post(url, json=request, headers={"x-user-id": "probe"}) as resp:
                if resp.status == 200:
                    break
            await asyncio.sleep(1)
        else:
            pytest.fail(f"the router never served {ns}/{name}: {resp.status}")
    chunks: list[bytes] = []
    ended_by = ""
    started = time.monotonic()
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json=request, headers={"x-user-id": "streamer"}) as resp,
    ):
        assert resp.status == 200
        try:
            async for chunk in resp.content.iter_any():
                chunks.append(chunk)
                if len(chunks) == 1:
                    await asyncio.to_thread(
                        demo.kubectl, "-n", ns, "delete", "pod", pod, "--grace-period=0",
                        "--force", "--wait=false",
                    )  # fmt: skip
            ended_by = "eof"
        except aiohttp.ClientPayloadError as err:
            ended_by = f"truncated: {err}"
    took = time.monotonic() - started
    body_text = b"".join(chunks).decode(errors="replace")
    assert chunks, "no part of the answer arrived before the pod was deleted"
    assert "[DONE]" not in body_text, "the stream completed: the pod was not killed mid-answer"
    assert took < 29, f"the stream did not end when its server died ({took:.0f}s, {ended_by})"
    assert ended_by.startswith("truncated"), ended_by  # not passed off as a complete answer
    for _ in range(20):  # the router's counter, once Prometheus has scraped it
        if midstream() >= 1:
            break
        await asyncio.sleep(1)
    assert midstream() >= 1


def test_eval_job_whose_pod_is_forbidden_fails_the_run_saying_why(installed: Installed) -> None:
    """An eval suite in a namespace where the chart made no eval ServiceAccount: the
    API server forbids the Job's pod, and the run fails naming the missing account
    (not a timeout that says nothing)."""
    demo = installed.demo
    ns = "no-eval-account"
    demo.kubectl("create", "namespace", ns)
    _, dataset = eval_example()
    dataset["metadata"]["namespace"] = ns
    demo.kubectl("apply", "-f", "-", input=json.dumps(dataset))
    key = f"--from-literal=token={JUDGE_KEY}"
    demo.kubectl("-n", ns, "create", "secret", "generic", "judge-api-key", key)

    def apply(spec: dict[str, Any]) -> None:
        body = {
            "apiVersion": "rollout.llmops.io/v1alpha1",
            "kind": "LLMDeployment",
            "metadata": {"name": NAME, "namespace": ns},
            "spec": spec,
        }
        demo.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-",
                      input=json.dumps(body))  # fmt: skip

    apply(demo.specs["A"])  # a first release: promoted, no evals
    second, _ = _release(demo, "2026-12-01-forbidden")
    deadline = time.monotonic() + 60
    while (
        _json(demo, "-n", ns, "get", "llmdeployment", NAME).get("status", {}).get("phase")
        != "Promoted"
    ):
        assert time.monotonic() < deadline, "the first release was not promoted"
        time.sleep(1)
    apply(second)
    deadline = time.monotonic() + 120
    message = ""
    while time.monotonic() < deadline:
        runs = _json(demo, "-n", ns, "get", "llmevalruns")["items"]
        failed = [r for r in runs if (r.get("status") or {}).get("phase") == "Failed"]
        if failed:
            message = failed[0]["status"].get("message", "")
            break
        time.sleep(1)
    assert 'serviceaccount "llm-rollout-eval" not found' in message, message
    assert "cannot create its pod" in message

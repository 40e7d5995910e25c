"""The operator on the real bed, in compressed time: rollouts promoted, rolled back,
held, paused, superseded, resumed after a restart, driven by the CLI.

Metric values come from a scrape target the test controls, read through the real
Prometheus. Release Deployments are marked available by KubeletStandIn (the bed
has no kubelet)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import Cluster, Prometheus
from tests.integration.support import (
    ControlledMetrics,
    OperatorProcess,
    Rollouts,
    running_operator,
    wait_for,
)

from llm_rollout.api import LLMDeploymentSpec, release_id
from llm_rollout.testbed.kubelet import KubeletStandIn

QUALITY = 'max(test_quality{namespace="{{ namespace }}", release="{{ release }}"})'
GATE = {"name": "quality", "kind": "Threshold", "metric": "quality", "min": 0.8}


def spec(
    revision: str,
    *,
    experts_min: str = "1s",
    beta_min: str = "1s",
    max_duration: str = "60s",
    analysis: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "release": {
            "model": {"name": "assistant", "revision": revision},
            "prompt": {"version": "p1"},
            "knowledgeBase": {"snapshot": "kb1"},
            "template": {"spec": {"containers": [{"name": "app", "image": "app:1"}]}},
        },
        "metrics": [{"name": "quality", "query": QUALITY}],
        "analysis": {
            "interval": "1s",
            "window": "30s",
            "failureLimit": 2,
            "errorLimit": 3,
            **(analysis or {}),
        },
        "stages": [
            {
                "name": "experts",
                "cohorts": ["experts"],
                "minDuration": experts_min,
                "maxDuration": max_duration,
                "gates": [GATE],
            },
            {
                "name": "beta",
                "cohorts": ["beta"],
                "steps": [50, 100],
                "minDuration": beta_min,
                "maxDuration": max_duration,
                "gates": [GATE],
            },
            {
                "name": "all",
                "cohorts": ["everyone"],
                "steps": [25, 100],
                "minDuration": "1s",
                "maxDuration": max_duration,
                "gates": [GATE],
            },
        ],
    }


def rid(body: dict[str, Any]) -> str:
    return release_id(LLMDeploymentSpec.model_validate(body))


def obj(name: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "rollout.llmops.io/v1alpha1",
        "kind": "LLMDeployment",
        "metadata": {"name": name},
        "spec": body,
    }


def phase_is(rollouts: Rollouts, name: str, phase: str, **fields: Any) -> bool:
    status = rollouts.status(name)
    return status.get("phase") == phase and all(status.get(k) == v for k, v in fields.items())


def start_stable(
    rollouts: Rollouts, metrics: ControlledMetrics, namespace: str, name: str = "bot"
) -> str:
    """Create the first release (promoted directly) and return its id."""
    v1 = spec("v1")
    metrics.set_quality(namespace, rid(v1), 0.9)
    rollouts.create(obj(name, v1))
    wait_for(
        lambda: phase_is(rollouts, name, "Promoted"),
        what="first release promoted",
        describe=lambda: rollouts.describe(name),
    )
    return rid(v1)


def expose_slow_candidate(
    rollouts: Rollouts,
    metrics: ControlledMetrics,
    namespace: str,
    revision: str,
    experts_min: str,
) -> dict[str, Any]:
    """Start a rollout of `revision` that soaks at the experts stage; return its spec
    once the candidate is exposed there."""
    slow = spec(revision, experts_min=experts_min)
    metrics.set_quality(namespace, rid(slow), 0.9)
    rollouts.patch("bot", {"spec": slow})
    wait_for(
        lambda: rollouts.status("bot").get("exposed"),
        what=f"{revision} exposed to experts",
        describe=lambda: rollouts.describe("bot"),
    )
    return slow


def decisions(rollouts: Rollouts, name: str) -> list[tuple[str, str, int]]:
    return [
        (h["decision"], h.get("stage", ""), h.get("step", 0))
        for h in rollouts.status(name).get("history", [])
    ]


def test_healthy_release_is_promoted_stage_by_stage(
    rollouts: Rollouts,
    controlled_metrics: ControlledMetrics,
    kubelet: KubeletStandIn,
    operator: OperatorProcess,
    namespace: str,
) -> None:
    stable = start_stable(rollouts, controlled_metrics, namespace)
    v2 = spec("v2")
    controlled_metrics.set_quality(namespace, rid(v2), 0.95)
    rollouts.patch("bot", {"spec": v2})

    wait_for(
        lambda: phase_is(rollouts, "bot", "Promoted", release=rid(v2)),
        timeout=90,
        what="v2 promoted",
        describe=lambda: rollouts.describe("bot") + operator.log_tail(),
    )
    status = rollouts.status("bot")
    assert status["stable"]["id"] == rid(v2) != stable
    assert status.get("candidate") is None
    assert all(r["candidatePercent"] == 0 for r in status["routing"]["routes"])
    steps = [(stage, step) for d, stage, step in decisions(rollouts, "bot") if d == "Advance"]
    # experts (exposed), then beta 50% -> 100%, then all 25% -> 100%, in this order
    assert [s for s in steps if s[0]] == sorted(set(steps), key=steps.index)
    assert ("beta", 1) in steps and ("all", 1) in steps
    assert steps.index(("beta", 0)) < steps.index(("beta", 1)) < steps.index(("all", 0))
    assert decisions(rollouts, "bot")[-1][0] == "Promote"
    # the owned objects exist for the new release, labelled and owned
    dep = rollouts.cluster.kubectl(
        "get",
        "deployment",
        f"bot-{rid(v2)}",
        "-n",
        namespace,
        "-o",
        "jsonpath={.metadata.ownerReferences[0].kind}",
    ).stdout
    assert dep == "LLMDeployment"


def test_regressed_release_is_rolled_back_at_the_experts_stage(
    rollouts: Rollouts,
    controlled_metrics: ControlledMetrics,
    kubelet: KubeletStandIn,
    operator: OperatorProcess,
    namespace: str,
    cluster: Cluster,
) -> None:
    stable = start_stable(rollouts, controlled_metrics, namespace)
    bad = spec("v3-regressed")
    controlled_metrics.set_quality(namespace, rid(bad), 0.5)
    rollouts.patch("bot", {"spec": bad})

    wait_for(
        lambda: phase_is(rollouts, "bot", "RolledBack"),
        timeout=60,
        what="rollback",
        describe=lambda: rollouts.describe("bot"),
    )
    status = rollouts.status("bot")
    assert status["stable"]["id"] == stable
    assert status["stage"] == "experts"
    assert all(r["candidatePercent"] == 0 for r in status["routing"]["routes"])
    # beta was never exposed: no decision ever moved past the experts stage
    assert {stage for _, stage, _ in decisions(rollouts, "bot") if stage} == {"experts"}
    gate = status["gates"][0]
    assert gate["verdict"] == "Fail" and gate["value"] == 0.5
    events = cluster.kubectl(
        "get", "events", "-n", namespace, "--field-selector", "reason=Rollback", "-o", "name"
    ).stdout
    assert events.strip(), "a Rollback Event was posted"
    # stays rolled back: no restart of the same release
    wait_for(lambda: rollouts.status("bot").get("lastAnalysisTime") is not None, timeout=5)
    assert phase_is(rollouts, "bot", "RolledBack")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        # Prometheus rejects it: broken, never a pass.
        ('not_a_function(test_quality{namespace="{{ namespace }}"})', "unknown function"),
        # No such series, still after minDuration: missing, not merely pending.
        ('max(test_missing_metric{namespace="{{ namespace }}"})', "no series after minDuration"),
    ],
    ids=["bad-query", "missing-series"],
)
def test_broken_or_missing_metrics_hold_then_pause(
    rollouts: Rollouts,
    controlled_metrics: ControlledMetrics,
    kubelet: KubeletStandIn,
    operator: OperatorProcess,
    namespace: str,
    query: str,
    message: str,
) -> None:
    start_stable(rollouts, controlled_metrics, namespace)
    broken = spec("v4")
    broken["metrics"] = [{"name": "quality", "query": query}]
    rollouts.patch("bot", {"spec": broken})

    wait_for(
        lambda: phase_is(rollouts, "bot", "Paused"),
        timeout=60,
        what="pause after errorLimit",
        describe=lambda: rollouts.describe("bot"),
    )
    status = rollouts.status("bot")
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["MetricsAvailable"]["status"] == "False"
    assert message in status["gates"][0]["message"]
    assert status["gates"][0]["verdict"] == "Error"
    outcomes = [d for d, _, _ in decisions(rollouts, "bot")]
    exposed_at = outcomes.index("Advance")  # exposing the candidate at experts
    assert "Advance" not in outcomes[exposed_at + 1 :], "never advanced on broken metrics"
    assert outcomes[-1] == "Pause"
    # the experts keep the candidate while paused; nobody else has it
    routes = {r["cohort"]: r["candidatePercent"] for r in status["routing"]["routes"]}
    assert routes == {"experts": 100, "beta": 0, "everyone": 0}


def test_semantically_invalid_spec_is_marked_invalid_and_routing_kept(
    rollouts: Rollouts,
    controlled_metrics: ControlledMetrics,
    kubelet: KubeletStandIn,
    operator: OperatorProcess,
    namespace: str,
) -> None:
    stable = start_stable(rollouts, controlled_metrics, namespace)
    routing_before = rollouts.status("bot")["routing"]
    invalid = spec("v4b")
    invalid["metrics"] = [{"name": "quality", "query": "sum(rate(test_quality[1m])"}]
    rollouts.patch("bot", {"spec": invalid})

    wait_for(
        lambda: phase_is(rollouts, "bot", "Invalid"),
        what="Invalid",
        describe=lambda: rollouts.describe("bot"),
    )
    status = rollouts.status("bot")
    ready = {c["type"]: c for c in status["conditions"]}["Ready"]
    assert ready["status"] == "False" and "unclosed '('" in ready["message"]
    assert status["routing"] == routing_before and status["stable"]["id"] == stable

    fixed = spec("v4b")
    rollouts.patch("bot", {"spec": fixed})  # the fix: the rollout starts
    wait_for(
        lambda: (rollouts.status("bot").get("candidate") or {}).get("id") == rid(fixed),
        what="rollout after the fix",
        describe=lambda: rollouts.describe("bot"),
    )


def test_admission_rejects_what_the_schema_forbids(
    rollouts: Rollouts, cluster: Cluster, namespace: str
) -> None:
    bad = obj("bad", spec("v1"))
    bad["spec"]["stages"][1]["cohorts"] = ["no-such-cohort"]
    bad["spec"]["stages"][2]["steps"] = [50, 25]
    result = cluster.kubectl(
        "apply", "-n", namespace, "-f", "-", input=json.dumps(bad), check=False
    )
    assert result.returncode != 0
    assert "every cohort of a stage must be defined in spec.cohorts" in result.stderr
    assert "steps must be strictly ascending" in result.stderr
    missing = cluster.kubectl("get", "llmdeployments", "-n", namespace, "-o", "name").stdout
    assert missing.strip() == "", "nothing was stored"


def test_admission_messages_name_the_item_at_fault(
    rollouts: Rollouts, cluster: Cluster, namespace: str
) -> None:
    bad = obj("bad", spec("v1"))
    bad["spec"]["stages"][1]["cohorts"] = ["beta", "no-such-cohort"]
    bad["spec"]["stages"][0]["gates"] = [
        GATE,
        {"name": "typo", "kind": "Threshold", "metric": "qualty", "min": 0.8},
        {
            "name": "blend",
            "kind": "Composite",
            "min": 0.5,
            "components": [{"metric": "quality", "weight": 1}, {"metric": "nope", "weight": 1}],
        },
    ]
    bad["spec"]["defaultCohort"] = "everybody"
    result = cluster.kubectl(
        "apply", "-n", namespace, "-f", "-", input=json.dumps(bad), check=False
    )
    assert result.returncode != 0
    stage = bad["spec"]["stages"][1]["name"]
    assert f'stage {stage}: undefined cohorts ["no-such-cohort"]' in result.stderr, result.stderr
    # CEL's cost budget lets the message name the stage, not the gate (see spec.py).
    assert "stage experts: a gate names a metric that is undefined" in result.stderr
    assert (
        'defaultCohort everybody must name a cohort of spec.cohorts ["experts", "beta", "everyone"]'
    ) in result.stderr, result.stderr
    # The mirrored Python validators say the same, and name the gate and the metric.
    for field, needle in (
        ("stages", rf'stage {stage}: undefined cohorts \["no-such-cohort"\]'),
        ("gates", "stage experts gate typo: undefined metrics qualty"),
        ("default", "defaultCohort everybody must name a cohort"),
    ):
        one = copy.deepcopy(spec("v1"))
        if field == "stages":
            one["stages"][1]["cohorts"] = ["beta", "no-such-cohort"]
        elif field == "gates":
            one["stages"][0]["gates"] = bad["spec"]["stages"][0]["gates"][:2]
        else:
            one["defaultCohort"] = "everybody"
        with pytest.raises(ValueError, match=needle):
            LLMDeploymentSpec.model_validate(one)


def _no_image(revision: str) -> dict[str, Any]:
    body = spec(revision)
    body["release"]["template"] = {"spec": {"containers": [{"name": "app"}]}}
    return body


def _events(cluster: Cluster, namespace: str, reason: str) -> list[str]:
    each = "jsonpath={range .items[*]}{.message}{'\\n'}{end}"
    out = cluster.kubectl(
        "get", "events", "-n", namespace, "--field-selector", f"reason={reason}", "-o", each
    ).stdout
    return [line for line in out.splitlines() if line]


def test_a_rejected_release_on_a_promoted_deployment_fails_and_retry_is_answered(
    rollouts: Rollouts,
    controlled_metrics: ControlledMetrics,
    kubelet: KubeletStandIn,
    operator: OperatorProcess,
    namespace: str,
    cluster: Cluster,
) -> None:
    stable = start_stable(rollouts, controlled_metrics, namespace)
    bad = _no_image("v2")
    rollouts.patch("bot", {"spec": bad})
    wait_for(
        lambda: phase_is(rollouts, "bot", "Failed"),
        timeout=30,
        what="Failed: the release is rejected",
        describe=lambda: rollouts.describe("bot"),
    )
    status = rollouts.status("bot")
    assert status["candidate"]["id"] == rid(bad) and status["release"] == rid(bad)
    assert status["stable"]["id"] == stable
    assert f"release {rid(bad)} was rejected by the API server" in status["message"]
    assert "image" in status["message"] and "Required value" in status["message"]
    assert status["routing"].get("candidate") is None
    assert status["history"][-1]["decision"] == "Fail"
    fails = _events(cluster, namespace, "Fail")
    assert any(rid(bad) in m and "Required value" in m for m in fails), fails
    phase = cluster.kubectl(
        "get",
        "llmd",
        "bot",
        "-n",
        namespace,
        "-o",
        "custom-columns=PHASE:.status.phase",
        "--no-headers",
    ).stdout
    assert phase.strip() == "Failed"

    # retry while it is still rejected: answered with an Event, recorded as handled
    rollouts.patch(
        "bot",
        {
            "metadata": {
                "annotations": {
                    "rollout.llmops.io/action": "retry",
                    "rollout.llmops.io/action-id": "r1",
                }
            }
        },
    )
    wait_for(
        lambda: rollouts.status("bot").get("lastHandledAction") == "retry/r1",
        timeout=30,
        what="retry handled",
        describe=lambda: rollouts.describe("bot"),
    )
    assert any("action retry" in m and rid(bad) in m for m in _events(cluster, namespace, "Reject"))
    assert phase_is(rollouts, "bot", "Failed")

    # a new, valid release starts a rollout from Failed
    good = spec("v3")
    controlled_metrics.set_quality(namespace, rid(good), 0.95)
    rollouts.patch("bot", {"spec": good})
    wait_for(
        lambda: (
            (rollouts.status("bot").get("candidate") or {}).get("id") == rid(good)
            and rollouts.status("bot").get("phase") in ("Progressing", "Promoted")
        ),
        timeout=30,
        what="rollout of the fixed release",
        describe=lambda: rollouts.describe("bot"),
    )


def test_a_first_release_without_a_template_shows_failed(
    rollouts: Rollouts, operator: OperatorProcess, namespace: str
) -> None:
    body = spec("v1")
    del body["release"]["template"]
    rollouts.create(obj("bare", body))
    wait_for(
        lambda: phase_is(rollouts, "bare", "Failed"),
        timeout=30,
        what="Failed: no pod template",
        describe=lambda: rollouts.describe("bare"),
    )
    status = rollouts.status("bare")
    assert status["candidate"]["id"] == rid(body)
    assert "was rejected by the API server" in status["message"]
    assert "spec.release.template" in status["message"]


def test_a_rejected_release_mid_rollout_names_the_rejected_release(
    rollouts: Rollouts,
    controlled_metrics: ControlledMetrics,
    kubelet: KubeletStandIn,
    operator: OperatorProcess,
    namespace: str,
) -> None:
    stable = start_stable(rollouts, controlled_metrics, namespace)
    slow = expose_slow_candidate(rollouts, controlled_metrics, namespace, "v2", "60s")
    bad = _no_image("v3")
    rollouts.patch("bot", {"spec": bad})
    wait_for(
        lambda: phase_is(rollouts, "bot", "Failed"),
        timeout=30,
        what="Failed: v3 rejected",
        describe=lambda: rollouts.describe("bot"),
    )
    status = rollouts.status("bot")
    assert status["candidate"]["id"] == rid(bad) and status["release"] == rid(bad)
    assert f"candidate {rid(slow)} abandoned" in status["message"]
    assert f"traffic stays on stable release {stable}" in status["message"]
    assert all(r["candidatePercent"] == 0 for r in status["routing"]["routes"])


def test_a_long_rollout_keeps_its_start_in_history(
    rollouts: Rollouts,
    controlled_metrics: ControlledMetrics,
    kubelet: KubeletStandIn,
    operator: OperatorProcess,
    namespace: str,
) -> None:
    start_stable(rollouts, controlled_metrics, namespace)
    long = spec("v2")
    long["stages"] = [
        {
            "name": "all",
            "cohorts": ["everyone"],
            "minDuration": "1s",
            "maxDuration": "60s",
            "steps": list(range(5, 101, 5)),
            "gates": [GATE],
        }
    ]
    controlled_metrics.set_quality(namespace, rid(long), 0.95)
    rollouts.patch("bot", {"spec": long})
    wait_for(
        lambda: phase_is(rollouts, "bot", "Promoted", release=rid(long)),
        timeout=120,
        what="20 steps promoted",
        describe=lambda: rollouts.describe("bot"),
    )
    history = rollouts.status("bot")["history"]
    decisions = [h["decision"] for h in history]
    # 20 steps make more notable decisions than the bound; the Start is still there.
    assert any(h["decision"] == "Start" and h["release"] == rid(long) for h in history)
    assert decisions.count("Advance") >= 19 and decisions[-1] == "Promote"
    assert len(history) <= 30


def _roles(cluster: Cluster, namespace: str, kind: str) -> dict[str, str]:
    fmt = (
        "jsonpath={range .items[*]}{.metadata.labels.rollout\\.llmops\\.io/release}="
        "{.metadata.labels.rollout\\.llmops\\.io/role}{'\\n'}{end}"
    )
    out = cluster.kubectl(
        "get", kind, "-n", namespace, "-l", "rollout.llmops.io/deployment=bot", "-o", fmt
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if line)


def test_role_labels_say_what_each_release_is_now(
    rollouts: Rollouts,
    controlled_metrics: ControlledMetrics,
    kubelet: KubeletStandIn,
    operator: OperatorProcess,
    namespace: str,
    cluster: Cluster,
) -> None:
    v1 = start_stable(rollouts, controlled_metrics, namespace)
    slow = expose_slow_candidate(rollouts, controlled_metrics, namespace, "v2", "60s")
    assert _roles(cluster, namespace, "deployments") == {v1: "stable", rid(slow): "candidate"}
    v3 = spec("v3")
    controlled_metrics.set_quality(namespace, rid(v3), 0.95)
    rollouts.patch("bot", {"spec": v3})  # supersedes v2
    wait_for(
        lambda: phase_is(rollouts, "bot", "Promoted", release=rid(v3)),
        timeout=90,
        what="v3 promoted",
        describe=lambda: rollouts.describe("bot"),
    )
    expected = {v1: "retired", rid(slow): "retired", rid(v3): "stable"}
    # Right after the promotion (no scale-down delay or retention has passed) and without
    # another reconcile, the Deployments and Services already say what they are.
    wait_for(
        lambda: _roles(cluster, namespace, "deployments") == expected,
        timeout=10,
        what="role labels",
        describe=lambda: str(_roles(cluster, namespace, "deployments")),
    )
    assert _roles(cluster, namespace, "services") == expected
    replicas = cluster.kubectl(
        "get", "deployment", f"bot-{rid(slow)}", "-n", namespace, "-o", "jsonpath={.spec.replicas}"
    ).stdout
    assert replicas.strip() != "0", "kept warm for the scale-down delay: only the label moved"


def test_new_release_supersedes_the_candidate(
    rollouts: Rollouts,
    controlled_metrics: ControlledMetrics,
    kubelet: KubeletStandIn,
    operator: OperatorProcess,
    namespace: str,
) -> None:
    start_stable(rollouts, controlled_metrics, namespace)
    expose_slow_candidate(rollouts, controlled_metrics, namespace, "v5", "30s")

    newer = spec("v6")
    controlled_metrics.set_quality(namespace, rid(newer), 0.9)
    rollouts.patch("bot", {"spec": newer})
    wait_for(
        lambda: (rollouts.status("bot").get("candidate") or {}).get("id") == rid(newer),
        what="v6 is the candidate",
        describe=lambda: rollouts.describe("bot"),
    )
    assert "Supersede" in [d for d, _, _ in decisions(rollouts, "bot")]
    assert rollouts.status("bot")["stage"] == "experts"
    wait_for(
        lambda: phase_is(rollouts, "bot", "Promoted", release=rid(newer)),
        timeout=90,
        what="v6 promoted",
        describe=lambda: rollouts.describe("bot"),
    )


def test_operator_restart_mid_stage_resumes_without_double_advance(
    rollouts: Rollouts,
    controlled_metrics: ControlledMetrics,
    kubelet: KubeletStandIn,
    cluster: Cluster,
    prometheus: Prometheus,
    crd: None,
    namespace: str,
    tmp_path: Path,
) -> None:
    with running_operator(cluster, prometheus, namespace, tmp_path) as first:
        start_stable(rollouts, controlled_metrics, namespace)
        v7 = spec("v7", beta_min="6s")
        controlled_metrics.set_quality(namespace, rid(v7), 0.9)
        rollouts.patch("bot", {"spec": v7})
        wait_for(
            lambda: rollouts.status("bot").get("stage") == "beta",
            timeout=60,
            what="beta stage",
            describe=lambda: rollouts.describe("bot"),
        )
        first.kill()
    before = decisions(rollouts, "bot")
    assert rollouts.status("bot")["stage"] == "beta"

    with running_operator(cluster, prometheus, namespace, tmp_path) as second:
        wait_for(
            lambda: phase_is(rollouts, "bot", "Promoted", release=rid(v7)),
            timeout=90,
            what="v7 promoted after restart",
            describe=lambda: rollouts.describe("bot") + second.log_tail(),
        )
    after = decisions(rollouts, "bot")
    assert after[: len(before)] == before, "history before the restart is kept"
    advances = [(stage, step) for d, stage, step in after if d == "Advance"]
    assert len(advances) == len(set(advances)), f"an advance happened twice: {advances}"


def cli(cluster: Cluster, namespace: str, *args: str) -> str:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "llm_rollout.cli",
            *args,
            "-n",
            namespace,
            "--kubeconfig",
            cluster.kubeconfig,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_pause_promote_and_abort_through_the_cli(
    rollouts: Rollouts,
    controlled_metrics: ControlledMetrics,
    kubelet: KubeletStandIn,
    operator: OperatorProcess,
    namespace: str,
    cluster: Cluster,
) -> None:
    stable = start_stable(rollouts, controlled_metrics, namespace)
    # Hour-long soaks: only the CLI moves this rollout, so the test sees each step.
    v8 = spec("v8", experts_min="1h", beta_min="1h", max_duration="2h")
    controlled_metrics.set_quality(namespace, rid(v8), 0.9)
    rollouts.patch("bot", {"spec": v8})
    wait_for(
        lambda: rollouts.status("bot").get("exposed"),
        what="v8 exposed",
        describe=lambda: rollouts.describe("bot"),
    )

    cli(cluster, namespace, "pause", "bot")
    wait_for(
        lambda: phase_is(rollouts, "bot", "Paused"),
        what="paused",
        describe=lambda: rollouts.describe("bot"),
    )
    cli(cluster, namespace, "resume", "bot")
    wait_for(
        lambda: phase_is(rollouts, "bot", "Progressing"),
        what="resumed",
        describe=lambda: rollouts.describe("bot"),
    )

    # promote skips the hour-long experts soak to the next stage
    cli(cluster, namespace, "promote", "bot")
    wait_for(
        lambda: rollouts.status("bot").get("stage") == "beta",
        what="promoted to beta",
        describe=lambda: rollouts.describe("bot"),
    )
    # the first analysis of the new step comes an interval after it began
    wait_for(
        lambda: bool(rollouts.status("bot").get("gates")),
        what="beta analysed",
        describe=lambda: rollouts.describe("bot"),
    )
    shown = cli(cluster, namespace, "status", "bot")
    assert "stage: beta" in shown and "quality" in shown

    cli(cluster, namespace, "abort", "bot")
    wait_for(
        lambda: phase_is(rollouts, "bot", "RolledBack"),
        what="aborted",
        describe=lambda: rollouts.describe("bot"),
    )
    assert rollouts.status("bot")["stable"]["id"] == stable
    reasons = [d for d, _, _ in decisions(rollouts, "bot")]
    assert reasons[-1] == "Rollback"
    assert {"Pause", "Resume"} <= set(reasons)

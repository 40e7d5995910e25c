"""`kubectl llm-rollout …` through the bed's real kubectl and its plugin mechanism:
kubectl finds the installed `kubectl-llm_rollout` on PATH (the venv's bin)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from kubernetes import client
from tests.conftest import Cluster
from tests.integration.support import Rollouts
from tests.integration.test_operator_rollout import obj, spec
from tests.unit.test_statusview import PROGRESSING

from llm_rollout import GROUP, PLURAL, VERSION
from llm_rollout.cli.statusview import render_status


def plugin_env(cluster: Cluster) -> dict[str, str]:
    venv_bin = Path(sys.executable).parent
    assert (venv_bin / "kubectl-llm_rollout").exists(), "installed by `pip install -e .`"
    return {
        **os.environ,
        "KUBECONFIG": cluster.kubeconfig,
        "PATH": f"{cluster.bin_dir}:{venv_bin}:{os.environ.get('PATH', '')}",
    }


def kubectl(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=plugin_env(cluster),
        check=False,
    )


def set_status(cluster: Cluster, namespace: str, status: dict[str, Any]) -> None:
    client.CustomObjectsApi(cluster.api_client).patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, "chat", {"status": status}
    )


def test_kubectl_finds_the_plugin(cluster: Cluster) -> None:
    listed = kubectl(cluster, "plugin", "list")
    assert "kubectl-llm_rollout" in listed.stdout, listed.stdout + listed.stderr
    helped = kubectl(cluster, "llm-rollout", "--help")
    assert helped.returncode == 0 and "promote" in helped.stdout


def test_status_through_kubectl_shows_the_table(
    rollouts: Rollouts, cluster: Cluster, namespace: str
) -> None:
    rollouts.create(obj("chat", spec("v1")))
    set_status(cluster, namespace, PROGRESSING["status"])
    shown = kubectl(cluster, "llm-rollout", "status", "chat", "-n", namespace)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.rstrip("\n") == render_status(rollouts.get("chat"))
    assert f"{namespace}/chat   phase: Progressing   stage: beta" in shown.stdout
    assert "thumbs-up" in shown.stdout and "RECENT DECISIONS" in shown.stdout

    missing = kubectl(cluster, "llm-rollout", "status", "nope", "-n", namespace)
    assert missing.returncode == 1 and "404" in missing.stderr


def test_status_watch_redraws_when_the_rollout_moves(
    rollouts: Rollouts, cluster: Cluster, namespace: str
) -> None:
    rollouts.create(obj("chat", spec("v1")))
    set_status(cluster, namespace, PROGRESSING["status"])
    watch = subprocess.Popen(
        ["kubectl", "llm-rollout", "status", "chat", "-n", namespace, "-w", "--interval", "0.3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=plugin_env(cluster),
        start_new_session=True,
    )
    try:
        time.sleep(2)
        set_status(cluster, namespace, {"phase": "Promoted", "stage": "all"})
        time.sleep(2)
    finally:
        os.killpg(watch.pid, signal.SIGINT)
        out, _err = watch.communicate(timeout=10)
    frames = [f for f in out.split("\033[2J\033[H") if f.strip()]
    assert len(frames) >= 4, "redrawn in place every interval"
    assert "phase: Progressing" in frames[0]
    assert "phase: Promoted   stage: all" in frames[-1]


def test_actions_through_kubectl_make_the_documented_patches(
    rollouts: Rollouts, cluster: Cluster, namespace: str
) -> None:
    rollouts.create(obj("chat", spec("v1")))
    assert kubectl(cluster, "llm-rollout", "pause", "chat", "-n", namespace).returncode == 0
    assert rollouts.get("chat")["spec"]["paused"] is True
    done = kubectl(cluster, "llm-rollout", "promote", "chat", "--full", "-n", namespace)
    assert done.returncode == 0 and "promote-full requested" in done.stdout
    annotations = rollouts.get("chat")["metadata"]["annotations"]
    assert annotations["rollout.llmops.io/action"] == "promote-full"
    assert annotations["rollout.llmops.io/action-id"]
    # --dry-run prints the plain kubectl patch; running it has the same effect
    printed = kubectl(cluster, "llm-rollout", "resume", "chat", "-n", namespace, "--dry-run")
    command = printed.stdout.strip()
    assert command.startswith(f"kubectl patch llmdeployment chat -n {namespace} --type merge")
    ran = subprocess.run(
        ["bash", "-c", command],
        capture_output=True,
        text=True,
        timeout=60,
        env=plugin_env(cluster),
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    after = rollouts.get("chat")
    assert after["spec"]["paused"] is False
    assert after["metadata"]["annotations"]["rollout.llmops.io/action"] == "resume"

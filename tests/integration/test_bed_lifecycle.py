"""The bed's own commands: up/down on a half-dead bed, scrape targets, the kubelet stand-in."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Gauge, start_http_server
from tests.conftest import Cluster

from llm_rollout.testbed.bed import STATE_FILE
from llm_rollout.testbed.procs import free_port, pid_alive
from llm_rollout.testbed.prometheus import wait_for_prometheus_value

pytestmark = pytest.mark.integration


def _testbed(root: Path, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llm_rollout.testbed", *command, "--dir", str(root)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _pids(root: Path) -> dict[str, int]:
    pids: dict[str, int] = json.loads((root / STATE_FILE).read_text())["pids"]
    return pids


def _kill(pid: int) -> None:
    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(pid)


def test_down_stops_what_is_left_of_a_half_dead_bed(tmp_path: Path) -> None:
    root = tmp_path / "bed"
    up = _testbed(root, "up")
    assert up.returncode == 0, up.stdout + up.stderr
    pids = _pids(root)
    try:
        _kill(pids["prometheus"])
        status = _testbed(root, "status")
        assert status.returncode == 1
        assert "half dead: prometheus exited" in status.stdout

        down = _testbed(root, "down")
        assert down.returncode == 0
        assert "stopped the local bed (prometheus had already exited)" in down.stdout
        for name in ("etcd", "kube-apiserver"):
            assert not pid_alive(pids[name]), f"{name} still running after cluster-down"
        assert not (root / STATE_FILE).exists()
        assert not (root / "etcd-data").exists()
    finally:
        for pid in pids.values():
            if pid_alive(pid):
                os.killpg(pid, signal.SIGKILL)


def test_up_replaces_a_half_dead_bed(tmp_path: Path) -> None:
    root = tmp_path / "bed"
    assert _testbed(root, "up").returncode == 0
    first = _pids(root)
    try:
        _kill(first["etcd"])
        up = _testbed(root, "up")
        assert up.returncode == 0, up.stdout + up.stderr
        assert "half dead (etcd exited)" in up.stdout
        assert "local bed ready" in up.stdout
        second = _pids(root)
        assert not pid_alive(first["kube-apiserver"])
        assert not pid_alive(first["prometheus"])
        assert all(pid_alive(pid) for pid in second.values())
        assert _testbed(root, "status").returncode == 0
    finally:
        _testbed(root, "down")
        for pid in first.values():
            if pid_alive(pid):
                os.killpg(pid, signal.SIGKILL)


# --- what a user needs from the bed: their own scrape targets, a kubelet stand-in ---


def test_scrape_adds_a_users_target_to_the_beds_prometheus(bed: Any) -> None:
    root = Path(bed.state.root)
    registry = CollectorRegistry()
    Gauge("users_own_metric", "a metric of the user's", registry=registry).set(42)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        added = _testbed(root, "scrape", "add", "mine", f"127.0.0.1:{port}")
        assert added.returncode == 0, added.stderr
        listed = _testbed(root, "scrape").stdout
        assert f"mine\t127.0.0.1:{port}" in listed
        value = wait_for_prometheus_value(
            bed.state.prometheus_url, 'users_own_metric{bed_target="mine"}', timeout=30
        )
        assert value == 42
        assert _testbed(root, "scrape", "remove", "mine").returncode == 0
        assert "mine" not in _testbed(root, "scrape").stdout
        assert _testbed(root, "scrape", "add", "bad-address").returncode == 2
    finally:
        server.shutdown()
        thread.join(5)


def test_kubelet_command_makes_release_deployments_available(
    bed: Any, cluster: Cluster, namespace: str
) -> None:
    root = Path(bed.state.root)
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "assistant-abc",
            "namespace": namespace,
            "labels": {"rollout.llmops.io/deployment": "assistant"},
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "a"}},
            "template": {
                "metadata": {"labels": {"app": "a"}},
                "spec": {"containers": [{"name": "app", "image": "app:1"}]},
            },
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(deployment))
    proc = subprocess.Popen(
        [sys.executable, "-m", "llm_rollout.testbed", "kubelet", namespace, "--dir", str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        available = ""
        while time.monotonic() < deadline:
            available = cluster.kubectl(
                "get",
                "deployment",
                "assistant-abc",
                "-n",
                namespace,
                "-o",
                "jsonpath={.status.availableReplicas}",
            ).stdout.strip()
            if available == "2":
                break
            time.sleep(0.3)
        assert available == "2"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0, out
    assert f"standing in for the kubelet in namespace {namespace}" in out


def test_scrape_and_kubelet_need_a_running_bed(tmp_path: Path) -> None:
    result = _testbed(tmp_path, "scrape")
    assert result.returncode == 1
    assert "the local bed is not running: make cluster-up" in result.stderr


def test_a_port_taken_after_it_was_picked_starts_the_bed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A free port picked for etcd is taken before etcd binds it (as an outgoing
    connection's ephemeral port can be): the bed notices at once and starts again."""
    import socket

    from llm_rollout.testbed import bed as bed_module

    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    taken = int(blocker.getsockname()[1])
    picks = iter([taken])
    monkeypatch.setattr(bed_module, "free_port", lambda: next(picks, None) or free_port())
    try:
        bed = bed_module.TestBed.start(tmp_path / "bed")
    finally:
        blocker.close()
    try:
        assert bed.running()
        assert bed.state.etcd_port != taken
        # Noticed when etcd exited, not after the readiness timeout.
        assert "etcd exited while starting" in capsys.readouterr().out
    finally:
        bed.stop()

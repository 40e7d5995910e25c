"""make cluster-up / cluster-down on a bed where one process has died."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llm_rollout.testbed.bed import STATE_FILE
from llm_rollout.testbed.procs import pid_alive

pytestmark = pytest.mark.integration


def _testbed(root: Path, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llm_rollout.testbed", command, "--dir", str(root)],
        capture_output=True, text=True, timeout=180, check=False,
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

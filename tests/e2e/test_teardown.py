"""`make cluster-down` of a bed with a node leaves the machine as it found it: no
processes, mounts, network namespaces, links (bridge, veths), iptables rules or chains,
kubepods cgroups, and the sysctls restored. Runs last in the tier: it stops the bed."""

from __future__ import annotations

import subprocess
import sys

from llm_rollout.testbed import TestBed
from tests.e2e.conftest import NodeBed
from tests.e2e.machine import MachineSnapshot


def test_cluster_down_leaves_nothing_behind(node_bed: NodeBed) -> None:
    during = MachineSnapshot.take(node_bed.root)
    # The node did change the machine (or this test could not fail).
    made = node_bed.before.difference(during)
    assert {"links", "iptables", "processes"} <= set(made), made

    result = subprocess.run(
        [sys.executable, "-m", "llm_rollout.testbed", "down", "--dir", str(node_bed.root)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert TestBed.recorded(node_bed.root) is None
    left = node_bed.before.difference(MachineSnapshot.take(node_bed.root))
    assert left == {}, left

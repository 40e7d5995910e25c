"""The end to end tier: the bed with a real node, the image built here, the Helm chart
installed, and the demo's rollouts running in pods (see docs/install.md)."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from llm_rollout.demo.pods import PodsDemo, build_and_import_image
from llm_rollout.demo.scenario import DemoConfig, DemoResult
from llm_rollout.testbed import TestBed
from tests.e2e.machine import MachineSnapshot


@dataclass
class NodeBed:
    bed: TestBed
    root: Path
    before: MachineSnapshot  # the machine before the node started


@pytest.fixture(scope="session")
def node_bed() -> Iterator[NodeBed]:
    if os.geteuid() != 0:
        pytest.skip("the real node needs root (containerd, the kubelet, iptables)")
    root = Path(tempfile.mkdtemp(prefix="llm-rollout-node-bed-"))
    before = MachineSnapshot.take(root)
    bed = TestBed.start(root, detached=True, node=True)
    try:
        yield NodeBed(bed, root, before)
    finally:
        if TestBed.recorded(root) is not None:
            bed.stop()
        if not bed.node_leftovers:  # else keep the logs for whoever looks
            shutil.rmtree(root, ignore_errors=True)


@dataclass
class Installed:
    demo: PodsDemo
    result: DemoResult


@pytest.fixture(scope="session")
def installed(node_bed: NodeBed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    """`make image` imported into the node, the chart installed, and the demo run."""
    build_and_import_image(node_bed.bed, PodsDemo.default_image())
    config = DemoConfig(out_dir=tmp_path_factory.mktemp("plots"), live=False)
    demo = PodsDemo(config, node_bed.bed)
    try:
        result = asyncio.run(demo.run())
        yield Installed(demo, result)
    finally:
        demo.stop()

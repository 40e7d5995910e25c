"""Shared fixtures. Integration fixtures start the real local test bed once per session.

Set LLM_ROLLOUT_BED_DIR to a directory with a running bed (`make cluster-up`
writes one to .cluster/) to reuse it instead of starting a fresh one.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Everything under tests/integration/ needs the bed; mark it so `-m "not integration"`
    # gives the fast unit run.
    for item in items:
        if "tests/integration/" in str(item.path):
            item.add_marker(pytest.mark.integration)
        if "tests/e2e/" in str(item.path):
            item.add_marker(pytest.mark.integration)
            item.add_marker(pytest.mark.node)


@dataclass
class Cluster:
    """The real kube-apiserver of the bed, with ready API clients."""

    kubeconfig: str
    bin_dir: Path
    api_client: Any
    version: str

    def kubectl(
        self,
        *args: str,
        check: bool = True,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.bin_dir / "kubectl"), "--kubeconfig", self.kubeconfig, *args],
            capture_output=True,
            text=True,
            input=input,
            timeout=60,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result


@dataclass
class Prometheus:
    """The bed's real Prometheus: URL, scrape targets set at run time, queries."""

    url: str
    bed: Any

    def add_target(self, name: str, address: str) -> None:
        self.bed.add_scrape_target(name, address)

    def remove_target(self, name: str) -> None:
        self.bed.remove_scrape_target(name)

    def query(self, promql: str) -> list[dict[str, Any]]:
        full = self.url + "/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(full, timeout=10) as resp:
            body = json.loads(resp.read())
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def wait_value(self, promql: str, timeout: float = 30.0) -> float:
        from llm_rollout.testbed.prometheus import wait_for_prometheus_value

        return wait_for_prometheus_value(self.url, promql, timeout)


@pytest.fixture(scope="session")
def bed() -> Iterator[Any]:
    from llm_rollout.testbed import TestBed, TestBedError

    reuse = os.environ.get("LLM_ROLLOUT_BED_DIR")
    if reuse:
        existing = TestBed.load(Path(reuse))
        if existing is None:
            pytest.fail(f"LLM_ROLLOUT_BED_DIR={reuse} holds no running bed (make cluster-up)")
        yield existing
        return
    try:
        started = TestBed.start()
    except TestBedError as err:
        # Integration tests never fall back to mocks: no bed, no pass.
        pytest.fail(f"the local test bed could not start:\n{err}", pytrace=False)
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="session")
def cluster(bed: Any) -> Cluster:
    from kubernetes import client, config

    api_client = config.new_client_from_config(config_file=bed.state.kubeconfig)
    version = client.VersionApi(api_client).get_code().git_version
    return Cluster(bed.state.kubeconfig, Path(bed.state.bin_dir), api_client, version)


@pytest.fixture(scope="session")
def prometheus(bed: Any) -> Prometheus:
    return Prometheus(bed.state.prometheus_url, bed)


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards."""
    from kubernetes import client

    name = f"t-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(cluster.api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        yield name
    finally:
        core.delete_namespace(name)


@pytest.fixture(scope="session")
def trace_backend() -> Iterator[Any]:
    """The bed's real trace backend (Arize Phoenix on loopback), once per session."""
    from llm_rollout.testbed.traces import TraceBackend, TraceBackendError

    try:
        backend = TraceBackend.start()
    except (TraceBackendError, TimeoutError) as err:
        pytest.fail(f"the trace backend could not start:\n{err}", pytrace=False)
    try:
        yield backend
    finally:
        backend.stop()

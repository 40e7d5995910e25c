from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import REPO_ROOT, Cluster, Prometheus
from tests.integration.support import (
    ControlledMetrics,
    OperatorProcess,
    Rollouts,
    operator_for,
)

from llm_rollout.testbed.kubelet import KubeletStandIn


@pytest.fixture(scope="session")
def crd(cluster: Cluster) -> None:
    """The LLMDeployment CRD from crds/, installed and established."""
    for path in sorted((REPO_ROOT / "crds").glob("*.yaml")):
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
    cluster.kubectl(
        "wait",
        "--for",
        "condition=established",
        "--timeout",
        "60s",
        "crd/llmdeployments.rollout.llmops.io",
    )


@pytest.fixture
def rollouts(cluster: Cluster, crd: None, namespace: str) -> Rollouts:
    return Rollouts(cluster, namespace)


@pytest.fixture
def kubelet(cluster: Cluster, namespace: str) -> Iterator[KubeletStandIn]:
    stand_in = KubeletStandIn(cluster.api_client, namespace)
    yield stand_in
    stand_in.close()


@pytest.fixture
def controlled_metrics(prometheus: Prometheus, namespace: str) -> Iterator[ControlledMetrics]:
    with ControlledMetrics(prometheus, target=namespace) as metrics:
        yield metrics


@pytest.fixture
def operator(
    cluster: Cluster,
    prometheus: Prometheus,
    crd: None,
    namespace: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[OperatorProcess]:
    yield from operator_for(request, cluster, prometheus, namespace, tmp_path)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    # Lets fixtures see whether the test failed (to print the operator's log).
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)

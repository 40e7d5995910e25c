"""An operator started right after its CRDs are created logs no ERROR lines."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from tests.conftest import REPO_ROOT, Cluster
from tests.integration.support import OperatorProcess, wait_for

from llm_rollout.testbed import TestBed

pytestmark = pytest.mark.integration


@pytest.fixture
def fresh_bed() -> Iterator[Any]:
    """A bed of its own: the shared one has had its CRDs for a while."""
    bed = TestBed.start()
    try:
        yield bed
    finally:
        bed.stop()


def test_no_error_lines_when_started_right_after_the_crds(fresh_bed: Any, tmp_path: Path) -> None:
    api_client = config.new_client_from_config(config_file=fresh_bed.state.kubeconfig)
    version = client.VersionApi(api_client).get_code().git_version
    cluster = Cluster(
        fresh_bed.state.kubeconfig, Path(fresh_bed.state.bin_dir), api_client, version
    )
    cluster.kubectl("create", "namespace", "team")
    for path in sorted((REPO_ROOT / "crds").glob("*.yaml")):
        cluster.kubectl("apply", "--server-side", "-f", str(path))
    # At once, as `kubectl apply -f crds/ && llm-rollout operator` would.
    operator = OperatorProcess(cluster, fresh_bed.state.prometheus_url, "team", tmp_path)
    operator.start()
    try:
        wait_for(
            lambda: "operator metrics and health" in operator.log_tail(200),
            timeout=60,
            what="operator up",
            describe=operator.log_tail,
        )
        time.sleep(3)  # the watches have started and retried if they were going to
        body = {
            "apiVersion": "rollout.llmops.io/v1alpha1",
            "kind": "LLMDeployment",
            "metadata": {"name": "bot"},
            "spec": {
                "release": {
                    "model": {"name": "m", "revision": "1"},
                    "template": {"spec": {"containers": [{"name": "app", "image": "app:1"}]}},
                }
            },
        }
        client.CustomObjectsApi(api_client).create_namespaced_custom_object(
            "rollout.llmops.io", "v1alpha1", "team", "llmdeployments", body
        )
        wait_for(
            lambda: "FirstRelease" in operator.log_tail(200),
            timeout=60,
            what="the first release handled",
            describe=operator.log_tail,
        )
        log = operator.log_path.read_text(errors="replace")
        errors = [line for line in log.splitlines() if " ERROR " in line]
        assert errors == [], "\n".join(errors)
    finally:
        operator.stop()

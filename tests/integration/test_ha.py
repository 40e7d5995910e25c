"""Two operator replicas against the real bed: exactly one acts (the holder of the
Lease); killing it mid-rollout hands over within the bound and the rollout completes
without any decision taken twice.

Short timings (lease 3 s, renew deadline 2 s, retry 0.5 s) keep the test quick; the
bound they give is lease duration + retry period, plus API round trips."""

from __future__ import annotations

import os
import signal
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kubernetes import client
from tests.conftest import Cluster, Prometheus
from tests.integration.support import ControlledMetrics, OperatorProcess, Rollouts, wait_for
from tests.integration.test_operator_rollout import decisions, phase_is, rid, spec, start_stable

from llm_rollout.testbed.kubelet import KubeletStandIn

LEASE, RENEW, RETRY = 3.0, 2.0, 0.5
HANDOVER_BOUND = LEASE + RETRY + 2.5  # + API round trips, this test's polling, a busy CI
ELECTION = [
    "--leader-elect",
    "--leader-elect-lease-duration",
    str(int(LEASE)),
    "--leader-elect-renew-deadline",
    str(RENEW),
    "--leader-elect-retry-period",
    str(RETRY),
]


def replica(
    cluster: Cluster, prometheus: Prometheus, namespace: str, tmp_path: Path, identity: str
) -> OperatorProcess:
    log_dir = tmp_path / identity
    log_dir.mkdir()
    return OperatorProcess(
        cluster,
        prometheus.url,
        namespace,
        log_dir,
        [*ELECTION, "--leader-elect-identity", identity],
    )


def holder(cluster: Cluster, namespace: str) -> str | None:
    try:
        lease = client.CoordinationV1Api(cluster.api_client).read_namespaced_lease(
            "llm-rollout-operator", namespace
        )
    except client.ApiException as err:
        if err.status == 404:
            return None
        raise
    return str(lease.spec.holder_identity) if lease.spec.holder_identity else None


def leader_gauge(op: OperatorProcess) -> float | None:
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{op.metrics_port}/metrics", timeout=2
        ) as resp:
            text = resp.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("llm_rollout_leader "):
            return float(line.split()[1])
    return None


@contextmanager
def leader_and_standby(
    cluster: Cluster, prometheus: Prometheus, namespace: str, tmp_path: Path
) -> Iterator[tuple[OperatorProcess, OperatorProcess]]:
    """op-a started first and holding the Lease, op-b standing by; both stopped after."""
    a = replica(cluster, prometheus, namespace, tmp_path, "op-a")
    b = replica(cluster, prometheus, namespace, tmp_path, "op-b")
    a.start()
    try:
        wait_for(
            lambda: holder(cluster, namespace) == "op-a",
            timeout=30,
            what="op-a holds the Lease",
            describe=a.log_tail,
        )
        b.start()
        wait_for(
            lambda: "standing by" in b.log_path.read_text(errors="replace"),
            timeout=30,
            what="op-b standing by",
            describe=b.log_tail,
        )
        yield a, b
    finally:
        a.stop()
        b.stop()


def acted(op: OperatorProcess, namespace: str) -> bool:
    """Did this replica take any decision (it logs each one as 'ns/name: Outcome')?"""
    return f"{namespace}/bot: " in op.log_path.read_text(errors="replace")


def test_killing_the_leader_mid_rollout_hands_over_without_a_double_decision(
    rollouts: Rollouts,
    controlled_metrics: ControlledMetrics,
    kubelet: KubeletStandIn,
    cluster: Cluster,
    prometheus: Prometheus,
    crd: None,
    namespace: str,
    tmp_path: Path,
) -> None:
    with leader_and_standby(cluster, prometheus, namespace, tmp_path) as (a, b):
        wait_for(
            lambda: leader_gauge(b) == 0.0,
            timeout=10,
            what="op-b's /metrics: leader 0",
            describe=b.log_tail,
        )
        assert leader_gauge(a) == 1.0

        start_stable(rollouts, controlled_metrics, namespace)
        v2 = spec("v2", beta_min="4s")
        controlled_metrics.set_quality(namespace, rid(v2), 0.95)
        rollouts.patch("bot", {"spec": v2})
        wait_for(
            lambda: rollouts.status("bot").get("stage") == "beta",
            timeout=60,
            what="beta stage",
            describe=lambda: rollouts.describe("bot") + a.log_tail(),
        )
        assert acted(a, namespace) and not acted(b, namespace), "only the leader acts"
        before = decisions(rollouts, "bot")

        killed = time.monotonic()
        a.kill()  # SIGKILL: no release, the Lease must expire
        wait_for(
            lambda: holder(cluster, namespace) == "op-b",
            timeout=30,
            what="op-b takes over",
            describe=b.log_tail,
        )
        handover = time.monotonic() - killed
        print(
            f"\nHA handover after SIGKILL of the leader: {handover:.2f}s "
            f"(lease {LEASE:g}s, retry {RETRY:g}s, bound {HANDOVER_BOUND:g}s)"
        )
        assert handover <= HANDOVER_BOUND
        assert handover >= LEASE - 0.5, "the standby waited for the Lease to expire"

        wait_for(
            lambda: phase_is(rollouts, "bot", "Promoted", release=rid(v2)),
            timeout=90,
            what="v2 promoted by op-b",
            describe=lambda: rollouts.describe("bot") + b.log_tail(),
        )
        assert acted(b, namespace)
        assert leader_gauge(b) == 1.0
        after = decisions(rollouts, "bot")
        assert after[: len(before)] == before, "history before the handover is kept"
        advances = [(stage, step) for d, stage, step in after if d == "Advance"]
        assert len(advances) == len(set(advances)), f"an advance happened twice: {advances}"
        outcomes = [d for d, _, _ in after]
        assert outcomes.count("Promote") == 2, "v1 (directly, the first release) and v2 once"
        lease = client.CoordinationV1Api(cluster.api_client).read_namespaced_lease(
            "llm-rollout-operator", namespace
        )
        assert lease.spec.lease_transitions == 1


def test_a_gracefully_stopped_leader_releases_the_lease_for_a_fast_handover(
    cluster: Cluster, prometheus: Prometheus, crd: None, namespace: str, tmp_path: Path
) -> None:
    with leader_and_standby(cluster, prometheus, namespace, tmp_path) as (a, b):
        assert a.proc is not None
        stopping = time.monotonic()
        os.kill(a.proc.pid, signal.SIGTERM)
        assert a.proc.wait(20) == 0, a.log_tail()
        wait_for(
            lambda: holder(cluster, namespace) == "op-b",
            timeout=10,
            what="op-b takes over",
            describe=b.log_tail,
        )
        handover = time.monotonic() - stopping
        print(f"\nHA handover after SIGTERM of the leader: {handover:.2f}s")
        assert "released Lease" in a.log_path.read_text(errors="replace")
        assert handover < LEASE, "released, so no waiting for expiry"


def test_a_leader_cut_off_from_the_api_server_stops_acting(
    cluster: Cluster, prometheus: Prometheus, crd: None, namespace: str, tmp_path: Path
) -> None:
    """SIGSTOP freezes the leader past its renew deadline; the standby takes over; when
    the old leader resumes it finds its deadline gone and exits 1 instead of acting."""
    with leader_and_standby(cluster, prometheus, namespace, tmp_path) as (a, b):
        assert a.proc is not None
        os.kill(a.proc.pid, signal.SIGSTOP)
        wait_for(
            lambda: holder(cluster, namespace) == "op-b",
            timeout=30,
            what="op-b takes over from the frozen leader",
            describe=b.log_tail,
        )
        os.kill(a.proc.pid, signal.SIGCONT)
        assert a.proc.wait(10) == 1, a.log_tail()
        assert "lost leadership" in a.log_path.read_text(errors="replace")
        assert holder(cluster, namespace) == "op-b"

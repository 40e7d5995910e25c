"""Helpers for operator tests on the real bed: the operator as a real process, a
scrape target whose values the test sets, and a stand-in for the missing kubelet."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import pytest
from kubernetes import client
from prometheus_client import CollectorRegistry, Gauge, start_http_server
from tests.conftest import Cluster, Prometheus

from llm_rollout import GROUP, PLURAL, VERSION
from llm_rollout.testbed.procs import free_port, stop_pid


def wait_for(
    check: Callable[[], Any],
    *,
    timeout: float = 60.0,
    what: str = "condition",
    describe: Callable[[], str] = lambda: "",
) -> Any:
    """Poll until `check()` is truthy; return its value, or fail saying what was awaited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{describe()}")


class OperatorProcess:
    """`llm-rollout operator` as a real subprocess, watching one namespace."""

    def __init__(
        self,
        cluster: Cluster,
        prometheus_url: str,
        namespace: str,
        log_dir: Path,
        extra: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.env = {**os.environ, **(env or {})}
        self.argv = [
            sys.executable,
            "-m",
            "llm_rollout.cli",
            "operator",
            "--kubeconfig",
            cluster.kubeconfig,
            "--prometheus-url",
            prometheus_url,
            "--namespace",
            namespace,
            *(extra or []),
        ]
        self.log_path = log_dir / "operator.log"
        self.metrics_port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.metrics_port = free_port()
        argv = [*self.argv, "--metrics-listen", f"127.0.0.1:{self.metrics_port}"]
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=self.env
        )
        log.close()

    def stop(self) -> None:
        if self.proc is not None:
            stop_pid(self.proc.pid)
            self.proc.wait(10)
            self.proc = None

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, as in a crash or a node loss."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no operator log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class ScrapeTarget:
    """A registry the bed's Prometheus scrapes, served on loopback for one test; a
    context manager that removes the target and stops serving."""

    def __init__(self, prometheus: Prometheus, target: str) -> None:
        self.registry = CollectorRegistry()
        self.server, self.thread = start_http_server(0, addr="127.0.0.1", registry=self.registry)
        self.prometheus = prometheus
        self.target = target
        prometheus.add_target(target, f"127.0.0.1:{self.server.server_address[1]}")

    def close(self) -> None:
        self.prometheus.remove_target(self.target)
        self.server.shutdown()
        self.thread.join(5)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class ControlledMetrics(ScrapeTarget):
    """A scrape target of the bed's Prometheus whose gauge values the test sets."""

    def __init__(self, prometheus: Prometheus, target: str) -> None:
        super().__init__(prometheus, target)
        self.quality = Gauge(
            "test_quality",
            "Quality score set by the test",
            ["namespace", "release"],
            registry=self.registry,
        )

    def set_quality(self, namespace: str, release: str, value: float) -> None:
        """Set a release's quality and wait until Prometheus has scraped it, so the
        operator never sees a gap that only the test's timing made."""
        self.quality.labels(namespace, release).set(value)
        self.prometheus.wait_value(
            f'test_quality{{namespace="{namespace}", release="{release}"}} == {value}'
        )


class Rollouts:
    """LLMDeployment reads and writes for tests."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.api = client.CustomObjectsApi(cluster.api_client)
        self.cluster = cluster
        self.namespace = namespace

    def create(self, body: dict[str, Any]) -> None:
        self.api.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body)

    def get(self, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = self.api.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name
        )
        return obj

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.get(name).get("status") or {})

    def patch(self, name: str, patch: dict[str, Any]) -> None:
        self.api.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            self.namespace,
            PLURAL,
            name,
            patch,
            _content_type="application/merge-patch+json",
        )

    def describe(self, name: str) -> str:
        status = self.status(name)
        brief = {
            k: status.get(k)
            for k in (
                "phase",
                "stage",
                "step",
                "message",
                "gates",
                "candidate",
                "stable",
                "exposed",
            )
        }
        history = [
            (h["decision"], h.get("stage"), h.get("reason")) for h in status.get("history", [])
        ]
        return json.dumps(brief, indent=1, default=str) + f"\nhistory: {history}"


@contextmanager
def running_operator(
    cluster: Cluster,
    prometheus: Prometheus,
    namespace: str,
    tmp_path: Path,
    extra: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[OperatorProcess]:
    operator = OperatorProcess(cluster, prometheus.url, namespace, tmp_path, extra, env)
    operator.start()
    try:
        yield operator
    finally:
        operator.stop()


def operator_for(
    request: pytest.FixtureRequest,
    cluster: Cluster,
    prometheus: Prometheus,
    namespace: str,
    tmp_path: Path,
    extra: list[str] | None = None,
) -> Iterator[OperatorProcess]:
    """The body of an operator fixture: its log is printed if the test failed."""
    with running_operator(cluster, prometheus, namespace, tmp_path, extra=extra) as op:
        yield op
        if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
            print(f"--- operator log ---\n{op.log_tail(80)}")

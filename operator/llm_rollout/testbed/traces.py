"""The bed's trace backend: Arize Phoenix (hack/install-phoenix.sh) on loopback. It takes
OTLP/HTTP at `<url>/v1/traces` and answers span queries through its REST API; each test
sends to a project of its own (resource attribute `openinference.project.name`)."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llm_rollout.testbed.procs import free_port, spawn, stop_pid, wait_until

REPO_ROOT = Path(__file__).resolve().parents[3]
# The resource attribute that names a Phoenix project.
PROJECT_ATTRIBUTE = "openinference.project.name"


class TraceBackendError(RuntimeError):
    """Phoenix could not be installed or started; the message says where to look."""


def phoenix_binary() -> str:
    override = os.environ.get("LLM_ROLLOUT_PHOENIX")
    if override:
        return override
    script = REPO_ROOT / "hack" / "install-phoenix.sh"
    result = subprocess.run(["bash", str(script)], stdout=subprocess.PIPE, text=True, check=False)
    if result.returncode != 0:
        raise TraceBackendError(f"installing the trace backend failed ({script}); see above")
    return result.stdout.strip().splitlines()[-1]


@dataclass
class TraceBackend:
    """A running Phoenix: where to send spans, and its span queries."""

    url: str
    workdir: Path
    pid: int = 0
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.workdir / "phoenix.log"

    @property
    def otlp_endpoint(self) -> str:
        return f"{self.url}/v1/traces"

    @classmethod
    def start(
        cls, workdir: Path | None = None, *, tied_to_parent: bool = True, timeout: float = 180.0
    ) -> TraceBackend:
        binary = phoenix_binary()
        workdir = workdir or Path(tempfile.mkdtemp(prefix="llm-rollout-phoenix-"))
        workdir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        backend = cls(url=f"http://127.0.0.1:{port}", workdir=workdir)
        env = {
            **os.environ,
            "PHOENIX_WORKING_DIR": str(workdir),
            "PHOENIX_HOST": "127.0.0.1",
            "PHOENIX_PORT": str(port),
            "PHOENIX_GRPC_PORT": str(free_port()),
            # Nothing leaves the machine: no usage telemetry.
            "PHOENIX_TELEMETRY_ENABLED": "false",
        }
        proc = spawn([binary, "serve"], backend.log_path, tied_to_parent=tied_to_parent, env=env)
        backend.pid = proc.pid

        def up() -> bool:
            if proc.poll() is not None:
                raise TraceBackendError(
                    f"phoenix exited with {proc.returncode}; log: {backend.log_path}\n"
                    + backend.log_tail()
                )
            try:
                with urllib.request.urlopen(f"{backend.url}/healthz", timeout=2) as r:
                    return bool(r.status == 200)
            except OSError:
                return False

        try:
            wait_until(up, timeout=timeout, what="phoenix", on_timeout=backend.log_tail)
        except BaseException:
            backend.stop()
            raise
        return backend

    def stop(self) -> None:
        if self.pid:
            stop_pid(self.pid)
            self.pid = 0

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def spans(self, project: str, **filters: str) -> list[dict[str, Any]]:
        """Every span of `project` (optionally filtered: trace_id, name, parent_id)."""
        out: list[dict[str, Any]] = []
        cursor = None
        while True:
            query = {"limit": "1000", **filters, **({"cursor": cursor} if cursor else {})}
            url = (
                f"{self.url}/v1/projects/{urllib.parse.quote(project)}/spans?"
                + urllib.parse.urlencode(query)
            )
            try:
                with urllib.request.urlopen(url, timeout=30) as r:
                    body = json.loads(r.read())
            except urllib.error.HTTPError as exc:
                if exc.code == 404:  # no span has reached the project yet
                    return []
                raise
            out.extend(body.get("data") or [])
            cursor = body.get("next_cursor")
            if not cursor:
                return out

    def wait_spans(
        self, project: str, count: int, *, timeout: float = 30.0, **filters: str
    ) -> list[dict[str, Any]]:
        """The project's spans once at least `count` are stored (and stable for a moment)."""
        deadline = time.monotonic() + timeout
        spans: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            spans = self.spans(project, **filters)
            if len(spans) >= count:
                time.sleep(0.5)  # and no more arrive
                return self.spans(project, **filters)
            time.sleep(0.2)
        raise TimeoutError(
            f"{len(spans)} of {count} spans in project {project} after {timeout:.0f}s"
        )

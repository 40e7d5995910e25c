"""How the operator gets an LLMEvalRun executed: a Kubernetes Job, or a local process.

Both run the same command, `llm-rollout eval --run NS/NAME`, which does all the
work and writes the run's status; an executor only launches it and notices when a
launch died without a result. Everything else — which runs exist, their objects,
reading their results — is the same code path for both (controller/evals.py).

- `JobExecutor` (`--eval-executor job`, the default): a batch/v1 Job per run
  (evals/manifests.py), image, service account and resources from the operator's
  settings. Idempotent: creating a Job that exists is a no-op, so a restarted
  operator does not start a run twice.
- `LocalExecutor` (`--eval-executor local`): a subprocess of the operator, with its
  kubeconfig and the release URLs given by `--eval-backend` / `--eval-backend-file`.
  For clusters without a kubelet (the local test bed, `make demo`). The processes
  die with the operator; a restarted operator launches unfinished runs again.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from typing import Any, Protocol

from llm_rollout.evals.manifests import EXECUTOR_ENV, build_eval_job, job_name
from llm_rollout.evals.settings import EvalSettings
from llm_rollout.kube.client import KubeAPI
from llm_rollout.kube.errors import KubeError
from llm_rollout.kube.times import parse_time
from llm_rollout.process import die_with_parent

log = logging.getLogger("llm_rollout.operator")

# A Job with no pod this long after it was made, and the Job controller's FailedCreate
# events, cannot start: a forbidden pod (no such ServiceAccount, a PodSecurity level
# the pod does not meet, a quota). Shorter than any suite's timeout.
POD_CREATE_GRACE = 20.0


class Executor(Protocol):
    kind: str

    async def launch(self, run: dict[str, Any]) -> str | None:
        """Make sure the unfinished `run` (an LLMEvalRun object) is being executed.
        Returns what was started, or None when it already was."""
        ...

    async def lost(self, run: dict[str, Any]) -> str | None:
        """Why the unfinished `run` will never finish (its Job failed, its process
        exited without a result), else None."""
        ...


def _uid(run: dict[str, Any]) -> str:
    return str(run["metadata"]["uid"])


def _ident(run: dict[str, Any]) -> tuple[str, str]:
    meta = run["metadata"]
    return str(meta["namespace"]), str(meta["name"])


class JobExecutor:
    kind = "job"

    def __init__(self, kube: KubeAPI, settings: EvalSettings) -> None:
        self._kube = kube
        self._settings = settings
        self._launched: set[str] = set()  # run uids whose Job exists

    async def launch(self, run: dict[str, Any]) -> str | None:
        if _uid(run) in self._launched:
            return None
        job = build_eval_job(run, self._settings)
        created = await self._kube.create(job)
        self._launched.add(_uid(run))
        return f"Job {job['metadata']['name']}" if created is not None else None

    async def lost(self, run: dict[str, Any]) -> str | None:
        namespace, name = _ident(run)
        job = await self._kube.get("batch/v1", "Job", namespace, job_name(name))
        if job is None:
            self._launched.discard(_uid(run))  # deleted: launch creates it again
            return None
        status = job.get("status") or {}
        for condition in status.get("conditions") or []:
            if condition.get("type") == "Failed" and condition.get("status") == "True":
                return (
                    f"Job {job_name(name)} failed: {condition.get('reason', '')}: "
                    f"{condition.get('message', '')}"
                ).rstrip(": ")
        if any(status.get(k) for k in ("active", "ready", "succeeded", "failed")):
            return None
        return await self._cannot_create_pod(job, time.time())

    async def _cannot_create_pod(self, job: dict[str, Any], now: float) -> str | None:
        """Why the Job controller cannot create the Job's pod, if it has tried long enough."""
        meta = job["metadata"]
        created = parse_time(meta.get("creationTimestamp"))
        if created is None or now - created.timestamp() < POD_CREATE_GRACE:
            return None
        selector = f"involvedObject.kind=Job,involvedObject.name={meta['name']}"
        try:
            events = await self._kube.get_path(
                f"/api/v1/namespaces/{meta['namespace']}/events",
                query=[("fieldSelector", selector)],
            )
        except KubeError as err:  # e.g. an older chart's RBAC without `list` on events
            log.debug("events of Job %s unreadable: %s", meta["name"], err)
            return None
        failed = [e for e in events.get("items", []) if e.get("reason") == "FailedCreate"]
        if not failed:
            return None
        latest = max(failed, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
        return f"Job {meta['name']} cannot create its pod: {latest.get('message', '')}"


class LocalExecutor:
    kind = "local"

    def __init__(self, settings: EvalSettings) -> None:
        self._settings = settings
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    def argv(self, namespace: str, name: str) -> list[str]:
        s = self._settings
        argv = [s.python, "-m", "llm_rollout.cli", "eval", "--run", f"{namespace}/{name}"]
        if s.kubeconfig:
            argv += ["--kubeconfig", s.kubeconfig]
        for backend in s.backends:
            argv += ["--backend", backend]
        if s.backend_file:
            argv += ["--backend-file", s.backend_file]
        if s.tracing is not None:  # the process inherits the rest of OTEL_* (headers too)
            argv += ["--otlp-endpoint", s.tracing.endpoint]
            argv += ["--trace-sample-ratio", f"{s.tracing.sample_ratio:g}"]
        return argv

    async def launch(self, run: dict[str, Any]) -> str | None:
        proc = self._procs.get(_uid(run))
        if proc is not None:
            return None  # running, or exited: lost() tells
        proc = self._spawn(*_ident(run))
        self._procs[_uid(run)] = proc
        return f"local process {proc.pid}"

    def _spawn(self, namespace: str, name: str) -> subprocess.Popen[bytes]:
        # A fork and exec, quick enough for the event loop; it must happen on the loop's
        # own thread, since PDEATHSIG follows the thread that spawned the child.
        env = {**os.environ, EXECUTOR_ENV: f"local (operator pid {os.getpid()})"}
        return subprocess.Popen(
            self.argv(namespace, name),
            stdin=subprocess.DEVNULL,
            env=env,
            preexec_fn=die_with_parent,
        )

    async def lost(self, run: dict[str, Any]) -> str | None:
        proc = self._procs.get(_uid(run))
        if proc is None or (code := proc.poll()) is None:
            return None
        if code == 0:
            return None  # it wrote its result; the next read shows it
        return f"the eval runner (local process {proc.pid}) exited with code {code}"


def make_executor(kube: KubeAPI, settings: EvalSettings) -> Executor:
    if settings.executor == "local":
        return LocalExecutor(settings)
    return JobExecutor(kube, settings)

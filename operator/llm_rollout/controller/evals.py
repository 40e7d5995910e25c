"""The eval step of a reconcile: LLMEvalRun objects in, engine input out, runs launched.

Before `decide`: read the LLMDeployment's runs, export the finished ones as metrics,
and turn the runs the current stage needs (`required_eval_runs`) into
`EvalRunState`s. A needed run that does not exist yet and cannot be created (its
dataset ConfigMap or a judge's API-key Secret is missing) is reported as Failed
with that reason: the engine makes it a gate Error and the `EvalsSucceeded`
condition names what is missing; once it is there, the run is created.

After `decide`: create the runs the new status needs (deterministic names: a
restarted operator finds them instead of duplicating them) and make sure the
executor runs every unfinished one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from llm_rollout import GROUP, VERSION
from llm_rollout.api.evalrun import EVAL_RUN_KIND, EvalPhase, LLMEvalRunStatus
from llm_rollout.api.spec import EvalSuite, LLMDeploymentSpec
from llm_rollout.api.status import LLMDeploymentStatus
from llm_rollout.engine.evals import EvalRunRequest, required_eval_runs
from llm_rollout.engine.types import EvalRunState
from llm_rollout.evals.executor import Executor, make_executor
from llm_rollout.evals.manifests import build_eval_run
from llm_rollout.evals.metrics import EvalResultsCollector
from llm_rollout.evals.settings import EvalSettings
from llm_rollout.kube.builders import LABEL_DEPLOYMENT, Owner
from llm_rollout.kube.client import KubeAPI
from llm_rollout.kube.errors import Conflict
from llm_rollout.kube.times import format_time, parse_time

log = logging.getLogger("llm_rollout.operator")

API_VERSION = f"{GROUP}/{VERSION}"


def run_state(run: dict[str, Any]) -> EvalRunState:
    status = LLMEvalRunStatus.from_object(run.get("status"))
    return EvalRunState(
        run=run["metadata"]["name"],
        phase=status.phase or EvalPhase.PENDING,
        reason=status.reason,
        message=status.message,
        created=parse_time(run["metadata"].get("creationTimestamp")),
        completed=status.completion_time,
        composite=status.composite,
    )


@dataclass
class EvalStep:
    kube: KubeAPI
    settings: EvalSettings
    results: EvalResultsCollector
    executor: Executor | None = None
    # Per reconcile: (namespace, suite) -> why the suite's run cannot be created.
    _problems: dict[tuple[str, str], tuple[str, str] | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.executor is None:
            self.executor = make_executor(self.kube, self.settings)

    async def runs(self, namespace: str, name: str) -> list[dict[str, Any]]:
        """The LLMDeployment's runs (none listed when it has no suites and never had)."""
        self._problems = {}
        runs = await self.kube.list(
            API_VERSION, EVAL_RUN_KIND, namespace, f"{LABEL_DEPLOYMENT}={name}"
        )
        owned = [r for r in runs if (r.get("spec") or {}).get("deployment") == name]
        self.results.update(namespace, name, owned)
        return owned

    def forget(self, namespace: str, name: str) -> None:
        self.results.forget(namespace, name)

    async def _problem(self, namespace: str, suite: EvalSuite) -> tuple[str, str] | None:
        """(reason, message) when the suite's run cannot be created yet."""
        key = (namespace, suite.name)
        if key in self._problems:
            return self._problems[key]
        problem: tuple[str, str] | None = None
        ref = suite.dataset.config_map_ref
        cm = await self.kube.get("v1", "ConfigMap", namespace, ref.name)
        if cm is None or ref.key not in (cm.get("data") or {}):
            what = "not found" if cm is None else f"has no key {ref.key!r}"
            problem = ("DatasetMissing", f"dataset ConfigMap {namespace}/{ref.name} {what}")
        for judge in suite.judges:
            secret_ref = judge.api_key_secret_ref
            if problem is not None or secret_ref is None:
                continue
            secret = await self.kube.get("v1", "Secret", namespace, secret_ref.name)
            if secret is None or secret_ref.key not in (secret.get("data") or {}):
                what = "not found" if secret is None else f"has no key {secret_ref.key!r}"
                problem = (
                    "SecretMissing",
                    f"judge {judge.name}: API-key Secret {namespace}/{secret_ref.name} {what}",
                )
        self._problems[key] = problem
        return problem

    async def _mark_lost(self, run: dict[str, Any], why: str) -> dict[str, Any]:
        """Record a launch that died without a result (only if nobody wrote one since)."""
        meta = run["metadata"]
        status = {
            "phase": EvalPhase.FAILED.value,
            "reason": "RunnerLost",
            "message": why,
            "completionTime": format_time(datetime.now(UTC)),
        }
        try:
            return await self.kube.patch_status(
                API_VERSION,
                EVAL_RUN_KIND,
                meta["namespace"],
                meta["name"],
                status,
                resource_version=meta.get("resourceVersion"),
            )
        except Conflict:
            return run  # the runner wrote meanwhile: its word stands

    async def states(
        self,
        spec: LLMDeploymentSpec,
        status: LLMDeploymentStatus,
        namespace: str,
        name: str,
        runs: list[dict[str, Any]],
    ) -> dict[str, EvalRunState]:
        """The engine's `evals` input: the runs the current stage needs, by suite."""
        by_name = {r["metadata"]["name"]: r for r in runs}
        states: dict[str, EvalRunState] = {}
        assert self.executor is not None
        for request in required_eval_runs(spec, status, name):
            run = by_name.get(request.name)
            if run is not None:
                state = run_state(run)
                if not state.finished and (why := await self.executor.lost(run)):
                    log.warning("%s/%s: eval run %s lost: %s", namespace, name, request.name, why)
                    run = await self._mark_lost(run, why)
                    by_name[request.name] = run
                    state = run_state(run)
                states[request.suite.name] = state
            elif (problem := await self._problem(namespace, request.suite)) is not None:
                reason, message = problem
                states[request.suite.name] = EvalRunState(
                    run=request.name, phase=EvalPhase.FAILED, reason=reason, message=message
                )
        return states

    async def act(
        self,
        owner: Owner,
        spec: LLMDeploymentSpec,
        status: LLMDeploymentStatus,
        runs: list[dict[str, Any]],
    ) -> None:
        """Create the runs the (new) status needs and have every unfinished one executed."""
        by_name = {r["metadata"]["name"]: r for r in runs}
        for request in required_eval_runs(spec, status, owner.name):
            run = by_name.get(request.name)
            if run is None:
                run = await self._create(owner, spec, request)
            if run is None or run_state(run).finished:
                continue
            assert self.executor is not None
            if started := await self.executor.launch(run):
                log.info(
                    "%s/%s: eval run %s started (%s)",
                    owner.namespace,
                    owner.name,
                    request.name,
                    started,
                )

    async def _create(
        self, owner: Owner, spec: LLMDeploymentSpec, request: EvalRunRequest
    ) -> dict[str, Any] | None:
        if await self._problem(owner.namespace, request.suite) is not None:
            return None  # reported through the engine (EvalsSucceeded=False)
        manifest = build_eval_run(owner, request, port=spec.release.port)
        created = await self.kube.create(manifest)
        if created is None:  # created meanwhile (by an earlier operator): use it
            return await self.kube.get(API_VERSION, EVAL_RUN_KIND, owner.namespace, request.name)
        log.info(
            "%s/%s: eval run %s created (suite %s, stage %s, release %s)",
            owner.namespace,
            owner.name,
            request.name,
            request.suite.name,
            request.stage,
            request.release,
        )
        return created

"""One reconcile step for one LLMDeployment: read, ask the engine, write.

All rollout logic is in the pure engine; this module only gathers its inputs
(the object, which releases are ready, metric values, the manual action) and
carries out its answer (status, Event, owned objects, routing objects, metrics).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from llm_rollout import GROUP, VERSION
from llm_rollout.api import (
    LLMDeploymentSpec,
    LLMDeploymentStatus,
    Phase,
    action_from_annotations,
    release_info,
)
from llm_rollout.api.spec import SecretKeyRef
from llm_rollout.controller.applied import AppliedCache
from llm_rollout.controller.evals import EvalStep
from llm_rollout.controller.operator_metrics import OperatorMetrics
from llm_rollout.controller.retire import RETIRED_AT, RetireStep, plan_retirement
from llm_rollout.controller.roles import CANDIDATE, RETIRED, plan_roles, release_role
from llm_rollout.controller.settings import OperatorSettings
from llm_rollout.controller.wakers import Wakers
from llm_rollout.engine import (
    Decision,
    MetricQuery,
    Observation,
    ObservationError,
    ObservationErrorKind,
    analysis_due,
    decide,
    mark_failed,
    mark_invalid,
    plan_queries,
)
from llm_rollout.engine.analysis import ANALYSIS_TOLERANCE, interval_reference
from llm_rollout.engine.gates import gate_bounds
from llm_rollout.evals.metrics import EvalResultsCollector
from llm_rollout.kube.builders import (
    LABEL_DEPLOYMENT,
    LABEL_RELEASE,
    LABEL_ROLE,
    Owner,
    build_deployment,
    build_service,
    deployment_available,
)
from llm_rollout.kube.client import FIELD_MANAGER, KubeAPI
from llm_rollout.kube.errors import Conflict, Forbidden, Invalid, KubeError, NotFound
from llm_rollout.kube.secrets import secret_value
from llm_rollout.kube.times import format_time
from llm_rollout.metrics.providers import MetricsSource, ProviderCache
from llm_rollout.telemetry.rollout import decision_spans
from llm_rollout.telemetry.spans import RecordSink
from llm_rollout.traffic.providers import MeshTarget, kinds_of_others, provider_for

log = logging.getLogger("llm_rollout.operator")

# Role labels are written by their own field manager: a release's objects are applied
# by the operator's main manager only while the release is the spec's.
ROLE_MANAGER = "llm-rollout-role"

API_VERSION = f"{GROUP}/{VERSION}"


@dataclass
class Controller:
    """Shared by every LLMDeployment's reconcile loop."""

    kube: KubeAPI
    settings: OperatorSettings
    metrics: OperatorMetrics = field(default_factory=OperatorMetrics)
    providers: ProviderCache | None = None  # metrics providers, one per source
    evals: EvalStep | None = None  # eval runs (controller/evals.py); built from settings
    # The per-object loops' wake-ups (controller/wakers.py: not in kopf's memo).
    wakers: Wakers = field(default_factory=Wakers)
    # Release objects applied, by digest: unchanged ones are not applied every tick.
    applied_objects: AppliedCache = field(default_factory=AppliedCache)
    # Analysis and decision spans (telemetry/rollout.py); None: tracing is off.
    tracing: RecordSink | None = None

    def __post_init__(self) -> None:
        if self.providers is None:
            self.providers = ProviderCache(
                timeout=self.settings.query_timeout,
                max_in_flight=self.settings.prometheus_max_in_flight,
                batching=self.settings.batch_analysis,
                count_query=self.metrics.count_prometheus_query,
            )
        if self.evals is None:
            self.evals = EvalStep(
                self.kube, self.settings.evals, EvalResultsCollector(self.metrics.registry)
            )

    async def aclose(self) -> None:
        assert self.providers is not None
        await self.providers.aclose()
        if self.tracing is not None:
            # Flushes what is queued, for at most the exporter's 5 s.
            await asyncio.to_thread(self.tracing.shutdown)

    # -- inputs ---------------------------------------------------------------------

    async def _secret_value(self, namespace: str, ref: SecretKeyRef) -> str:
        return await secret_value(self.kube, namespace, ref.name, ref.key)

    async def _observe(
        self,
        spec: LLMDeploymentSpec,
        namespace: str,
        name: str,
        queries: list[MetricQuery],
        now: datetime,
    ) -> dict[str, Observation]:
        def all_errors(kind: ObservationErrorKind, message: str) -> dict[str, Observation]:
            return {q.key: ObservationError(kind, message) for q in queries}

        address = spec.prometheus.address or self.settings.prometheus_url
        token = None
        if spec.prometheus.bearer_token_secret_ref is not None:
            try:
                token = await self._secret_value(namespace, spec.prometheus.bearer_token_secret_ref)
            except LookupError as err:
                return all_errors(ObservationErrorKind.UNAUTHORIZED, f"bearer token: {err}")
        assert self.providers is not None
        batcher = self.providers.batcher(MetricsSource(address, token))
        results = await batcher.observe(queries, at=now)
        observations: dict[str, Observation] = {}
        for query, result in zip(queries, results, strict=True):
            if isinstance(result, float):
                observations[query.key] = result
            else:
                observations[query.key] = ObservationError(result.kind, result.message)
                self.metrics.count_query_error(namespace, name, result.kind.value)
        return observations

    def _observe_lag(
        self,
        spec: LLMDeploymentSpec,
        before: LLMDeploymentStatus,
        after: LLMDeploymentStatus,
        now: datetime,
    ) -> None:
        """How late this call's analysis started, if it ran one: it was due one interval
        after the reference; an overloaded operator's loops wake later, which this shows
        before any rollout is affected. Calls that analyse nothing (paused, rolled back,
        waiting for pods) are not analyses and record nothing."""
        if after.last_analysis_time != now:
            return
        since = interval_reference(before)
        if since is not None:
            late = (now - since).total_seconds() - spec.analysis.interval_seconds
            self.metrics.analysis_lag.observe(max(0.0, late))

    async def _release_deployments(self, namespace: str, name: str) -> list[dict[str, Any]]:
        return await self.kube.list(
            "apps/v1", "Deployment", namespace, f"{LABEL_DEPLOYMENT}={name}"
        )

    # -- outputs --------------------------------------------------------------------

    async def _apply_release(
        self,
        owner: Owner,
        spec: LLMDeploymentSpec,
        status: LLMDeploymentStatus,
        deployments: list[dict[str, Any]],
        now: datetime,
    ) -> dict[str, tuple[str, str]]:
        """Apply the spec's release; returns {object name: (release, role applied)}."""
        release = release_info(spec)
        role = release_role(release.id, status)
        if role == RETIRED and not (status.candidate and status.candidate.id == release.id):
            role = CANDIDATE  # a new release: decide() is about to make it the candidate
        deployment = build_deployment(
            owner,
            release,
            template=spec.release.template,
            replicas=spec.release.replicas,
            role=role,
        )
        service = build_service(owner, release, port=spec.release.port, role=role)
        # The Service is not listed each tick: it is taken to be there with its
        # Deployment (and put back by the periodic re-apply if it is not).
        present = deployment["metadata"]["name"] in {d["metadata"]["name"] for d in deployments}
        for manifest in (deployment, service):
            if self.applied_objects.needed(manifest, FIELD_MANAGER, present=present, now=now):
                await self.kube.apply(manifest)
                self.applied_objects.applied(manifest, FIELD_MANAGER, now=now)
        return {deployment["metadata"]["name"]: (release.id, role)}

    async def _relabel(
        self,
        owner: Owner,
        deployments: list[dict[str, Any]],
        status: LLMDeploymentStatus,
        applied: dict[str, tuple[str, str]],
    ) -> None:
        """Role labels say what each release is after this decision (controller/roles.py)."""
        for name, role in plan_roles(deployments, status, applied):
            patch = {
                "metadata": {
                    "name": name,
                    "namespace": owner.namespace,
                    "labels": {LABEL_ROLE: role},
                }
            }
            for api_version, kind in (("apps/v1", "Deployment"), ("v1", "Service")):
                with contextlib.suppress(NotFound, Invalid):  # gone, or a Service never made
                    await self.kube.apply(
                        {"apiVersion": api_version, "kind": kind, **patch}, manager=ROLE_MANAGER
                    )

    async def _apply_routing(
        self, owner: Owner, spec: LLMDeploymentSpec, status: LLMDeploymentStatus
    ) -> None:
        if status.routing is None:
            return
        target = MeshTarget(
            owner=owner,
            port=spec.release.port,
            cohorts=spec.cohorts,
            default_cohort=spec.default_cohort,
            user_id_header=spec.user_id_header,
        )
        for manifest in provider_for(spec.routing).render(target, status.routing):
            await self.kube.apply(manifest)

    async def _remove_other_routing(self, owner: Owner, spec: LLMDeploymentSpec) -> None:
        """Delete what other providers applied: a stale VirtualService or HTTPRoute would
        keep routing with old weights after a switch (to builtin, say)."""
        for kind in kinds_of_others(spec.routing.provider):
            try:
                deleted = await self.kube.delete(
                    kind.api_version, kind.kind, owner.namespace, owner.name
                )
            except Forbidden:
                # RBAC from before this operator deleted routes: say how to fix it, and do
                # not hold every rollout of the namespace hostage to it.
                log.warning(
                    "%s/%s: not allowed to delete %s %s left by an earlier routing provider; "
                    "grant the operator delete on %s (the chart does), or delete it by hand",
                    owner.namespace,
                    owner.name,
                    kind.kind,
                    owner.name,
                    kind.plural,
                )
                continue
            if deleted:
                log.info(
                    "deleted %s %s/%s left by an earlier routing provider",
                    kind.kind,
                    owner.namespace,
                    owner.name,
                )

    async def _retire(
        self, owner: Owner, deployments: list[dict[str, Any]], live: set[str], now: datetime
    ) -> None:
        for action in plan_retirement(
            deployments,
            live,
            now=now,
            scale_down_delay=self.settings.scale_down_delay,
            retention=self.settings.retention,
        ):
            ident = {"name": action.name, "namespace": owner.namespace}
            base: dict[str, Any] = {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": ident,
            }
            if action.step is RetireStep.DELETE:
                log.info(
                    "deleting retired release %s of %s/%s",
                    action.release,
                    owner.namespace,
                    owner.name,
                )
                await self.kube.delete("apps/v1", "Deployment", owner.namespace, action.name)
                await self.kube.delete("v1", "Service", owner.namespace, action.name)
            elif action.step is RetireStep.MARK:
                stamp = format_time(now)
                await self.kube.apply(
                    base | {"metadata": ident | {"annotations": {RETIRED_AT: stamp}}},
                    manager="llm-rollout-retire",
                )
            elif action.step is RetireStep.UNMARK:
                await self.kube.apply(base, manager="llm-rollout-retire")
            else:
                await self.kube.apply(
                    base | {"spec": {"replicas": 0}}, manager="llm-rollout-retire"
                )

    # -- the step -------------------------------------------------------------------

    async def reconcile(
        self, namespace: str, name: str, now: datetime | None = None
    ) -> float | None:
        """Run one step; returns seconds until the next one is due (None: on change only).

        Raises Conflict when the object changed under us: the caller retries at once.
        """
        started = time.monotonic()
        on_the_clock = now is None  # an explicit `now` (tests, replays) is used as given
        now = now or datetime.now(UTC)
        obj = await self.kube.get(API_VERSION, "LLMDeployment", namespace, name)
        assert self.evals is not None
        if obj is None:
            self.metrics.forget(namespace, name)
            self.evals.forget(namespace, name)
            self.applied_objects.forget(namespace, f"{name}-")
            return None
        meta = obj["metadata"]
        owner = Owner(namespace, name, meta["uid"])
        generation = int(meta.get("generation", 0))
        status = LLMDeploymentStatus.model_validate(obj.get("status") or {})

        try:
            spec = LLMDeploymentSpec.model_validate(obj.get("spec") or {})
        except ValidationError as err:
            problems = [
                f"spec.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
            ]
            invalid = mark_invalid(status, now=now, generation=generation, problems=problems)
            await self._write(obj, status, invalid)
            self._trace(owner, status, invalid, now)
            return None
        address = spec.prometheus.address or self.settings.prometheus_url
        if not self.settings.prometheus_allowed(address):
            # Waiting cannot fix this: Invalid at once, nothing applied, never queried.
            self.metrics.count_query_error(namespace, name, ObservationErrorKind.FORBIDDEN.value)
            problem = (
                f"spec.prometheus.address: {address} is not allowed by the operator; "
                f"start it with --allow-prometheus={address} (chart value "
                "operator.allowedPrometheus) or remove the address"
            )
            log.warning("%s/%s: %s", namespace, name, problem)
            invalid = mark_invalid(status, now=now, generation=generation, problems=[problem])
            await self._write(obj, status, invalid)
            self._trace(owner, status, invalid, now)
            return None

        deployments = await self._release_deployments(namespace, name)
        decision: Decision | None = None
        applied: dict[str, tuple[str, str]] = {}
        try:
            applied = await self._apply_release(owner, spec, status, deployments, now)
        except Invalid as err:
            reason = err.message
            if not spec.release.template:
                reason += " (spec.release.template is empty: a release needs a pod template)"
            decision = mark_failed(
                spec,
                status,
                now=now,
                generation=generation,
                reason="ReleaseRejected",
                message=reason,
                action=action_from_annotations(meta.get("annotations")),
            )

        if decision is None:
            ready = frozenset(
                d["metadata"]["labels"].get(LABEL_RELEASE, "")
                for d in deployments
                if deployment_available(d, spec.release.replicas)
            )
            # With suites: their runs (also exported as llm_eval_score) and their states.
            runs = await self.evals.runs(namespace, name) if spec.evals else []
            if not spec.evals:
                self.evals.forget(namespace, name)
            eval_states = await self.evals.states(spec, status, namespace, name, runs)
            observations: dict[str, Observation] = {}
            if analysis_due(spec, status, now):
                if on_the_clock:
                    # Rollouts due in the same tick are analysed at the same moment and
                    # share grouped queries; the batcher waits until it has passed.
                    # Rounded up, so a step's evidence never starts before its decision.
                    now = next_tick(now, self.settings.analysis_tick)
                queries = plan_queries(spec, status, namespace, name, now=now)
                if queries:
                    observations = await self._observe(spec, namespace, name, queries, now)
            decision = decide(
                spec,
                status,
                now=now,
                name=name,
                generation=generation,
                observations=observations,
                ready_releases=ready,
                action=action_from_annotations(meta.get("annotations")),
                evals=eval_states,
            )

        if status.routing_provider is not decision.status.routing_provider:
            await self._remove_other_routing(owner, spec)  # before the status says it is done
        await self._write(obj, status, decision)
        new = decision.status
        self._observe_lag(spec, status, new, now)
        if spec.evals:
            await self.evals.act(owner, spec, new, runs)
        await self._apply_routing(owner, spec, new)
        live = {release_info(spec).id}
        if new.stable:
            live.add(new.stable.id)
        if new.candidate and new.phase in (Phase.PROGRESSING, Phase.PAUSED):
            live.add(new.candidate.id)
        await self._relabel(owner, deployments, new, applied)
        await self._retire(owner, deployments, live, now)
        self._trace(owner, status, decision, now)

        stage = next((st for st in spec.stages if st.name == new.stage), None)
        bounds = gate_bounds(spec, stage) if stage else {}
        self.metrics.observe_status(namespace, name, new, bounds)
        self.metrics.analysis_seconds.observe(time.monotonic() - started)
        if decision.requeue_after is None or not on_the_clock:
            return decision.requeue_after
        # The engine counts from `now`; this call took time past it (the tick's wait,
        # the writes). Aim a little before the due moment (within the engine's
        # tolerance), so the next analysis keeps its tick instead of slipping to the next.
        lead = min(0.05, ANALYSIS_TOLERANCE * spec.analysis.interval_seconds / 2)
        spent = (datetime.now(UTC) - now).total_seconds()
        return max(0.0, decision.requeue_after - spent - lead)

    def _trace(
        self, owner: Owner, before: LLMDeploymentStatus, decision: Decision, now: datetime
    ) -> None:
        """Send this step's analysis and decision spans (after its writes: a span never
        shows a decision that status does not have). Queued, never waited on."""
        if self.tracing is None:
            return
        spans = decision_spans(
            owner,
            before,
            decision,
            started=now,
            finished=max(now, datetime.now(UTC)),
        )
        if spans:
            self.tracing.send(spans)

    async def _write(
        self, obj: dict[str, Any], old: LLMDeploymentStatus, decision: Decision
    ) -> None:
        meta = obj["metadata"]
        new = decision.status
        if _dump(new) != _dump(old):
            await self.kube.replace_status(obj, _dump(new))
        if decision.notable:
            ns, name = meta["namespace"], meta["name"]
            self.metrics.count_decision(ns, name, decision.outcome.value)
            log.info(
                "%s/%s: %s (%s) %s",
                ns,
                name,
                decision.outcome.value,
                decision.reason,
                decision.message,
            )
            try:
                await self.kube.event(
                    obj,
                    reason=decision.outcome.value,
                    message=f"{decision.reason}: {decision.message}",
                    warning=decision.warning,
                )
            except KubeError as err:  # an Event is worth a log line, not a retry
                log.warning("could not post an Event for %s/%s: %s", ns, name, err.reason)


def next_tick(moment: datetime, tick: float) -> datetime:
    """`moment` rounded up to a multiple of `tick` seconds (unchanged if tick is 0)."""
    if tick <= 0:
        return moment
    stamp = math.ceil(moment.timestamp() / tick) * tick
    return datetime.fromtimestamp(stamp, UTC)


def _dump(status: LLMDeploymentStatus) -> dict[str, Any]:
    return status.model_dump(mode="json", by_alias=True, exclude_none=True)


__all__ = ["Conflict", "Controller"]

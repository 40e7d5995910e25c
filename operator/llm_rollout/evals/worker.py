"""`llm-rollout eval --run NS/NAME`: execute one LLMEvalRun and write its status.

The same code runs in a Kubernetes Job (in-cluster credentials, release Services
at `http://<deployment>-<release>.<ns>.svc:<port>`) and as a local process started
by the operator's local executor (`--kubeconfig`, release URLs from `--backend` /
`--backend-file`, the router's format). Steps: read the run (its spec carries the
suite), the dataset ConfigMap and the judges' API-key Secrets; mark the run
Running; evaluate every case against the release (and stable, with
compareStable); aggregate; mark it Succeeded or Failed with the reason. A run
that is already finished is left alone, so a retried Job does not redo it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from llm_rollout import GROUP, VERSION
from llm_rollout.api.evalrun import (
    EVAL_RUN_KIND,
    EvalPhase,
    EvalResult,
    LLMEvalRunSpec,
    LLMEvalRunStatus,
)
from llm_rollout.api.spec import EvalSuite
from llm_rollout.evals.aggregate import CaseOutcome, aggregate, failures, run_problem
from llm_rollout.evals.cases import Target, evaluate
from llm_rollout.evals.client import ChatClient, wait_until_reachable
from llm_rollout.evals.dataset import Case, DatasetError, parse_dataset, sample_cases
from llm_rollout.evals.manifests import EXECUTOR_ENV
from llm_rollout.kube.client import KubeClient, new_api_client
from llm_rollout.kube.secrets import SecretMissing, secret_value
from llm_rollout.kube.times import format_time, parse_time
from llm_rollout.telemetry import genai
from llm_rollout.telemetry.evalrun import EvalRunTrace, RunEnd, eval_run_spans, eval_run_trace
from llm_rollout.telemetry.export import ExportSettings, tracer_provider
from llm_rollout.telemetry.spans import RecordSink
from llm_rollout.traffic.backends import BackendResolver, ServiceBackends, StaticBackends

log = logging.getLogger("llm_rollout.eval")
# How long a release may stay unreachable before its cases run anyway (a Service
# catching up with its pods; see wait_until_reachable).
REACHABLE_TIMEOUT = 30.0

API_VERSION = f"{GROUP}/{VERSION}"
PROGRESS_EVERY = 2.0  # seconds between progress writes


class RunFailure(Exception):
    """The run cannot proceed: recorded as Failed with `reason` and the message."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class RunTracing:
    """Where the run's spans go, and whether the cases' content goes with them."""

    sink: RecordSink
    content: genai.ContentPolicy
    outcomes: Counter[str]  # spans by export outcome, for the closing log line


def _owner_uid(obj: dict[str, Any]) -> str | None:
    """The uid of the LLMDeployment the run belongs to (the operator sets it)."""
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("kind") == "LLMDeployment" and ref.get("uid"):
            return str(ref["uid"])
    return None


class EvalRun:
    """One LLMEvalRun being executed."""

    def __init__(
        self,
        kube: KubeClient,
        namespace: str,
        name: str,
        backends: BackendResolver | None,
        tracing: RunTracing | None = None,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.backends = backends
        self.tracing = tracing
        self._outcomes: dict[str, list[CaseOutcome]] = {}
        self._last_progress = 0.0
        self._writes: set[asyncio.Task[Any]] = set()

    async def _patch(self, status: dict[str, Any]) -> None:
        await self.kube.patch_status(API_VERSION, EVAL_RUN_KIND, self.namespace, self.name, status)

    async def _config_map_text(self, suite: EvalSuite) -> str:
        ref = suite.dataset.config_map_ref
        cm = await self.kube.get("v1", "ConfigMap", self.namespace, ref.name)
        if cm is None:
            raise RunFailure(
                "DatasetMissing", f"ConfigMap {self.namespace}/{ref.name} (the dataset) not found"
            )
        text = (cm.get("data") or {}).get(ref.key)
        if text is None:
            raise RunFailure(
                "DatasetMissing", f"ConfigMap {self.namespace}/{ref.name} has no key {ref.key!r}"
            )
        return str(text)

    async def _api_keys(self, suite: EvalSuite) -> dict[str, str | None]:
        keys: dict[str, str | None] = {}
        for judge in suite.judges:
            ref = judge.api_key_secret_ref
            if ref is None:
                keys[judge.name] = None
                continue
            try:
                keys[judge.name] = await secret_value(self.kube, self.namespace, ref.name, ref.key)
            except SecretMissing as exc:
                raise RunFailure("SecretMissing", f"judge {judge.name}: {exc}") from None
        return keys

    def _targets(self, spec: LLMEvalRunSpec) -> list[Target]:
        resolver = self.backends or ServiceBackends(port=spec.port)
        releases = [spec.release] + ([spec.stable_release] if spec.stable_release else [])
        targets = []
        for release in releases:
            url = resolver.resolve(self.namespace, spec.deployment, release)
            if url is None:
                raise RunFailure(
                    "NoBackend",
                    f"no backend URL known for release {release} of "
                    f"{self.namespace}/{spec.deployment}",
                )
            targets.append(Target(release, url))
        return targets

    def _progress(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self._last_progress < PROGRESS_EVERY:
            return
        self._last_progress = now
        task = asyncio.ensure_future(self._patch({"progress": f"{done}/{total}"}))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _settle_progress(self) -> None:
        # A lost progress write is fine; a late one must not land after the result.
        await asyncio.gather(*self._writes, return_exceptions=True)

    async def _evaluate(
        self,
        spec: LLMEvalRunSpec,
        cases: list[Case],
        keys: dict[str, str | None],
        targets: list[Target],
        trace: EvalRunTrace | None,
    ) -> dict[str, Any]:
        suite = spec.suite

        def trace_headers(target: Target, case: Case) -> dict[str, str]:
            assert trace is not None
            return {"traceparent": trace.traceparent(target.release, case.id)}

        for target in targets:
            if not await wait_until_reachable(target.url, within=REACHABLE_TIMEOUT):
                log.warning(
                    "release %s at %s: no connection after %.0fs; running the cases anyway",
                    target.release,
                    target.url,
                    REACHABLE_TIMEOUT,
                )
        async with httpx.AsyncClient() as http:
            client = ChatClient(http, timeout=suite.request_timeout_seconds)
            outcomes = await evaluate(
                suite,
                cases,
                targets,
                client=client,
                model=spec.model or spec.release,
                api_keys=keys,
                progress=self._progress,
                trace_headers=trace_headers if trace is not None else None,
            )
        self._outcomes = outcomes
        results = [aggregate(suite, t.release, outcomes[t.release]) for t in targets]
        candidate, stable = results[0], results[1] if len(results) > 1 else None
        problem = next((p for r in results if (p := run_problem(suite, r))), None)
        status: dict[str, Any] = {
            "candidate": _dump(candidate),
            "stable": _dump(stable) if stable else None,
            "composite": candidate.composite,
            "failures": [
                f.model_dump(mode="json", by_alias=True) for f in failures(suite, outcomes)
            ],
        }
        if problem is not None:
            reason, message = problem
            return status | {"phase": EvalPhase.FAILED.value, "reason": reason, "message": message}
        counts = candidate.cases
        return status | {
            "phase": EvalPhase.SUCCEEDED.value,
            "reason": "Completed",
            "message": f"{counts.passed}/{counts.total} cases passed, composite "
            f"{_score(candidate.composite)}"
            + (f" (stable {_score(stable.composite)})" if stable else ""),
        }

    async def execute(self) -> int:
        obj = await self.kube.get(API_VERSION, EVAL_RUN_KIND, self.namespace, self.name)
        if obj is None:
            print(f"error: LLMEvalRun {self.namespace}/{self.name} not found", file=sys.stderr)
            return 2
        status = LLMEvalRunStatus.from_object(obj.get("status"))
        if status.finished:
            log.info("%s/%s already %s; nothing to do", self.namespace, self.name, status.phase)
            return 0
        spec = LLMEvalRunSpec.model_validate(obj["spec"])
        trace = self._trace(spec, obj)
        created = parse_time(obj["metadata"].get("creationTimestamp")) or _now()
        deadline = created + timedelta(seconds=spec.suite.timeout_seconds)
        started = _now()
        await self._patch(
            {
                "phase": EvalPhase.RUNNING.value,
                "reason": "Running",
                "message": "",
                "startTime": format_time(started),
                "completionTime": None,
                "progress": "",
                "executor": os.environ.get(EXECUTOR_ENV, "manual"),
                "candidate": None,
                "stable": None,
                "composite": None,
                "failures": [],
            }
        )
        try:
            suite = spec.suite
            try:
                cases = parse_dataset(await self._config_map_text(suite))
            except DatasetError as err:
                raise RunFailure("InvalidDataset", str(err)) from None
            cases = sample_cases(cases, suite.sample, seed=suite.name)
            keys = await self._api_keys(suite)
            targets = self._targets(spec)
            remaining = (deadline - _now()).total_seconds()
            if remaining <= 0:
                raise RunFailure("TimedOut", "the run's timeout passed before it started")
            log.info(
                "%s/%s: %d cases against %s",
                self.namespace,
                self.name,
                len(cases),
                ", ".join(f"{t.release} ({t.url})" for t in targets),
            )
            try:
                final = await asyncio.wait_for(
                    self._evaluate(spec, cases, keys, targets, trace), timeout=remaining
                )
            except TimeoutError:
                raise RunFailure(
                    "TimedOut", f"did not finish within its timeout of {suite.timeout}"
                ) from None
        except RunFailure as failure:
            final = {
                "phase": EvalPhase.FAILED.value,
                "reason": failure.reason,
                "message": str(failure),
            }
        final["completionTime"] = format_time(_now())
        await self._settle_progress()
        await self._patch(final)
        if trace is not None:
            self._send_spans(trace, spec, final, started)
        log.info(
            "%s/%s: %s (%s) %s",
            self.namespace,
            self.name,
            final["phase"],
            final.get("reason"),
            final.get("message"),
        )
        return 0

    def _trace(self, spec: LLMEvalRunSpec, obj: dict[str, Any]) -> EvalRunTrace | None:
        """Where the run's spans go; None when tracing is off or the run not sampled."""
        if self.tracing is None:
            return None
        trace = eval_run_trace(self.namespace, self.name, spec, _owner_uid(obj))
        return trace if self.tracing.sink.sampled(trace.trace_id) else None

    def _send_spans(
        self, trace: EvalRunTrace, spec: LLMEvalRunSpec, final: dict[str, Any], started: datetime
    ) -> None:
        assert self.tracing is not None
        counts = (final.get("candidate") or {}).get("cases") or {}
        end = RunEnd(
            phase=final["phase"],
            reason=final.get("reason", ""),
            message=final.get("message", ""),
            composite=final.get("composite"),
            cases_total=int(counts.get("total", 0)),
            cases_passed=int(counts.get("pass", 0)),
        )
        spans = eval_run_spans(
            trace,
            namespace=self.namespace,
            run_name=self.name,
            spec=spec,
            outcomes=self._outcomes,
            started_ns=int(started.timestamp() * 1e9),
            ended_ns=int(_now().timestamp() * 1e9),
            end=end,
            content=self.tracing.content,
        )
        self.tracing.sink.send(spans)


def _dump(result: EvalResult) -> dict[str, Any]:
    return result.model_dump(mode="json", by_alias=True)


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def backends_from(specs: list[str], path: str | None) -> StaticBackends | None:
    """Static release URLs from --backend / --backend-file; None: in-cluster Services."""
    if not specs and not path:
        return None
    backends = StaticBackends.from_specs(specs)
    if path:
        backends.replace({**StaticBackends.parse_file(path), **backends.mapping})
    return backends


def run_tracing(args: argparse.Namespace) -> RunTracing | None:
    """Tracing from the flags, else the OTEL_* variables; None when off. ValueError: bad."""
    settings = ExportSettings.from_env(
        os.environ,
        service_name="llm-rollout-eval",
        endpoint=args.otlp_endpoint,
        sample_ratio=args.trace_sample_ratio,
    )
    if settings is None:
        return None
    outcomes: Counter[str] = Counter()

    def count(outcome: str, n: int) -> None:
        outcomes[outcome] += n

    tracing = RunTracing(
        sink=RecordSink(tracer_provider(settings, count), "llm_rollout.eval"),
        content=genai.ContentPolicy(
            capture=genai.truthy(os.environ.get(genai.CAPTURE_CONTENT_ENV))
        ),
        outcomes=outcomes,
    )
    log.info("tracing the run to %s (sample ratio %s)", settings.endpoint, settings.sample_ratio)
    return tracing


def _close_tracing(tracing: RunTracing) -> None:
    tracing.sink.shutdown()  # sends what is queued, within the exporter's timeout
    sent, failed = tracing.outcomes["exported"], tracing.outcomes["export_failed"]
    dropped = failed + tracing.outcomes["queue_full"]
    if dropped:
        log.warning("trace export: %d spans sent, %d dropped (%d failed)", sent, dropped, failed)
    else:
        log.info("trace export: %d spans sent", sent)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request otherwise
    namespace, sep, name = args.run.partition("/")
    if not sep or not namespace or not name:
        print("error: --run must be NAMESPACE/NAME", file=sys.stderr)
        return 2
    try:
        backends = backends_from(args.backend, args.backend_file)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        tracing = run_tracing(args)
    except ValueError as err:  # e.g. an OTLP endpoint that is no URL: say so, do not run
        print(f"error: {err}", file=sys.stderr)
        return 2
    kube = KubeClient(new_api_client(args.kubeconfig))
    runner = EvalRun(kube, namespace, name, backends, tracing)

    async def main() -> int:
        try:
            return await runner.execute()
        except Exception as err:  # record what broke the runner, then fail the process
            log.exception("eval run %s/%s broke", namespace, name)
            try:
                await runner._patch(
                    {
                        "phase": EvalPhase.FAILED.value,
                        "reason": "RunnerError",
                        "message": f"{type(err).__name__}: {err}"[:1000],
                        "completionTime": format_time(_now()),
                    }
                )
            except Exception:
                log.exception("could not record the failure")
            return 1

    try:
        return asyncio.run(main())
    finally:
        if tracing is not None:
            _close_tracing(tracing)

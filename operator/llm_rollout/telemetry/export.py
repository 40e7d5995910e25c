"""A tracer provider that exports OTLP/HTTP from a worker thread and never blocks or fails
the caller: a full queue or a failed export drops spans and counts them.

Settings come from flags, else the standard `OTEL_*` environment variables
(`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_EXPORTER_OTLP_ENDPOINT`,
`OTEL_TRACES_SAMPLER_ARG`, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
`OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_BSP_*`, `OTEL_SDK_DISABLED`).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from llm_rollout.telemetry.genai import truthy

log = logging.getLogger("llm_rollout.telemetry")

# Called with (outcome, count): outcome is "exported", "queue_full" or "export_failed".
SpanCounter = Callable[[str, int], None]


@dataclass(frozen=True)
class ExportSettings:
    endpoint: str  # the OTLP/HTTP traces URL, e.g. http://collector:4318/v1/traces
    service_name: str
    sample_ratio: float = 1.0
    queue_size: int = 8192
    batch_size: int = 512
    schedule_delay: float = 1.0
    export_timeout: float = 5.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.sample_ratio <= 1.0:
            raise ValueError(f"trace sample ratio {self.sample_ratio} is not in [0, 1]")
        if self.queue_size < 1 or not 1 <= self.batch_size <= self.queue_size:
            raise ValueError("trace queue and batch sizes must be positive, batch <= queue")

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str],
        *,
        service_name: str,
        endpoint: str | None = None,
        sample_ratio: float | None = None,
    ) -> ExportSettings | None:
        """Settings, or None when tracing is off (no endpoint, or OTEL_SDK_DISABLED)."""
        if truthy(env.get("OTEL_SDK_DISABLED")):
            return None
        if not endpoint:
            endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or ""
            base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
            if not endpoint and base:
                endpoint = base.rstrip("/") + "/v1/traces"
        if not endpoint:
            return None
        if not endpoint.startswith(("http://", "https://")):
            raise ValueError(f"OTLP endpoint {endpoint!r} is not an http(s) URL")
        if sample_ratio is None:
            sampler = env.get("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
            arg = env.get("OTEL_TRACES_SAMPLER_ARG")
            sample_ratio = float(arg) if arg and sampler.endswith("traceidratio") else 1.0
        return cls(
            endpoint=endpoint,
            service_name=env.get("OTEL_SERVICE_NAME") or service_name,
            sample_ratio=sample_ratio,
            queue_size=int(env.get("OTEL_BSP_MAX_QUEUE_SIZE") or cls.queue_size),
            batch_size=int(env.get("OTEL_BSP_MAX_EXPORT_BATCH_SIZE") or cls.batch_size),
            schedule_delay=float(env.get("OTEL_BSP_SCHEDULE_DELAY") or cls.schedule_delay * 1e3)
            / 1e3,
            export_timeout=float(env.get("OTEL_BSP_EXPORT_TIMEOUT") or cls.export_timeout * 1e3)
            / 1e3,
        )


class DroppingBatchProcessor(SpanProcessor):
    """Queues ended, sampled spans; a worker thread exports them in batches.

    The SDK's BatchSpanProcessor drops on a full queue too, but only logs it; this one
    hands every outcome to `count`, so drops show on /metrics. A slow or dead backend
    costs the caller one deque append per span, never a wait.
    """

    def __init__(
        self,
        exporter: SpanExporter,
        *,
        queue_size: int,
        batch_size: int,
        schedule_delay: float,
        count: SpanCounter,
    ) -> None:
        self._exporter = exporter
        self._queue: collections.deque[ReadableSpan] = collections.deque()
        self._queue_size = queue_size
        self._batch_size = batch_size
        self._delay = schedule_delay
        self._count = count
        self._wake = threading.Event()
        self._stopping = False
        self._export_lock = threading.Lock()
        self._failing = False
        self._worker = threading.Thread(target=self._run, name="otlp-export", daemon=True)
        self._worker.start()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        if not span.context.trace_flags.sampled:
            return
        if self._stopping or len(self._queue) >= self._queue_size:
            self._count("queue_full", 1)
            return
        self._queue.append(span)
        if len(self._queue) >= self._batch_size:
            self._wake.set()

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self._delay)
            self._wake.clear()
            self._export_queued()

    def _export_queued(self, deadline: float | None = None) -> None:
        with self._export_lock:
            while self._queue and (deadline is None or time.monotonic() < deadline):
                batch = [
                    self._queue.popleft() for _ in range(min(self._batch_size, len(self._queue)))
                ]
                self._export(batch)

    def _export(self, batch: Sequence[ReadableSpan]) -> None:
        try:
            ok = self._exporter.export(batch) is SpanExportResult.SUCCESS
        except Exception:
            log.exception("exporting %d spans raised", len(batch))
            ok = False
        self._count("exported" if ok else "export_failed", len(batch))
        if ok == self._failing:  # log changes of state, not every failed batch
            self._failing = not ok
            if ok:
                log.info("trace export recovered")
            else:
                log.warning(
                    "trace export failing: spans are dropped (and counted) until it recovers"
                )

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        self._export_queued(time.monotonic() + timeout_millis / 1e3)
        return not self._queue

    def shutdown(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        self._wake.set()
        self._worker.join(timeout=5.0)
        self._export_queued(time.monotonic() + 5.0)
        self._exporter.shutdown()


def tracer_provider(
    settings: ExportSettings,
    count: SpanCounter,
    exporter: SpanExporter | None = None,
    resource_attributes: Mapping[str, str] | None = None,
) -> TracerProvider:
    """A provider sampling parent-based with a trace-id ratio, exporting OTLP/HTTP."""
    if exporter is None:
        from llm_rollout.telemetry.otlp import FastOTLPSpanExporter

        exporter = FastOTLPSpanExporter(endpoint=settings.endpoint, timeout=settings.export_timeout)
    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": settings.service_name, **(resource_attributes or {})}
        ),
        sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)),
    )
    provider.add_span_processor(
        DroppingBatchProcessor(
            exporter,
            queue_size=settings.queue_size,
            batch_size=settings.batch_size,
            schedule_delay=settings.schedule_delay,
            count=count,
        )
    )
    return provider

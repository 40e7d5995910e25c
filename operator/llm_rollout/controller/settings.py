"""Operator-wide settings (flags of `llm-rollout operator`, or the Helm chart's values)."""

from __future__ import annotations

from dataclasses import dataclass, field

from llm_rollout.evals.settings import EvalSettings
from llm_rollout.metrics.providers.prometheus import DEFAULT_MAX_IN_FLIGHT
from llm_rollout.telemetry.export import ExportSettings


@dataclass(frozen=True)
class OperatorSettings:
    # Prometheus used when a spec names none; always allowed.
    prometheus_url: str = "http://prometheus:9090"
    # Further addresses a spec may name. A namespace user must not be able to make
    # the operator call arbitrary URLs, so anything else is refused.
    allowed_prometheus: frozenset[str] = field(default_factory=frozenset)
    query_timeout: float = 5.0
    # Queries in flight per Prometheus address and credential (more wait in the operator).
    prometheus_max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    # Batched analysis: count queries of all rollouts analysed in the same tick asked
    # as one grouped query per counter (metrics/batch.py); off: one query per rollout.
    batch_analysis: bool = True
    # Analysis times are rounded up to this (seconds), so rollouts due in the same tick
    # are analysed at the same time and share grouped queries; 0: not rounded.
    analysis_tick: float = 1.0
    # Namespaces to watch; empty: the whole cluster.
    namespaces: tuple[str, ...] = ()
    # Superseded or rolled-back releases: scaled to zero after this delay, deleted
    # after the retention (both from when the release stopped being live).
    scale_down_delay: float = 300.0
    retention: float = 3600.0
    metrics_listen: str = "0.0.0.0:8080"
    # How eval runs are executed (--eval-* flags; docs/evals.md).
    evals: EvalSettings = field(default_factory=EvalSettings)
    # Where analysis and decision spans go (--otlp-endpoint, OTEL_*); None: not traced.
    tracing: ExportSettings | None = None

    def prometheus_allowed(self, address: str) -> bool:
        norm = address.rstrip("/")
        return norm == self.prometheus_url.rstrip("/") or norm in {
            a.rstrip("/") for a in self.allowed_prometheus
        }

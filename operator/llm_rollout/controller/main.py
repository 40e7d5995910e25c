"""`llm-rollout operator`: run the kopf operator."""

from __future__ import annotations

import argparse
import logging
import os
import socket
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from llm_rollout.controller.settings import OperatorSettings
from llm_rollout.evals import settings as eval_settings
from llm_rollout.telemetry.export import ExportSettings

if TYPE_CHECKING:
    from llm_rollout.controller.operator_metrics import OperatorMetrics
    from llm_rollout.telemetry.spans import RecordSink


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--prometheus-url",
        default=os.environ.get("PROMETHEUS_URL", "http://prometheus:9090"),
        help="Prometheus used when a spec names none (env PROMETHEUS_URL)",
    )
    parser.add_argument(
        "--allow-prometheus",
        action="append",
        default=[],
        metavar="URL",
        help="a further Prometheus address specs may name (repeatable)",
    )
    parser.add_argument(
        "--namespace",
        action="append",
        default=[],
        help="namespace to watch (repeatable; default: the whole cluster)",
    )
    parser.add_argument(
        "--metrics-listen", default="0.0.0.0:8080", help="host:port of /metrics and /healthz"
    )
    parser.add_argument(
        "--scale-down-delay",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="keep a retired release's pods this long before scaling to zero",
    )
    parser.add_argument(
        "--retention",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="delete a retired release's Deployment after this long",
    )
    parser.add_argument("--query-timeout", type=float, default=5.0, metavar="SECONDS")
    parser.add_argument(
        "--prometheus-max-in-flight",
        type=_positive_int,
        default=OperatorSettings.prometheus_max_in_flight,
        metavar="N",
        help="queries sent at a time per Prometheus address and credential; the rest wait "
        "(a wait never counts as a query timeout)",
    )
    parser.add_argument(
        "--batch-analysis",
        action=argparse.BooleanOptionalAction,
        default=OperatorSettings.batch_analysis,
        help="answer the count queries of all rollouts analysed in the same tick with one "
        "grouped query per counter (same answers; --no-batch-analysis: one query per "
        "rollout and part)",
    )
    parser.add_argument(
        "--analysis-tick",
        type=float,
        default=OperatorSettings.analysis_tick,
        metavar="SECONDS",
        help="round analysis times up to this, so rollouts due in one tick share their "
        "queries (0: no rounding)",
    )
    parser.add_argument(
        "--otlp-endpoint",
        default=None,
        metavar="URL",
        help="send a span per analysis and per decision (OTLP/HTTP) here, e.g. "
        "http://collector:4318/v1/traces (else $OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, or "
        "$OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces; none: no tracing)",
    )
    parser.add_argument(
        "--trace-sample-ratio",
        type=float,
        default=None,
        metavar="RATIO",
        help="share of rollouts traced, 0..1, each whole or not at all "
        "(else $OTEL_TRACES_SAMPLER_ARG, else 1)",
    )
    parser.add_argument(
        "--kubeconfig", default=None, help="kubeconfig (default: in-cluster, then $KUBECONFIG)"
    )
    parser.add_argument("--verbose", action="store_true")
    from llm_rollout.controller import leadership

    leadership.add_arguments(parser)
    eval_settings.add_arguments(parser)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def settings_from_args(args: argparse.Namespace) -> OperatorSettings:
    tracing = ExportSettings.from_env(
        os.environ,
        service_name="llm-rollout-operator",
        endpoint=args.otlp_endpoint,
        sample_ratio=args.trace_sample_ratio,
    )
    return OperatorSettings(
        prometheus_url=args.prometheus_url,
        allowed_prometheus=frozenset(args.allow_prometheus),
        query_timeout=args.query_timeout,
        prometheus_max_in_flight=args.prometheus_max_in_flight,
        batch_analysis=args.batch_analysis,
        analysis_tick=args.analysis_tick,
        namespaces=tuple(args.namespace),
        scale_down_delay=args.scale_down_delay,
        retention=args.retention,
        metrics_listen=args.metrics_listen,
        evals=replace(eval_settings.settings_from_args(args), tracing=tracing),
        tracing=tracing,
    )


# Loggers that speak at INFO for every request or event: without --verbose only their
# warnings are shown (httpx logs each Prometheus query: 17,010 of 17,437 lines at 100
# LLMDeployments; kopf each handled watch event). Decisions are what matter here.
CHATTY_LOGGERS = ("kopf.objects", "httpx", "httpcore")


def configure_logging(*, verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.WARNING)


def own_identity() -> str:
    """Who this operator process is, for kopf: host (the pod's name) and PID.

    kopf's own default asks for the user name, which fails with a KeyError for a uid
    without a passwd entry: exactly how the chart runs the image (uid 65532)."""
    return f"{socket.gethostname()}/{os.getpid()}"


def _tracing(settings: OperatorSettings, metrics: OperatorMetrics) -> RecordSink | None:
    if settings.tracing is None:
        return None
    from llm_rollout.telemetry.export import tracer_provider
    from llm_rollout.telemetry.spans import RecordSink

    for outcome in ("exported", "queue_full", "export_failed"):
        metrics.trace_spans.labels(outcome)
    logging.getLogger("llm_rollout.operator").info(
        "tracing analyses and decisions to %s (sample ratio %s)",
        settings.tracing.endpoint,
        settings.tracing.sample_ratio,
    )
    return RecordSink(
        tracer_provider(settings.tracing, metrics.count_spans), "llm_rollout.operator"
    )


def run(args: argparse.Namespace) -> int:
    import kopf

    from llm_rollout.controller import handlers  # noqa: F401 - registers the handlers
    from llm_rollout.controller.operator_metrics import OperatorMetrics
    from llm_rollout.controller.reconcile import Controller
    from llm_rollout.kube.client import KubeClient, new_api_client

    configure_logging(verbose=args.verbose)
    try:
        settings = settings_from_args(args)
    except ValueError as exc:  # e.g. an OTLP endpoint that is no URL: say so, do not start
        logging.getLogger("llm_rollout.operator").error("operator: %s", exc)
        return 2
    api_client = new_api_client(args.kubeconfig)
    metrics = OperatorMetrics()
    kube = KubeClient(api_client, on_request=metrics.count_kube_request)
    controller = Controller(
        kube=kube, settings=settings, metrics=metrics, tracing=_tracing(settings, metrics)
    )
    kopf_settings = kopf.OperatorSettings()
    # Watching listed namespaces: no cluster-wide watches of namespaces and CRDs (the
    # namespace-scoped RBAC grants none); kopf serves exactly the namespaces given.
    kopf_settings.scanning.disabled = bool(settings.namespaces)
    options: dict[str, Any] = dict(
        standalone=True,  # no kopf peering: with --leader-elect, the Lease decides who acts
        clusterwide=not settings.namespaces,
        namespaces=list(settings.namespaces),
        memo=kopf.Memo(controller=controller),
        settings=kopf_settings,
        identity=own_identity(),
    )
    if args.leader_elect:
        from llm_rollout.controller import leadership

        return leadership.run_operator(
            args, api_client, controller, lambda: kopf.operator(**options)
        )
    controller.metrics.leader.set(1)
    kopf.run(**options)
    return 0

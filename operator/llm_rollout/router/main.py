"""`llm-rollout router ...`: run the router."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import secrets
import signal
from collections.abc import Callable

import prometheus_client
from aiohttp import web

from llm_rollout.api.routing_table import DEFAULT_SERVICE_PORT
from llm_rollout.router.answers import AnswerLog
from llm_rollout.router.app import Router, RouterSettings
from llm_rollout.router.config import load_config_text
from llm_rollout.router.metrics import RouterMetrics
from llm_rollout.router.state import RouterState
from llm_rollout.router.tokens import DEFAULT_TTL_SECONDS, KEY_ENV, TokenSigner, load_keys
from llm_rollout.router.tracing import RouterTracing
from llm_rollout.router.watch import FileWatcher
from llm_rollout.telemetry import genai
from llm_rollout.telemetry.export import ExportSettings, tracer_provider
from llm_rollout.telemetry.genai import ContentPolicy
from llm_rollout.traffic.backends import BackendResolver, ServiceBackends, StaticBackends

log = logging.getLogger("llm_rollout.router")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a("--listen", default="0.0.0.0:8080", metavar="HOST:PORT", help="Where to serve.")
    a(
        "--metrics-listen",
        default=None,
        metavar="HOST:PORT",
        help="Also serve /metrics, /healthz and /readyz here (e.g. a port not exposed to users).",
    )
    a(
        "--config",
        default=None,
        metavar="FILE",
        help="YAML/JSON LLMDeployment objects to serve; re-read when it changes.",
    )
    a(
        "--kube",
        action="store_true",
        help="Serve the LLMDeployments of the Kubernetes API (list + watch; in-cluster "
        "credentials, else --kubeconfig / $KUBECONFIG).",
    )
    a("--kubeconfig", default=None, metavar="FILE", help="With --kube: kubeconfig to use.")
    a("--namespace", default=None, help="With --kube: only this namespace (default: all).")
    a(
        "--backend",
        action="append",
        default=[],
        metavar="NS/NAME/RELEASE=URL",
        help="Local mode: where a release is served (repeatable).",
    )
    a(
        "--backend-file",
        default=None,
        metavar="FILE",
        help="Local mode: JSON/YAML object {'ns/name/release': URL}; re-read when it changes.",
    )
    a(
        "--service-port",
        type=int,
        default=DEFAULT_SERVICE_PORT,
        help="In-cluster mode: port of the per-release Services (unless spec.port says).",
    )
    a(
        "--token-key-file",
        default=None,
        metavar="FILE",
        help=f"Feedback token keys, one per line, first signs (else env {KEY_ENV}).",
    )
    a(
        "--token-ttl",
        type=int,
        default=DEFAULT_TTL_SECONDS,
        metavar="SECONDS",
        help="Lifetime of feedback tokens.",
    )
    a(
        "--trust-cohort-header",
        action="store_true",
        help="Honour x-llm-cohort from clients (only behind a gateway that sets it).",
    )
    a(
        "--max-body-bytes",
        type=int,
        default=RouterSettings.max_body_bytes,
        help="Largest proxied request body (413 above).",
    )
    a("--connect-timeout", type=float, default=RouterSettings.connect_timeout)
    a(
        "--upstream-timeout",
        type=float,
        default=RouterSettings.upstream_timeout,
        help="Total time for one upstream request, streaming included.",
    )
    a(
        "--upstream-read-timeout",
        type=float,
        default=RouterSettings.read_timeout,
        help="Longest silence between two chunks from the backend.",
    )
    a(
        "--shutdown-grace",
        type=float,
        default=30.0,
        help="On SIGTERM, how long in-flight requests may take to finish.",
    )
    a("--reload-interval", type=float, default=0.5, help="How often watched files are polled.")
    a(
        "--otlp-endpoint",
        default=None,
        metavar="URL",
        help="Send traces (OTLP/HTTP) here, e.g. http://collector:4318/v1/traces (else "
        "$OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, or $OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces; "
        "none: no tracing).",
    )
    a(
        "--trace-sample-ratio",
        type=float,
        default=None,
        metavar="RATIO",
        help="Share of new traces sampled, 0..1; a client's sampled trace is always followed "
        "(else $OTEL_TRACES_SAMPLER_ARG, else 1).",
    )
    a(
        "--trace-content",
        action="store_true",
        help="Record message content on spans, redacted by each deployment's "
        f"spec.tracing.redact (else ${genai.CAPTURE_CONTENT_ENV}=true; off by default).",
    )
    a(
        "--trace-content-max-chars",
        type=int,
        default=ContentPolicy.max_chars,
        help="Longest recorded content per message list (cut with a marker beyond).",
    )
    a(
        "--answer-log",
        action="store_true",
        help="Log one JSON line per completed answer with its prompt and output (logger "
        "llm_rollout.answers), redacted by spec.tracing.redact: with the feedback log, a "
        "source for `llm-rollout dataset --from-log`. Off by default.",
    )
    a(
        "--answer-log-max-chars",
        type=int,
        default=ContentPolicy.max_chars,
        help="Longest logged prompt, and longest logged output (cut with a marker beyond).",
    )
    a(
        "--access-log",
        action="store_true",
        help="Log every request (off by default: metrics count them, and the log line "
        "costs more CPU than the proxying).",
    )


def _host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return (host.strip("[]") or "0.0.0.0", int(port))


def _signer(args: argparse.Namespace) -> tuple[TokenSigner, Callable[[str], None] | None]:
    keys = load_keys(args.token_key_file)
    if not keys:
        log.warning(
            "no feedback token key (--token-key-file or %s): using a random one; "
            "tokens will not verify on other replicas or after a restart",
            KEY_ENV,
        )
        keys = [secrets.token_bytes(32)]
    signer = TokenSigner(keys, args.token_ttl)

    def reload_keys(_text: str) -> None:
        signer.set_keys(load_keys(args.token_key_file))

    return signer, (reload_keys if args.token_key_file else None)


def _backends(
    args: argparse.Namespace, state: RouterState
) -> tuple[BackendResolver, Callable[[str], None] | None]:
    if not args.backend and not args.backend_file:
        return ServiceBackends(args.service_port, state.port_of), None
    flags = StaticBackends.from_specs(args.backend)
    static = StaticBackends()

    def reload_backends(_text: str) -> None:
        static.replace({**flags.mapping, **StaticBackends.parse_file(args.backend_file)})

    if args.backend_file:
        return static, reload_backends
    static.replace(flags.mapping)
    return static, None


def _tracing(args: argparse.Namespace, metrics: RouterMetrics) -> RouterTracing | None:
    settings = ExportSettings.from_env(
        os.environ,
        service_name="llm-rollout-router",
        endpoint=args.otlp_endpoint,
        sample_ratio=args.trace_sample_ratio,
    )
    if settings is None:
        return None
    for outcome in ("exported", "queue_full", "export_failed"):
        metrics.trace_spans.labels(outcome)
    capture = args.trace_content or genai.truthy(os.environ.get(genai.CAPTURE_CONTENT_ENV))
    if args.trace_content_max_chars < 0:
        raise ValueError("--trace-content-max-chars must not be negative")
    log.info(
        "tracing to %s (sample ratio %s, message content %s)",
        settings.endpoint,
        settings.sample_ratio,
        "recorded" if capture else "not recorded",
    )
    return RouterTracing(
        tracer_provider(settings, metrics.count_spans),
        ContentPolicy(capture=capture, max_chars=args.trace_content_max_chars),
    )


def _answer_log(args: argparse.Namespace) -> AnswerLog | None:
    if not args.answer_log:
        return None
    if args.answer_log_max_chars < 0:
        raise ValueError("--answer-log-max-chars must not be negative")
    log.info("logging answers with their content (logger llm_rollout.answers)")
    return AnswerLog(ContentPolicy(capture=True, max_chars=args.answer_log_max_chars))


async def serve(args: argparse.Namespace, stop: asyncio.Event | None = None) -> None:
    """Serve until `stop` is set or SIGTERM/SIGINT arrives."""
    state = RouterState()
    signer, reload_keys = _signer(args)
    backends, reload_backends = _backends(args, state)
    settings = RouterSettings(
        trust_cohort_header=args.trust_cohort_header,
        max_body_bytes=args.max_body_bytes,
        connect_timeout=args.connect_timeout,
        upstream_timeout=args.upstream_timeout,
        read_timeout=args.upstream_read_timeout,
    )
    metrics = RouterMetrics()
    tracing = _tracing(args, metrics)
    router = Router(
        state, backends, signer, settings, metrics, tracing=tracing, answer_log=_answer_log(args)
    )
    watchers = [
        FileWatcher(path, fn, args.reload_interval)
        for path, fn in (
            (args.config, lambda text: state.update(load_config_text(text))),
            (args.backend_file, reload_backends),
            (args.token_key_file, reload_keys),
        )
        if path and fn
    ]
    for w in watchers:
        w.load()  # bad files at start-up are fatal
        w.start()
    source = None
    if args.kube:
        if args.config:
            raise ValueError("--kube and --config are exclusive")
        from llm_rollout.router.kube import KubeSource, api_client_from

        source = KubeSource(state, api_client_from(args.kubeconfig), namespace=args.namespace)
        source.start()

    runners = []
    # One log line per proxied request costs more CPU than the proxying itself;
    # request counts and latencies are in the metrics. --access-log turns it on.
    access_log = logging.getLogger("aiohttp.access") if args.access_log else None
    runner = web.AppRunner(
        router.make_app(), shutdown_timeout=args.shutdown_grace, access_log=access_log
    )
    await runner.setup()
    await web.TCPSite(runner, *_host_port(args.listen)).start()
    runners.append(runner)
    if args.metrics_listen:
        side = web.Application()
        side.router.add_get("/metrics", router.metrics_handler)
        side.router.add_get("/healthz", router.healthz)
        side.router.add_get("/readyz", router.readyz)
        side_runner = web.AppRunner(side, access_log=access_log)
        await side_runner.setup()
        await web.TCPSite(side_runner, *_host_port(args.metrics_listen)).start()
        runners.append(side_runner)
    log.info("router listening on %s", args.listen)
    # Objects alive at start-up (modules, config) stay alive: keep them out of the
    # collector's full passes, which otherwise pause the event loop for tens of ms.
    gc.freeze()

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("router stopping: draining in-flight requests (up to %ss)", args.shutdown_grace)
        if source is not None:
            source.stop()
        for w in watchers:
            await w.stop()
        for r in runners:
            await r.cleanup()
        if tracing is not None:
            # Spans still queued are sent now (bounded: shutdown waits 5 s at most).
            await asyncio.to_thread(tracing.shutdown)


def run(args: argparse.Namespace) -> int:
    # Halves the series; nothing queries them.
    prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=os.environ.get("LOG_LEVEL", "INFO"),
            format="%(asctime)s %(levelname)s %(name)s %(message)s",
        )
    try:
        asyncio.run(serve(args))
    except (ValueError, OSError) as exc:
        log.error("router: %s", exc)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llm-rollout router", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())

"""`llm-rollout operator`: run the kopf operator."""

from __future__ import annotations

import argparse
import logging
import os

from llm_rollout.controller.settings import OperatorSettings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prometheus-url", default=os.environ.get("PROMETHEUS_URL",
                                                                    "http://prometheus:9090"),
                        help="Prometheus used when a spec names none (env PROMETHEUS_URL)")
    parser.add_argument("--allow-prometheus", action="append", default=[], metavar="URL",
                        help="a further Prometheus address specs may name (repeatable)")
    parser.add_argument("--namespace", action="append", default=[],
                        help="namespace to watch (repeatable; default: the whole cluster)")
    parser.add_argument("--metrics-listen", default="0.0.0.0:8080",
                        help="host:port of /metrics and /healthz")
    parser.add_argument("--scale-down-delay", type=float, default=300.0, metavar="SECONDS",
                        help="keep a retired release's pods this long before scaling to zero")
    parser.add_argument("--retention", type=float, default=3600.0, metavar="SECONDS",
                        help="delete a retired release's Deployment after this long")
    parser.add_argument("--query-timeout", type=float, default=5.0, metavar="SECONDS")
    parser.add_argument("--kubeconfig", default=None,
                        help="kubeconfig (default: in-cluster, then $KUBECONFIG)")
    parser.add_argument("--verbose", action="store_true")


def settings_from_args(args: argparse.Namespace) -> OperatorSettings:
    return OperatorSettings(
        prometheus_url=args.prometheus_url,
        allowed_prometheus=frozenset(args.allow_prometheus),
        query_timeout=args.query_timeout,
        namespaces=tuple(args.namespace),
        scale_down_delay=args.scale_down_delay,
        retention=args.retention,
        metrics_listen=args.metrics_listen,
    )


def run(args: argparse.Namespace) -> int:
    import kopf

    from llm_rollout.controller import handlers  # noqa: F401 - registers the handlers
    from llm_rollout.controller.reconcile import Controller
    from llm_rollout.kube.client import KubeClient, new_api_client

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        # kopf logs every handled watch event at INFO; decisions are what matter here.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    settings = settings_from_args(args)
    controller = Controller(kube=KubeClient(new_api_client(args.kubeconfig)), settings=settings)
    kopf.run(
        standalone=True,
        clusterwide=not settings.namespaces,
        namespaces=list(settings.namespaces),
        memo=kopf.Memo(controller=controller),
    )
    return 0

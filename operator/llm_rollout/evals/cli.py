"""The `llm-rollout eval` command line (light: the runner is imported when it runs)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, metavar="NS/NAME", help="the LLMEvalRun to execute")
    parser.add_argument(
        "--kubeconfig", default=None, help="kubeconfig (default: in-cluster, then $KUBECONFIG)"
    )
    parser.add_argument(
        "--backend",
        action="append",
        default=[],
        metavar="NS/NAME/RELEASE=URL",
        help="local mode: where a release answers (repeatable; as the router)",
    )
    parser.add_argument(
        "--backend-file",
        default=None,
        metavar="FILE",
        help="local mode: JSON/YAML object {'ns/name/release': URL}",
    )
    parser.add_argument(
        "--otlp-endpoint",
        default=None,
        metavar="URL",
        help="send the run, its cases and their check and judge scores as spans (OTLP/HTTP) "
        "here (else $OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, or $OTEL_EXPORTER_OTLP_ENDPOINT + "
        "/v1/traces; none: no tracing)",
    )
    parser.add_argument(
        "--trace-sample-ratio",
        type=float,
        default=None,
        metavar="RATIO",
        help="share of runs traced, 0..1: the same rollouts as the operator traces at the "
        "same ratio (else $OTEL_TRACES_SAMPLER_ARG, else 1)",
    )
    parser.add_argument("--verbose", action="store_true")


def run(args: argparse.Namespace) -> int:
    from llm_rollout.evals.worker import run as run_eval

    return run_eval(args)

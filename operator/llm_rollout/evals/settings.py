"""How the operator executes eval runs: operator flags `--eval-*` (and the chart's values)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from llm_rollout.telemetry.export import ExportSettings

EXECUTORS = ("job", "local")
DEFAULT_IMAGE = "ghcr.io/llm-rollout/llm-rollout-operator:0.1.0"


@dataclass(frozen=True)
class EvalSettings:
    # job: a Kubernetes Job per run (in a cluster); local: a subprocess of the operator
    # (the local bed has no kubelet; make demo and the tests use it).
    executor: str = "job"
    # job executor
    image: str = DEFAULT_IMAGE
    image_pull_policy: str = "IfNotPresent"
    service_account: str = "llm-rollout-eval"
    cpu_request: str = "100m"
    memory_request: str = "256Mi"
    memory_limit: str = "512Mi"
    job_ttl_seconds: int = 3600
    # local executor: what the runner subprocess gets
    python: str = sys.executable
    kubeconfig: str | None = None
    backends: tuple[str, ...] = ()  # ns/name/release=URL, as the router's --backend
    backend_file: str | None = None
    # Where runs send their spans: the operator's own tracing settings (both executors).
    tracing: ExportSettings | None = None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The operator's --eval-* flags."""
    group = parser.add_argument_group("eval runs (see docs/evals.md)")
    a = group.add_argument
    a(
        "--eval-executor",
        choices=EXECUTORS,
        default="job",
        help="job: a Kubernetes Job per eval run; local: a subprocess of the operator (for a "
        "cluster without a kubelet, e.g. the local bed)",
    )
    a("--eval-image", default=EvalSettings.image, help="job: the runner's image")
    a("--eval-image-pull-policy", default=EvalSettings.image_pull_policy)
    a(
        "--eval-service-account",
        default=EvalSettings.service_account,
        help="job: service account of the runner pods (reads LLMEvalRuns, ConfigMaps and "
        "Secrets of the namespace, writes llmevalruns/status)",
    )
    a("--eval-cpu-request", default=EvalSettings.cpu_request)
    a("--eval-memory-request", default=EvalSettings.memory_request)
    a("--eval-memory-limit", default=EvalSettings.memory_limit)
    a(
        "--eval-job-ttl",
        type=int,
        default=EvalSettings.job_ttl_seconds,
        metavar="SECONDS",
        help="job: delete finished Jobs after this long",
    )
    a(
        "--eval-backend",
        action="append",
        default=[],
        metavar="NS/NAME/RELEASE=URL",
        help="local: where a release answers (repeatable; as the router's --backend)",
    )
    a(
        "--eval-backend-file",
        default=None,
        metavar="FILE",
        help="local: JSON/YAML object {'ns/name/release': URL} (the router's --backend-file)",
    )


def settings_from_args(args: argparse.Namespace) -> EvalSettings:
    return EvalSettings(
        executor=args.eval_executor,
        image=args.eval_image,
        image_pull_policy=args.eval_image_pull_policy,
        service_account=args.eval_service_account,
        cpu_request=args.eval_cpu_request,
        memory_request=args.eval_memory_request,
        memory_limit=args.eval_memory_limit,
        job_ttl_seconds=args.eval_job_ttl,
        kubeconfig=getattr(args, "kubeconfig", None),
        backends=tuple(args.eval_backend),
        backend_file=args.eval_backend_file,
    )

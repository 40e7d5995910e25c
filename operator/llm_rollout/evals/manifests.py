"""Pure builders of the eval objects: the LLMEvalRun (owned by its LLMDeployment) and
the batch/v1 Job that executes it in a cluster.

The Job is owned by the LLMEvalRun (deleting the run, or its LLMDeployment, deletes the Job),
named after it, running `llm-rollout eval --run NS/NAME` with the operator's eval
settings: image, service account, resources. Locked down: non-root, read-only root
filesystem, no privilege escalation, all capabilities dropped. The integration
tests have the real API server validate it.
"""

from __future__ import annotations

import hashlib
from typing import Any

from llm_rollout import GROUP, VERSION
from llm_rollout.api.evalrun import EVAL_RUN_KIND, LLMEvalRunSpec
from llm_rollout.engine.evals import EvalRunRequest
from llm_rollout.evals.settings import EvalSettings
from llm_rollout.kube.builders import (
    LABEL_DEPLOYMENT,
    LABEL_RELEASE,
    MANAGED_BY,
    Owner,
    owner_reference,
)

LABEL_EVAL_RUN = f"{GROUP}/eval-run"
LABEL_SUITE = f"{GROUP}/suite"
LABEL_STAGE = f"{GROUP}/stage"
EXECUTOR_ENV = "LLM_ROLLOUT_EVAL_EXECUTOR"  # the runner records it in status.executor
MAX_JOB_NAME = 63  # Job names become the job-name label of their pods
DEADLINE_SLACK_SECONDS = 60


def job_name(run_name: str) -> str:
    """The run's name, or a shortened one with a hash when it is over 63 characters."""
    if len(run_name) <= MAX_JOB_NAME:
        return run_name
    digest = hashlib.sha256(run_name.encode()).hexdigest()[:10]
    return f"{run_name[: MAX_JOB_NAME - 11].rstrip('-.')}-{digest}"


def _label_value(value: str) -> str:
    return (
        value
        if len(value) <= 63
        else value[:52].rstrip("-._") + "-" + hashlib.sha256(value.encode()).hexdigest()[:10]
    )


def run_labels(run_name: str, spec: LLMEvalRunSpec) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "llm-rollout-eval",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        LABEL_DEPLOYMENT: _label_value(spec.deployment),
        LABEL_RELEASE: spec.release,
        LABEL_STAGE: spec.stage,
        LABEL_SUITE: spec.suite.name,
        LABEL_EVAL_RUN: _label_value(run_name),
    }


def build_eval_run(owner: Owner, request: EvalRunRequest, *, port: int) -> dict[str, Any]:
    """The LLMEvalRun for a run the engine asks for; its spec copies the suite."""
    spec = LLMEvalRunSpec(
        deployment=owner.name,
        release=request.release,
        model=request.model,
        stage=request.stage,
        attempt=request.attempt,
        port=port,
        stable_release=request.stable_release,
        suite=request.suite,
    )
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": EVAL_RUN_KIND,
        "metadata": {
            "name": request.name,
            "namespace": owner.namespace,
            "labels": run_labels(request.name, spec),
            "ownerReferences": [owner_reference(owner)],
        },
        "spec": spec.model_dump(mode="json", by_alias=True, exclude_none=True),
    }


def build_eval_job(run: dict[str, Any], settings: EvalSettings) -> dict[str, Any]:
    """The Job for an LLMEvalRun object (as read from the API: metadata with uid)."""
    meta = run["metadata"]
    spec = LLMEvalRunSpec.model_validate(run["spec"])
    name = job_name(meta["name"])
    labels = run_labels(meta["name"], spec)
    container: dict[str, Any] = {
        "name": "eval",
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["llm-rollout", "eval", "--run", f"{meta['namespace']}/{meta['name']}"],
        "env": [
            {"name": EXECUTOR_ENV, "value": f"job/{name}"},
            {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
            *_tracing_env(settings),
        ],
        "resources": {
            "requests": {"cpu": settings.cpu_request, "memory": settings.memory_request},
            "limits": {"memory": settings.memory_limit},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
    }
    if settings.service_account:
        pod_spec["serviceAccountName"] = settings.service_account
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": labels,
            "ownerReferences": [
                {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": EVAL_RUN_KIND,
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            # One retry for a lost pod; the runner leaves a finished run alone.
            "backoffLimit": 1,
            "activeDeadlineSeconds": int(spec.suite.timeout_seconds) + DEADLINE_SLACK_SECONDS,
            "ttlSecondsAfterFinished": settings.job_ttl_seconds,
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


def _tracing_env(settings: EvalSettings) -> list[dict[str, str]]:
    """The operator's trace endpoint and ratio, so a run joins the rollout's trace (at the
    same ratio the same rollouts are traced). Export headers are not copied: a Secret in
    the operator's namespace is not readable from the run's."""
    tracing = settings.tracing
    if tracing is None:
        return []
    return [
        {"name": "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "value": tracing.endpoint},
        {"name": "OTEL_TRACES_SAMPLER", "value": "parentbased_traceidratio"},
        {"name": "OTEL_TRACES_SAMPLER_ARG", "value": f"{tracing.sample_ratio:g}"},
    ]

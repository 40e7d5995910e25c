"""Pure builders of the objects an LLMDeployment owns: one Deployment and one
Service per live release. No I/O: unit-tested without a cluster, and every
manifest is also validated by the real API server in the integration tests."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from llm_rollout import GROUP, KIND, VERSION
from llm_rollout.api.routing_table import ReleaseInfo

MANAGED_BY = "llm-rollout-operator"
LABEL_DEPLOYMENT = f"{GROUP}/deployment"
LABEL_RELEASE = f"{GROUP}/release"
LABEL_ROLE = f"{GROUP}/role"


@dataclass(frozen=True)
class Owner:
    """The LLMDeployment that owns the built objects."""

    namespace: str
    name: str
    uid: str


def release_object_name(deployment: str, release_id: str) -> str:
    """`<deployment>-<release>`: also the Service name the router proxies to."""
    return f"{deployment}-{release_id}"


def owner_reference(owner: Owner) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "name": owner.name,
        "uid": owner.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def release_labels(owner: Owner, release: ReleaseInfo) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": owner.name,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        LABEL_DEPLOYMENT: owner.name,
        LABEL_RELEASE: release.id,
    }


def _release_env(release: ReleaseInfo) -> list[dict[str, str]]:
    # The application learns which bundle it serves without reading the CR.
    return [
        {"name": "LLM_RELEASE", "value": release.id},
        {"name": "LLM_MODEL", "value": release.model},
        {"name": "LLM_MODEL_REVISION", "value": release.model_revision},
        {"name": "LLM_PROMPT_VERSION", "value": release.prompt_version},
        {"name": "LLM_KNOWLEDGE_BASE", "value": release.knowledge_base},
    ]


def build_deployment(
    owner: Owner, release: ReleaseInfo, *, template: dict[str, Any], replicas: int, role: str
) -> dict[str, Any]:
    """The Deployment running one release. `role` is stable or candidate (a label only:
    the release label selects pods, so a promotion relabels without restarting pods)."""
    labels = release_labels(owner, release)
    pod_template = copy.deepcopy(template) if template else {}
    meta = pod_template.setdefault("metadata", {})
    meta["labels"] = {**meta.get("labels", {}), **labels}
    spec = pod_template.setdefault("spec", {})
    containers = spec.setdefault("containers", [])
    for container in containers:
        names = {e.get("name") for e in container.get("env", [])}
        container["env"] = container.get("env", []) + [
            e for e in _release_env(release) if e["name"] not in names
        ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _release_metadata(owner, release, role),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {LABEL_DEPLOYMENT: owner.name, LABEL_RELEASE: release.id}},
            "template": pod_template,
        },
    }


def _release_metadata(owner: Owner, release: ReleaseInfo, role: str) -> dict[str, Any]:
    """Name, labels and owner of a release's Deployment or Service (the same for both)."""
    return {
        "name": release_object_name(owner.name, release.id),
        "namespace": owner.namespace,
        "labels": {**release_labels(owner, release), LABEL_ROLE: role},
        "ownerReferences": [owner_reference(owner)],
    }


def build_service(owner: Owner, release: ReleaseInfo, *, port: int, role: str) -> dict[str, Any]:
    """The Service in front of one release's pods (what the router and meshes target)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _release_metadata(owner, release, role),
        "spec": {
            "selector": {LABEL_DEPLOYMENT: owner.name, LABEL_RELEASE: release.id},
            "ports": [{"name": "http", "port": port, "targetPort": port, "protocol": "TCP"}],
        },
    }


def deployment_available(deployment: dict[str, Any] | None, replicas: int) -> bool:
    """A release is servable once its Deployment reports enough available replicas
    for the current generation (the same rule `kubectl rollout status` uses)."""
    if not deployment:
        return False
    meta, status = deployment.get("metadata", {}), deployment.get("status") or {}
    if status.get("observedGeneration", 0) < meta.get("generation", 1):
        return False
    wanted = max(1, replicas) if replicas > 0 else 0
    return int(status.get("availableReplicas") or 0) >= wanted

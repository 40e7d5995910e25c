"""Rendering the Helm chart with the bed's helm, for the chart tests."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml
from tests.conftest import REPO_ROOT, Cluster

CHART = REPO_ROOT / "charts" / "llm-rollout-operator"


def helm(
    cluster: Cluster, *args: str, check: bool = True, values: dict[str, Any] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the bed's helm; `values` are passed as a values file on stdin."""
    argv = [str(cluster.bin_dir / "helm"), *args]
    if values is not None:
        argv += ["--values", "-"]
    result = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        input=json.dumps(values) if values is not None else None,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}")
    return result


def render(
    cluster: Cluster,
    values: dict[str, Any],
    *,
    namespace: str = "llm-system",
    release: str = "llmr",
    extra: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """`helm template` of the chart: the rendered manifests (no empty documents)."""
    out = helm(
        cluster, "template", release, str(CHART), "--namespace", namespace, *extra, values=values
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def find(docs: list[dict[str, Any]], kind: str, name_suffix: str = "") -> dict[str, Any]:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(name_suffix)]
    assert len(matches) == 1, f"{kind} *{name_suffix}: {len(matches)} found"
    return matches[0]


def container_args(docs: list[dict[str, Any]], name_suffix: str) -> list[str]:
    dep = find(docs, "Deployment", name_suffix)
    return list(dep["spec"]["template"]["spec"]["containers"][0]["args"])


def write_yaml(path: Path, docs: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump_all(docs))
    return path

"""The bed's Prometheus: its configuration (file-based targets tests rewrite at run time;
with a node, the node's pods through Kubernetes service discovery) and a query helper."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any


def prometheus_config(targets_file: Path, pods: dict[str, Any] | None) -> dict[str, Any]:
    """Scrape every second the targets in `targets_file` (and `pods`, a scrape config)."""
    config: dict[str, Any] = {
        "global": {
            "scrape_interval": "1s",
            "evaluation_interval": "1s",
            "scrape_timeout": "1s",
        },
        "scrape_configs": [
            {
                "job_name": "bed",
                # Tests add targets at run time by rewriting this file
                # (Prometheus watches it; see write_targets).
                "file_sd_configs": [{"files": [str(targets_file)], "refresh_interval": "1s"}],
            }
        ],
    }
    if pods is not None:
        config["scrape_configs"].append(pods)
    return config


def pods_scrape_config(apiserver_url: str, certs: Path) -> dict[str, Any]:
    """Pods of the real node, found through the bed's API server: every container
    port named `metrics` (the chart's operator and router), and any pod annotated
    `prometheus.io/scrape: "true"` on its `prometheus.io/port`."""
    tls = {
        "ca_file": str(certs / "ca.crt"),
        "cert_file": str(certs / "admin.crt"),
        "key_file": str(certs / "admin.key"),
    }
    return {
        "job_name": "pods",
        "kubernetes_sd_configs": [{"role": "pod", "api_server": apiserver_url, "tls_config": tls}],
        "relabel_configs": [
            {
                "source_labels": [
                    "__meta_kubernetes_pod_container_port_name",
                    "__meta_kubernetes_pod_annotation_prometheus_io_scrape",
                ],
                "regex": "metrics;.*|.*;true",
                "action": "keep",
            },
            {
                "source_labels": [
                    "__address__",
                    "__meta_kubernetes_pod_annotation_prometheus_io_port",
                ],
                "regex": "([^:]+)(?::\\d+)?;(\\d+)",
                "replacement": "$1:$2",
                "target_label": "__address__",
            },
            # Not `namespace`: the metrics' own namespace label is the LLMDeployment's.
            {
                "source_labels": ["__meta_kubernetes_namespace"],
                "target_label": "kubernetes_namespace",
            },
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "kubernetes_pod"},
            {
                "source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_component"],
                "target_label": "component",
            },
        ],
    }


def write_targets(path: Path, targets: dict[str, str]) -> None:
    """The file-based targets: job label -> "host:port"."""
    groups = [
        {"targets": [addr], "labels": {"bed_target": name}}
        for name, addr in sorted(targets.items())
    ]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(groups))
    tmp.replace(path)  # atomic: Prometheus never reads half a file


def read_targets(path: Path) -> dict[str, str]:
    groups = json.loads(path.read_text())
    return {g["labels"]["bed_target"]: g["targets"][0] for g in groups}


def wait_for_prometheus_value(url: str, query: str, timeout: float = 30.0) -> float:
    """Poll an instant query until it returns one sample; return its value."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        full = url + "/api/v1/query?" + urllib.parse.urlencode({"query": query})
        with urllib.request.urlopen(full, timeout=5) as resp:
            body = json.loads(resp.read())
        result = body.get("data", {}).get("result", [])
        if len(result) == 1:
            return float(result[0]["value"][1])
        last = json.dumps(body)[:300]
        time.sleep(0.25)
    raise TimeoutError(f"query {query!r} returned no single sample in {timeout}s: {last}")

"""The demo in pods: everything a user installs, running on the bed's real node.

The same two rollouts as `make demo` (B' promoted stage by stage, B'' rolled back at
experts), but nothing runs on the host except the simulated users and Prometheus:
- the Helm chart, installed with the image built here: the operator as 2 replicas
  with leader election, the router as a Deployment, on the chart's ServiceAccounts;
- the model servers are the pods of the releases (the project's simulated server);
- the LLM judge is a Deployment; the eval suite runs as a Job (the Job executor);
- the bed's Prometheus finds the operator and router pods through Kubernetes service
  discovery; users call the router's Service (its ClusterIP, through kube-proxy).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
from dataclasses import dataclass
from typing import Any

from llm_rollout.api import LLMDeploymentSpec, release_id
from llm_rollout.demo.run import Demo
from llm_rollout.demo.scenario import JUDGE_KEY, NAMESPACE, DemoConfig, demo_spec, eval_example
from llm_rollout.testbed import TestBed
from llm_rollout.testbed.bed import REPO_ROOT

CHART = REPO_ROOT / "charts" / "llm-rollout-operator"
RELEASE_NAME = "llm-rollout-operator"
SYSTEM_NAMESPACE = "llm-rollout-system"
JUDGE_PORT = 8010
MODEL_PORT = 8080
PROFILES = {"A": "good", "B'": "good", "B''": "regressed"}


@dataclass(frozen=True)
class PodImage:
    repository: str
    tag: str

    @property
    def ref(self) -> str:
        return f"{self.repository}:{self.tag}"


def default_image() -> PodImage:
    text = (REPO_ROOT / "pyproject.toml").read_text()
    version = next(
        line.split("=", 1)[1].strip().strip('"')
        for line in text.splitlines()
        if line.startswith("version")
    )
    return PodImage("llm-rollout-operator", version)


def build_and_import_image(bed: TestBed, image: PodImage) -> None:
    """`make image` with a base made from Debian packages, imported into the node."""
    node = bed.node
    if node is None:
        raise RuntimeError("the bed has no node: start it with node=True (make cluster-up NODE=1)")
    env = {
        **os.environ,
        "BASE": os.environ.get("BASE", "debian"),
        "CONTAINERD_SOCKET": str(node.state.containerd_socket),
    }
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "hack" / "image.sh"), image.ref],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"make image failed:\n{result.stderr[-3000:]}")


def pods_spec(config: DemoConfig, label: str, image: PodImage, judge_url: str) -> dict[str, Any]:
    """The demo's release `label` with its model server as the release's pod."""
    revision = {"A": "2026-11-01", "B'": "2026-11-15", "B''": "2026-11-15"}[label]
    prompt = "v8-terse" if label == "B''" else None
    spec = demo_spec(config, revision=revision, prompt=prompt, judge_url=judge_url)
    release = spec["release"]
    release["port"] = MODEL_PORT
    release["template"] = {
        "spec": {
            "containers": [
                {
                    "name": "model",
                    "image": image.ref,
                    "imagePullPolicy": "Never",
                    "command": ["python", "-m", "llm_rollout.sim.model_server"],
                    "args": ["--listen", f"0.0.0.0:{MODEL_PORT}", "--profile", PROFILES[label]],
                    "ports": [{"containerPort": MODEL_PORT, "name": "http"}],
                    "readinessProbe": {
                        "httpGet": {"path": "/healthz", "port": MODEL_PORT},
                        "periodSeconds": 1,
                    },
                    "securityContext": {
                        "runAsNonRoot": True,
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ]
        }
    }
    return spec


class PodsDemo(Demo):
    """`Demo` with the operator, router, releases and judge as pods on the real node."""

    default_image = staticmethod(default_image)

    def __init__(self, config: DemoConfig, bed: TestBed, image: PodImage | None = None) -> None:
        super().__init__(config, bed)
        self.image = image or default_image()
        judge = f"http://judge.{NAMESPACE}.svc:{JUDGE_PORT}/v1"
        self.specs = {label: pods_spec(config, label, self.image, judge) for label in PROFILES}
        self.ids = {
            label: release_id(LLMDeploymentSpec.model_validate(s))
            for label, s in self.specs.items()
        }

    def helm(self, *args: str, timeout: float = 300) -> str:
        assert self.bed is not None
        return self.bed.tool("helm", *args, timeout=timeout)

    def chart_values(self) -> list[str]:
        assert self.bed is not None
        prometheus = self.bed.state.prometheus_url
        return [
            f"image.repository={self.image.repository}",
            f"image.tag={self.image.tag}",
            "image.pullPolicy=Never",
            f"operator.prometheusUrl={prometheus}",
            "operator.scaleDownDelay=30",
            "operator.retention=600",
            "router.enabled=true",
            f"evals.namespaces={{{NAMESPACE}}}",
        ]

    def install_chart(self, *, extra: tuple[str, ...] = ()) -> None:
        sets = [arg for value in (*self.chart_values(), *extra) for arg in ("--set", value)]
        self.helm(
            "upgrade", "--install", RELEASE_NAME, str(CHART), "--namespace", SYSTEM_NAMESPACE,
            "--create-namespace", "--wait", "--timeout", "4m", *sets,
        )  # fmt: skip

    def start_everything(self) -> None:
        bed = self.bed
        assert bed is not None
        self.say(f"kube-apiserver {bed.state.apiserver_url}, Prometheus {bed.state.prometheus_url}")
        self.kubectl("create", "namespace", NAMESPACE)
        self.say(f"helm install {RELEASE_NAME} (image {self.image.ref}, router enabled)")
        self.install_chart()
        self._apply_judge()
        _, dataset = eval_example()
        dataset["metadata"]["namespace"] = NAMESPACE
        self.kubectl("apply", "-f", "-", input=json.dumps(dataset))
        self.kubectl(
            "create", "secret", "generic", "judge-api-key", "-n", NAMESPACE,
            f"--from-literal=token={JUDGE_KEY}",
        )  # fmt: skip
        self.kubectl("-n", NAMESPACE, "rollout", "status", "deployment/judge", "--timeout=120s")
        ip = self.kubectl(
            "-n", SYSTEM_NAMESPACE, "get", "service", f"{RELEASE_NAME}-router",
            "-o", "jsonpath={.spec.clusterIP}",
        )  # fmt: skip
        self.router_url = f"http://{ip}:80"
        self.say(f"router Service {self.router_url}; operator x2, router, judge are pods")

    def _apply_judge(self) -> None:
        labels = {"app": "judge"}
        container = {
            "name": "judge",
            "image": self.image.ref,
            "imagePullPolicy": "Never",
            "command": ["python", "-m", "llm_rollout.sim.judge"],
            "args": ["--listen", f"0.0.0.0:{JUDGE_PORT}", "--api-key", JUDGE_KEY],
            "ports": [{"containerPort": JUDGE_PORT}],
            "readinessProbe": {"httpGet": {"path": "/healthz", "port": JUDGE_PORT}},
        }
        objects = [
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "judge", "namespace": NAMESPACE},
                "spec": {
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {"containers": [container]},
                    },
                },
            },
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "judge", "namespace": NAMESPACE},
                "spec": {"selector": labels, "ports": [{"port": JUDGE_PORT}]},
            },
        ]
        self.kubectl(
            "apply",
            "-f",
            "-",
            input=json.dumps({"apiVersion": "v1", "kind": "List", "items": copy.deepcopy(objects)}),
        )

    def stop(self) -> None:
        # Nothing of the demo runs on the host and it added no scrape targets; the bed
        # (and its node) belongs to the caller, who stops it.
        self.pids.clear()

    def leader(self) -> str:
        return self.kubectl(
            "-n", SYSTEM_NAMESPACE, "get", "lease", RELEASE_NAME,
            "-o", "jsonpath={.spec.holderIdentity}",
        )  # fmt: skip

"""The Helm chart: lint, render with several values sets, every manifest accepted by the
real API server (server-side dry run, strict field validation, with the monitoring CRDs
installed), bad values refused with a clear message, secure pod defaults, and its RBAC
enough for a whole rollout — run as the chart's ServiceAccount, with a real token."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from tests.conftest import REPO_ROOT, Cluster, Prometheus
from tests.integration import test_evals
from tests.integration.chart import CHART, container_args, find, helm, render, write_yaml
from tests.integration.support import ControlledMetrics, OperatorProcess, Rollouts, wait_for
from tests.integration.test_operator_rollout import obj, phase_is, rid, spec, start_stable

from llm_rollout.testbed.kubelet import KubeletStandIn

DIGEST = "sha256:" + "ab" * 32
Values = dict[str, Any]
sims = test_evals.sims  # the simulated releases and judge of the eval tests (a fixture)


@pytest.fixture
def more_namespaces(cluster: Cluster) -> Iterator[list[str]]:
    core = client.CoreV1Api(cluster.api_client)
    names = [f"t-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    for name in names:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield names
    for name in names:
        core.delete_namespace(name)


@pytest.fixture(scope="module")
def monitoring_crds(cluster: Cluster) -> Path:
    """ServiceMonitor and PrometheusRule CRDs of prometheus-operator (pinned upstream)."""
    out = subprocess.run(
        ["bash", str(REPO_ROOT / "hack/upstream-crds.sh")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    crd_dir = Path(out)
    for name in (
        "monitoring.coreos.com_servicemonitors.yaml",
        "monitoring.coreos.com_prometheusrules.yaml",
        "gateway.networking.k8s.io_httproutes.yaml",
    ):
        cluster.kubectl("apply", "--server-side", "-f", str(crd_dir / name))
    cluster.kubectl(
        "wait",
        "--for",
        "condition=established",
        "--timeout",
        "60s",
        "crd/servicemonitors.monitoring.coreos.com",
        "crd/prometheusrules.monitoring.coreos.com",
        "crd/httproutes.gateway.networking.k8s.io",
    )
    return crd_dir


def value_sets(ns: str, others: list[str]) -> dict[str, Values]:
    return {
        "defaults": {},
        "single-replica-minimal": {
            "operator": {"replicas": 1, "leaderElection": {"enabled": False}},
            "dashboards": {"enabled": False},
            "tests": {"enabled": False},
        },
        "everything-cluster": {
            "image": {"repository": "registry.example/llm-rollout", "digest": DIGEST},
            "crds": {"managed": True},
            "operator": {
                "replicas": 3,
                "allowedPrometheus": ["https://team-prom:9090"],
                "extraArgs": ["--verbose"],
                "tracing": {
                    "otlpEndpoint": "http://otel-collector.observability:4318/v1/traces",
                    "sampleRatio": 0.5,
                    "headersSecret": "otlp-headers",
                },
                "podLabels": {"team": "ml"},
                "priorityClassName": "system-cluster-critical",
                "tolerations": [{"key": "dedicated", "operator": "Exists"}],
            },
            "router": {
                "enabled": True,
                "replicas": 3,
                "trustCohortHeader": True,
                "tracing": {
                    "otlpEndpoint": "http://otel-collector.observability:4318/v1/traces",
                    "captureContent": True,
                    "headersSecret": "otlp-headers",
                },
                "answerLog": {"enabled": True, "maxChars": 4096},
                "service": {"type": "LoadBalancer", "port": 8443},
            },
            "serviceMonitor": {
                "enabled": True,
                "labels": {"release": "kps"},
                "scrapeTimeout": "10s",
            },
            "prometheusRule": {"enabled": True, "ruleLabels": {"team": "ml-platform"}},
            "dashboards": {
                "namespace": others[0],
                "annotations": {"grafana_folder": "LLM rollouts"},
            },
            "networkPolicy": {
                "enabled": True,
                "metricsFrom": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}],
                "egress": {"enabled": True, "apiServerCIDRs": ["10.96.0.1/32"]},
            },
        },
        "namespaced": {
            "rbac": {"scope": "namespace", "namespaces": [ns, *others]},
            "router": {"enabled": True},
            "networkPolicy": {"enabled": True},
        },
        "router-own-keys": {
            "router": {
                "enabled": True,
                "replicas": 1,
                "watchNamespace": others[1],
                "feedbackTokenKeys": {"existingSecret": "my-keys", "create": False},
            }
        },
    }


SETS = ["defaults", "single-replica-minimal", "everything-cluster", "namespaced", "router-own-keys"]


def test_helm_lint_is_clean_with_every_values_set(cluster: Cluster) -> None:
    for name, values in value_sets("ns", ["a", "b"]).items():
        result = helm(cluster, "lint", "--strict", str(CHART), check=False, values=values)
        assert result.returncode == 0, f"{name}:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("which", SETS)
def test_every_rendered_manifest_is_accepted_by_the_api_server(
    cluster: Cluster,
    monitoring_crds: Path,
    namespace: str,
    more_namespaces: list[str],
    tmp_path: Path,
    which: str,
) -> None:
    docs = render(cluster, value_sets(namespace, more_namespaces)[which], namespace=namespace)
    kinds = sorted({d["kind"] for d in docs})
    path = write_yaml(tmp_path / "rendered.yaml", docs)
    result = cluster.kubectl(
        "apply",
        "--server-side",
        "--dry-run=server",
        "--validate=strict",
        "--field-manager",
        "helm-test",
        "-f",
        str(path),
        check=False,
    )
    assert result.returncode == 0, f"{which} ({kinds}):\n{result.stderr}"
    assert result.stdout.count("(server dry run)") == len(docs)
    if which == "everything-cluster":
        assert {
            "ServiceMonitor",
            "PrometheusRule",
            "NetworkPolicy",
            "CustomResourceDefinition",
            "PodDisruptionBudget",
            "Secret",
            "ClusterRole",
        } <= set(kinds)


def test_the_crds_in_crds_dir_render_with_include_crds(cluster: Cluster) -> None:
    docs = render(cluster, {}, extra=("--include-crds",))
    crds = {d["metadata"]["name"] for d in docs if d["kind"] == "CustomResourceDefinition"}
    assert "llmdeployments.rollout.llmops.io" in crds
    managed = render(cluster, {"crds": {"managed": True}})
    for crd in (d for d in managed if d["kind"] == "CustomResourceDefinition"):
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"operator": {"replicas": 0}}, "at '/operator/replicas': minimum: got 0, want 1"),
        (
            {"operator": {"leaderElection": {"enabled": False}}},
            "operator.replicas > 1 needs operator.leaderElection.enabled=true",
        ),
        (
            {"operator": {"leaderElection": {"renewDeadline": 20}}},
            "need retryPeriod x 1.2 < renewDeadline < leaseDuration",
        ),
        (
            {"rbac": {"scope": "everywhere"}},
            "at '/rbac/scope': value must be one of 'cluster', 'namespace'",
        ),
        ({"rbac": {"namespaces": ["Team_A"]}}, "at '/rbac/namespaces/0'"),
        (
            {"operator": {"prometheusUrl": "prometheus:9090"}},
            "at '/operator/prometheusUrl': 'prometheus:9090' does not match pattern",
        ),
        ({"operator": {"replica": 2}}, "additional properties 'replica' not allowed"),
        (
            {"operator": {"tracing": {"otlpEndpoint": "collector:4318"}}},
            "at '/operator/tracing/otlpEndpoint': 'collector:4318' does not match pattern",
        ),
        ({"image": {"digest": "latest"}}, "at '/image/digest'"),
        (
            {"router": {"enabled": True, "feedbackTokenKeys": {"create": False}}},
            "router.feedbackTokenKeys: name an existingSecret or set create=true",
        ),
        ({"serviceMonitor": {"interval": "30 seconds"}}, "at '/serviceMonitor/interval'"),
        ({"router": {"service": {"type": "Ingress"}}}, "at '/router/service/type'"),
    ],
    ids=lambda v: str(v)[:40],
)
def test_bad_values_are_refused_with_a_clear_message(
    cluster: Cluster, values: Values, message: str
) -> None:
    result = helm(cluster, "template", "llmr", str(CHART), check=False, values=values)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_pods_run_locked_down_with_resources_and_probes(cluster: Cluster) -> None:
    docs = render(cluster, {"router": {"enabled": True}})
    for dep in (d for d in docs if d["kind"] == "Deployment"):
        pod = dep["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        (container,) = pod["containers"]
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert container["resources"]["requests"] and container["resources"]["limits"]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["port"] == "metrics"
    test_pod = find(docs, "Pod", "-test")
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"


def egress_ports(policy: dict[str, Any]) -> set[int]:
    return {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}


@pytest.mark.parametrize("component", ["operator", "router"])
def test_tracing_is_off_until_an_endpoint_is_set_then_flags_headers_and_egress_follow(
    cluster: Cluster, component: str
) -> None:
    base: Values = {
        "router": {"enabled": True},
        "networkPolicy": {"enabled": True, "egress": {"enabled": True, "otlpPorts": [4318]}},
    }
    off = render(cluster, base)
    assert not any(a.startswith("--otlp") for a in container_args(off, f"-{component}"))
    assert 4318 not in egress_ports(find(off, "NetworkPolicy", f"-{component}"))

    endpoint = "https://collector.example:4318/v1/traces"
    tracing = {"otlpEndpoint": endpoint, "sampleRatio": 0.25, "headersSecret": "otlp"}
    enabled = {"enabled": True} if component == "router" else {}
    on = render(cluster, base | {component: {**enabled, "tracing": tracing}})
    args = container_args(on, f"-{component}")
    assert f"--otlp-endpoint={endpoint}" in args
    assert "--trace-sample-ratio=0.25" in args
    container = find(on, "Deployment", f"-{component}")["spec"]["template"]["spec"]["containers"]
    [headers] = [e for e in container[0]["env"] if e["name"] == "OTEL_EXPORTER_OTLP_HEADERS"]
    assert headers["valueFrom"]["secretKeyRef"] == {"name": "otlp", "key": "headers"}
    assert 4318 in egress_ports(find(on, "NetworkPolicy", f"-{component}"))
    # Only the component that traces may reach the trace backend.
    other = "router" if component == "operator" else "operator"
    assert 4318 not in egress_ports(find(on, "NetworkPolicy", f"-{other}"))
    assert not any(a.startswith("--otlp") for a in container_args(on, f"-{other}"))


def test_the_answer_log_holds_user_content_so_it_is_off_until_switched_on(
    cluster: Cluster,
) -> None:
    off = container_args(render(cluster, {"router": {"enabled": True}}), "-router")
    assert not any(a.startswith("--answer-log") for a in off)
    values = {"router": {"enabled": True, "answerLog": {"enabled": True, "maxChars": 100}}}
    on = container_args(render(cluster, values), "-router")
    assert "--answer-log" in on and "--answer-log-max-chars=100" in on


def test_the_dashboard_and_alerts_ship_unchanged(cluster: Cluster) -> None:
    docs = render(
        cluster, {"prometheusRule": {"enabled": True, "ruleLabels": {"team": "ml-platform"}}}
    )
    cm = find(docs, "ConfigMap", "-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = (CHART / "dashboards" / "llm-rollout.json").read_text()
    assert cm["data"]["llm-rollout.json"] == shipped.rstrip("\n")
    rule = find(docs, "PrometheusRule")
    source = yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())
    rendered = rule["spec"]["groups"]
    assert [r.get("alert") for g in rendered for r in g["rules"]] == [
        r.get("alert") for g in source["groups"] for r in g["rules"]
    ]
    for group_src, group in zip(source["groups"], rendered, strict=True):
        for src, got in zip(group_src["rules"], group["rules"], strict=True):
            assert got["expr"] == src["expr"]
            if "alert" in src:
                assert got["labels"] == {**src.get("labels", {}), "team": "ml-platform"}


# -- the chart's RBAC, for real ---------------------------------------------------------


def apply_rbac(cluster: Cluster, docs: list[dict[str, Any]], tmp_path: Path) -> list[str]:
    """Create the chart's ServiceAccounts and RBAC objects; returns cluster-scoped ones
    (to delete afterwards: namespaces of the bed are never really deleted)."""
    wanted = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
    rbac = [d for d in docs if d["kind"] in wanted]
    cluster.kubectl("apply", "--server-side", "-f", str(write_yaml(tmp_path / "rbac.yaml", rbac)))
    return [
        f"{d['kind'].lower()}/{d['metadata']['name']}"
        for d in rbac
        if d["kind"].startswith("Cluster")
    ]


def token_kubeconfig(cluster: Cluster, namespace: str, service_account: str, path: Path) -> str:
    """A kubeconfig that authenticates as the ServiceAccount (TokenRequest API)."""
    token = cluster.kubectl(
        "create", "token", service_account, "-n", namespace, "--duration", "1h"
    ).stdout.strip()
    admin = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": admin["clusters"],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [
            {
                "name": "sa",
                "context": {
                    "cluster": admin["clusters"][0]["name"],
                    "user": "sa",
                    "namespace": namespace,
                },
            }
        ],
        "current-context": "sa",
    }
    path.write_text(yaml.safe_dump(config))
    return str(path)


def chart_operator(
    cluster: Cluster,
    prometheus: Prometheus,
    docs: list[dict[str, Any]],
    namespace: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> OperatorProcess:
    """The operator with the chart's arguments and environment, as its ServiceAccount."""
    pod = find(docs, "Deployment", "-operator")["spec"]["template"]["spec"]
    kubeconfig = token_kubeconfig(
        cluster, namespace, pod["serviceAccountName"], tmp_path / "sa-kubeconfig"
    )
    monkeypatch.setenv("POD_NAMESPACE", namespace)
    monkeypatch.setenv("POD_NAME", "llmr-operator-0")
    op = OperatorProcess(cluster, prometheus.url, namespace, tmp_path)
    op.argv = [
        sys.executable,
        "-m",
        "llm_rollout.cli",
        *container_args(docs, "-operator"),
        "--kubeconfig",
        kubeconfig,
        "--prometheus-url",
        prometheus.url,
        "--leader-elect-lease-duration",
        "3",
        "--leader-elect-renew-deadline",
        "2",
        "--leader-elect-retry-period",
        "0.5",
    ]
    return op


def assert_never_denied(op: OperatorProcess) -> None:
    log = op.log_path.read_text(errors="replace")
    for sign in ("is forbidden: User", "Not enough permissions", "403 Forbidden"):
        assert sign not in log, f"{sign!r} in the operator log:\n{op.log_tail(60)}"


def can_i(cluster: Cluster, kubeconfig: str, *args: str) -> bool:
    result = subprocess.run(
        [str(cluster.bin_dir / "kubectl"), "--kubeconfig", kubeconfig, "auth", "can-i", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return result.stdout.strip() == "yes"


def run_rollout(
    rollouts: Rollouts,
    metrics: ControlledMetrics,
    namespace: str,
    op: OperatorProcess,
    change: Callable[[dict[str, Any]], None],
) -> None:
    start_stable(rollouts, metrics, namespace)
    v2 = spec("v2")
    change(v2)
    metrics.set_quality(namespace, rid(v2), 0.95)
    rollouts.patch("bot", {"spec": v2})
    wait_for(
        lambda: phase_is(rollouts, "bot", "Promoted", release=rid(v2)),
        timeout=90,
        what="v2 promoted by the operator running as the chart's ServiceAccount",
        describe=lambda: rollouts.describe("bot") + op.log_tail(),
    )


def test_namespace_scoped_rbac_is_enough_for_a_rollout_and_no_more(
    rollouts: Rollouts,
    controlled_metrics: ControlledMetrics,
    kubelet: KubeletStandIn,
    cluster: Cluster,
    prometheus: Prometheus,
    namespace: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    docs = render(
        cluster, {"rbac": {"scope": "namespace"}, "operator": {"replicas": 1}}, namespace=namespace
    )
    assert apply_rbac(cluster, docs, tmp_path) == [], "namespace scope: no cluster-wide RBAC"
    assert f"--namespace={namespace}" in container_args(docs, "-operator")
    cluster.kubectl(
        "create",
        "secret",
        "generic",
        "prom-token",
        "-n",
        namespace,
        "--from-literal=token=not-checked-by-the-bed",
    )
    op = chart_operator(cluster, prometheus, docs, namespace, tmp_path, monkeypatch)
    op.start()
    try:

        def with_token(body: dict[str, Any]) -> None:  # exercises `get secrets`
            body["prometheus"] = {"bearerTokenSecretRef": {"name": "prom-token", "key": "token"}}

        run_rollout(rollouts, controlled_metrics, namespace, op, with_token)
        events = cluster.kubectl("get", "events", "-n", namespace, "-o", "name").stdout
        assert events.strip(), "decision Events were posted"
        assert_never_denied(op)
    finally:
        op.stop()
    kubeconfig = str(tmp_path / "sa-kubeconfig")
    assert can_i(cluster, kubeconfig, "patch", "llmdeployments.rollout.llmops.io", "-n", namespace)
    for denied in (
        ["list", "secrets", "-n", namespace],
        ["delete", "llmdeployments.rollout.llmops.io", "-n", namespace],
        ["create", "pods", "-n", namespace],
        ["get", "llmdeployments.rollout.llmops.io", "-n", "default"],
        ["list", "namespaces"],
        ["update", "leases/some-other-lease", "-n", namespace],
    ):
        assert not can_i(cluster, kubeconfig, *denied), f"the operator may {denied}"


def test_cluster_scoped_rbac_is_enough_for_a_rollout_with_gateway_api_routing(
    rollouts: Rollouts,
    controlled_metrics: ControlledMetrics,
    kubelet: KubeletStandIn,
    cluster: Cluster,
    prometheus: Prometheus,
    monitoring_crds: Path,
    namespace: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = f"r{uuid.uuid4().hex[:6]}"
    docs = render(
        cluster,
        {"operator": {"replicas": 1}, "router": {"enabled": True}},
        namespace=namespace,
        release=release,
    )
    cluster_scoped = apply_rbac(cluster, docs, tmp_path)
    # operator and router (bound), eval runner (for users to bind in their namespaces),
    # editor and viewer (aggregated into the built-in roles)
    assert (
        sorted(k.split("/")[0] for k in cluster_scoped)
        == ["clusterrole"] * 5 + ["clusterrolebinding"] * 2
    )
    assert not any(a.startswith("--namespace") for a in container_args(docs, "-operator"))
    op = chart_operator(cluster, prometheus, docs, namespace, tmp_path, monkeypatch)
    op.start()
    try:

        def gateway_api(body: dict[str, Any]) -> None:  # exercises httproutes
            body["routing"] = {
                "provider": "gateway-api",
                "gatewayApi": {"parentRefs": [{"name": "gw"}], "hostnames": ["bot.example"]},
            }

        run_rollout(rollouts, controlled_metrics, namespace, op, gateway_api)
        routes = cluster.kubectl("get", "httproutes", "-n", namespace, "-o", "name").stdout
        assert "httproute" in routes
        assert_never_denied(op)
        router_sa = find(docs, "Deployment", "-router")["spec"]["template"]["spec"][
            "serviceAccountName"
        ]
        router_kc = token_kubeconfig(cluster, namespace, router_sa, tmp_path / "router-kc")
        assert can_i(cluster, router_kc, "watch", "llmdeployments.rollout.llmops.io", "-A")
        assert not can_i(
            cluster, router_kc, "patch", "llmdeployments.rollout.llmops.io", "-n", namespace
        )
        assert not can_i(cluster, router_kc, "get", "secrets", "-n", namespace)
    finally:
        op.stop()
        for name in cluster_scoped:
            cluster.kubectl("delete", name, "--ignore-not-found")


def test_the_knowledge_base_refresh_example_works_with_the_charts_rbac(
    rollouts: Rollouts, cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    """examples/knowledge-base-refresh.yaml applied as it is, next to the chart's RBAC: its
    ServiceAccount can set a new snapshot on an LLMDeployment (the job's last step, run
    here with that ServiceAccount's token) and can do little else."""
    docs = render(cluster, {}, namespace=namespace, release="llm-rollout-operator")
    cluster_scoped = apply_rbac(cluster, docs, tmp_path)
    try:
        assert "clusterrole/llm-rollout-operator-editor" in cluster_scoped
        editor = find(docs, "ClusterRole", "-editor")["metadata"]["labels"]
        assert editor["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
        example = REPO_ROOT / "examples" / "knowledge-base-refresh.yaml"
        cluster.kubectl("apply", "--server-side", "-n", namespace, "-f", str(example))
        rollouts.create(obj("assistant", spec("v1")))
        kubeconfig = token_kubeconfig(
            cluster, namespace, "knowledge-base-refresh", tmp_path / "kb-kubeconfig"
        )

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "llm_rollout.cli", "knowledge-base", *args,
                 "-n", namespace, "--kubeconfig", kubeconfig],
                capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip

        done = cli("assistant", "--snapshot", "kb-20261203", "--source-revision", "9c1e2f0",
                   "--created-at", "2026-12-03T03:00:00+01:00")  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "knowledge base kb-20261203 (built 2026-12-03T02:00:00Z) set" in done.stdout
        kb = rollouts.get("assistant")["spec"]["release"]["knowledgeBase"]
        assert kb == {
            "snapshot": "kb-20261203",
            "createdAt": "2026-12-03T02:00:00Z",
            "sourceRevision": "9c1e2f0",
        }
        # Bad input: a time without a zone is refused before anything is sent; a
        # deployment that does not exist is the API server's 404, named.
        bad = cli("assistant", "--snapshot", "kb-x", "--created-at", "2026-12-03T03:00:00")
        assert bad.returncode == 2 and "has no time zone" in bad.stderr
        assert rollouts.get("assistant")["spec"]["release"]["knowledgeBase"] == kb
        missing = cli("nobody", "--snapshot", "kb-x")
        assert missing.returncode == 1 and "404" in missing.stderr
        assert can_i(
            cluster, kubeconfig, "patch", "llmdeployments.rollout.llmops.io", "-n", namespace
        )
        for denied in (
            ["patch", "llmdeployments.rollout.llmops.io", "-n", "default"],
            ["patch", "llmdeployments.rollout.llmops.io", "--subresource=status", "-n", namespace],
            ["get", "secrets", "-n", namespace],
            ["create", "pods", "-n", namespace],
        ):
            assert not can_i(cluster, kubeconfig, *denied), f"the refresh job may {denied}"
    finally:
        for name in cluster_scoped:
            cluster.kubectl("delete", name, "--ignore-not-found")


def test_install_upgrade_and_uninstall_on_the_real_api_server(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    """A real `helm install` (namespace scope: nothing cluster-wide), NOTES rendered,
    the router's generated feedback key kept across `helm upgrade`, then uninstalled."""
    values: Values = {
        "rbac": {"scope": "namespace"},
        "router": {"enabled": True},
        "networkPolicy": {"enabled": True},
    }
    base = ("--namespace", namespace, "--kubeconfig", cluster.kubeconfig, "--skip-crds")
    installed = helm(cluster, "install", "llmr", str(CHART), *base, values=values).stdout
    assert f"Watching: {namespace}" in installed
    assert f"kubectl -n {namespace} get lease llm-rollout-operator" in installed
    assert "helm test llmr" in installed

    def key() -> str:
        return cluster.kubectl(
            "get",
            "secret",
            "llmr-llm-rollout-operator-router-feedback-keys",
            "-n",
            namespace,
            "-o",
            "jsonpath={.data.keys}",
        ).stdout

    first = key()
    assert len(first) > 40
    helm(
        cluster,
        "upgrade",
        "llmr",
        str(CHART),
        *base,
        values={**values, "operator": {"replicas": 3}},
    )
    assert key() == first, "upgrades keep the generated feedback key (tokens stay valid)"
    replicas = cluster.kubectl(
        "get",
        "deployment",
        "llmr-llm-rollout-operator",
        "-n",
        namespace,
        "-o",
        "jsonpath={.spec.replicas}",
    ).stdout
    assert replicas == "3"
    helm(cluster, "uninstall", "llmr", "--namespace", namespace, "--kubeconfig", cluster.kubeconfig)
    left = cluster.kubectl(
        "get", "deployments,services,roles", "-n", namespace, "-o", "name"
    ).stdout
    assert left.strip() == "", left
    # the key Secret is kept on uninstall (helm.sh/resource-policy: keep)
    assert key() == first


def test_namespace_scoped_rbac_runs_eval_suites(
    rollouts: Rollouts,
    sims: dict[str, str],
    kubelet: KubeletStandIn,
    cluster: Cluster,
    prometheus: Prometheus,
    namespace: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An eval-gated rollout with the operator (and, through the local executor, the eval
    runner) authenticated as the chart's ServiceAccount; the eval runner's own
    ServiceAccount may read its run and patch its status, nothing more."""
    bench = test_evals.Bench(cluster, namespace, sims, rollouts, tmp_path)
    docs = render(
        cluster, {"rbac": {"scope": "namespace"}, "operator": {"replicas": 1}}, namespace=namespace
    )
    apply_rbac(cluster, docs, tmp_path)
    op = chart_operator(cluster, prometheus, docs, namespace, tmp_path, monkeypatch)
    op.argv += ["--eval-executor", "local", "--eval-backend-file", str(bench.backend_file)]
    op.start()
    prometheus.add_target(f"chart-operator-{namespace}", f"127.0.0.1:{op.metrics_port}")
    try:
        bench.start_stable(test_evals.spec("v1", sims))
        v2 = test_evals.spec("v2", sims)
        good = bench.serve(v2, "good")
        bench.rollouts.patch("bot", {"spec": v2})
        wait_for(
            lambda: (
                bench.rollouts.status("bot").get("phase") == "Promoted"
                and bench.rollouts.status("bot")["stable"]["id"] == good
            ),
            timeout=120,
            what="the eval-gated release promoted",
            describe=bench.describe,
        )
        assert bench.run_phase(good) == "Succeeded"
        assert_never_denied(op)
    finally:
        prometheus.remove_target(f"chart-operator-{namespace}")
        op.stop()
    runner = token_kubeconfig(cluster, namespace, "llm-rollout-eval", tmp_path / "eval-kc")
    assert can_i(cluster, runner, "get", "llmevalruns.rollout.llmops.io", "-n", namespace)
    assert can_i(
        cluster,
        runner,
        "patch",
        "llmevalruns.rollout.llmops.io",
        "--subresource",
        "status",
        "-n",
        namespace,
    )
    for denied in (
        ["list", "secrets", "-n", namespace],
        ["patch", "llmdeployments.rollout.llmops.io", "-n", namespace],
        ["create", "pods", "-n", namespace],
    ):
        assert not can_i(cluster, runner, *denied), f"the eval runner may {denied}"

from __future__ import annotations

from llm_rollout.api.routing_table import ReleaseInfo
from llm_rollout.kube.builders import (
    LABEL_RELEASE,
    Owner,
    build_deployment,
    build_service,
    deployment_available,
    release_object_name,
)

OWNER = Owner(namespace="team-a", name="support-bot", uid="uid-1")
RELEASE = ReleaseInfo(
    id="abc1234567", model="llama", model_revision="r2", prompt_version="v3", knowledge_base="kb-1"
)
TEMPLATE = {
    "metadata": {"labels": {"app": "bot"}},
    "spec": {
        "containers": [
            {"name": "app", "image": "bot:1", "env": [{"name": "LLM_MODEL", "value": "override"}]}
        ]
    },
}


def test_deployment_selects_only_its_release_and_keeps_user_labels() -> None:
    dep = build_deployment(OWNER, RELEASE, template=TEMPLATE, replicas=2, role="candidate")
    assert dep["metadata"]["name"] == "support-bot-abc1234567"
    assert dep["spec"]["selector"]["matchLabels"][LABEL_RELEASE] == "abc1234567"
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert labels["app"] == "bot" and labels[LABEL_RELEASE] == "abc1234567"
    assert dep["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert dep["metadata"]["ownerReferences"][0]["controller"] is True
    assert dep["spec"]["replicas"] == 2


def test_release_env_is_injected_without_overriding_the_users_own() -> None:
    dep = build_deployment(OWNER, RELEASE, template=TEMPLATE, replicas=1, role="stable")
    env = {e["name"]: e["value"] for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["LLM_MODEL"] == "override"
    assert env["LLM_PROMPT_VERSION"] == "v3" and env["LLM_RELEASE"] == "abc1234567"
    # the input template is not mutated
    assert len(TEMPLATE["spec"]["containers"][0]["env"]) == 1  # type: ignore[index]


def test_service_targets_the_release_port() -> None:
    svc = build_service(OWNER, RELEASE, port=8080, role="stable")
    assert svc["metadata"]["name"] == release_object_name("support-bot", "abc1234567")
    assert svc["spec"]["selector"][LABEL_RELEASE] == "abc1234567"
    assert svc["spec"]["ports"][0]["targetPort"] == 8080


def test_deployment_available_follows_rollout_status_rules() -> None:
    assert not deployment_available(None, 1)
    stale = {
        "metadata": {"generation": 3},
        "status": {"observedGeneration": 2, "availableReplicas": 1},
    }
    assert not deployment_available(stale, 1)
    short = {
        "metadata": {"generation": 3},
        "status": {"observedGeneration": 3, "availableReplicas": 1},
    }
    assert not deployment_available(short, 2)
    assert deployment_available(short, 1)

"""The list URLs the operator waits for before it starts watching."""

from __future__ import annotations

from llm_rollout.controller.served import served_paths


def test_cluster_wide_and_per_namespace_paths() -> None:
    assert served_paths(()) == [
        "/apis/rollout.llmops.io/v1alpha1/llmdeployments",
        "/apis/rollout.llmops.io/v1alpha1/llmevalruns",
    ]
    assert served_paths(("a", "b")) == [
        "/apis/rollout.llmops.io/v1alpha1/namespaces/a/llmdeployments",
        "/apis/rollout.llmops.io/v1alpha1/namespaces/a/llmevalruns",
        "/apis/rollout.llmops.io/v1alpha1/namespaces/b/llmdeployments",
        "/apis/rollout.llmops.io/v1alpha1/namespaces/b/llmevalruns",
    ]

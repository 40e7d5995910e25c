"""llm-rollout-operator: staged, metric-gated rollouts of LLM application releases."""

__version__ = "0.1.0"

GROUP = "rollout.llmops.io"
VERSION = "v1alpha1"
KIND = "LLMDeployment"
PLURAL = "llmdeployments"

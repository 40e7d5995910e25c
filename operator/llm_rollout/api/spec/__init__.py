"""`LLMDeployment.spec`: the single source of truth for the CRD schema.

Every rule the API server checks with CEL (`x-kubernetes-validations`) is mirrored
by a pydantic validator, so a spec that parses here is one admission accepts.
Checks admission cannot do (PromQL templates) live in `engine.validate`.
Limits on list and string sizes keep the CEL rules within the API server's cost budget.
"""

from llm_rollout.api.spec.analysis import (
    Analysis,
    GatewayApiRouting,
    IstioRouting,
    MetricSpec,
    OnMetricsUnavailable,
    PrometheusSpec,
    Query,
    RatioQueries,
    RoutingProvider,
    RoutingSpec,
    SecretKeyRef,
)
from llm_rollout.api.spec.common import (
    MAX_CHECKS,
    MAX_COHORTS,
    MAX_COMPONENTS,
    MAX_EVALS,
    MAX_GATES,
    MAX_JUDGES,
    MAX_LIST,
    MAX_METRICS,
    MAX_QUERY_LENGTH,
    MAX_RUBRIC_LENGTH,
    MAX_STAGES,
    MAX_STEPS,
    NAME_PATTERN,
    RESERVED_CRITERIA,
    Duration,
    Name,
    Percent,
    ShortText,
)
from llm_rollout.api.spec.deployment import (
    LLMDeploymentSpec,
)
from llm_rollout.api.spec.evals import (
    EvalDataset,
    EvalSuite,
    Judge,
    JudgeScale,
)
from llm_rollout.api.spec.identity import (
    release_id,
    release_info,
)
from llm_rollout.api.spec.release import (
    ConfigMapKeyRef,
    KnowledgeBase,
    ModelRef,
    PromptRef,
    ReleaseSpec,
)
from llm_rollout.api.spec.stages import (
    Direction,
    Gate,
    GateComponent,
    GateKind,
    Stage,
    default_cohorts,
    default_stages,
)
from llm_rollout.api.spec.tracing import TracingSpec

__all__ = [
    "MAX_CHECKS",
    "MAX_COHORTS",
    "MAX_COMPONENTS",
    "MAX_EVALS",
    "MAX_GATES",
    "MAX_JUDGES",
    "MAX_LIST",
    "MAX_METRICS",
    "MAX_QUERY_LENGTH",
    "MAX_RUBRIC_LENGTH",
    "MAX_STAGES",
    "MAX_STEPS",
    "NAME_PATTERN",
    "RESERVED_CRITERIA",
    "Analysis",
    "ConfigMapKeyRef",
    "Direction",
    "Duration",
    "EvalDataset",
    "EvalSuite",
    "Gate",
    "GateComponent",
    "GateKind",
    "GatewayApiRouting",
    "IstioRouting",
    "Judge",
    "JudgeScale",
    "KnowledgeBase",
    "LLMDeploymentSpec",
    "MetricSpec",
    "ModelRef",
    "Name",
    "OnMetricsUnavailable",
    "Percent",
    "PrometheusSpec",
    "PromptRef",
    "Query",
    "RatioQueries",
    "ReleaseSpec",
    "RoutingProvider",
    "RoutingSpec",
    "SecretKeyRef",
    "ShortText",
    "Stage",
    "TracingSpec",
    "default_cohorts",
    "default_stages",
    "release_id",
    "release_info",
]

"""Generate the CRDs (LLMDeployment, LLMEvalRun) and their reference doc from the
pydantic models.

    python -m llm_rollout.gen.crd            # write crds/rollout.llmops.io_*.yaml
    python -m llm_rollout.gen.crd --docs     # write docs/crd-reference.md
    python -m llm_rollout.gen.crd --all      # both
    python -m llm_rollout.gen.crd --check    # exit 1 with a diff when the file is stale
    python -m llm_rollout.gen.crd --stdout   # print instead of writing

pydantic's JSON schema is turned into a Kubernetes *structural* schema: $refs
inlined, Optional as `nullable`, no anyOf/oneOf, no `additionalProperties: false`,
numeric exclusive bounds in OpenAPI v3.0 form, defaults from default factories, and
only keywords the API server accepts (anything else is an error here, not there).
"""

from llm_rollout.gen.crd.cli import CRD_PATH, DOCS_PATH, EVAL_RUN_CRD_PATH, REPO, main
from llm_rollout.gen.crd.documents import (
    all_crds_yaml,
    crd,
    crd_yaml,
    eval_run_crd,
    eval_run_crd_yaml,
)
from llm_rollout.gen.crd.reference import docs_markdown
from llm_rollout.gen.crd.schema import ALLOWED_KEYWORDS, SchemaError, model_schema

__all__ = [
    "ALLOWED_KEYWORDS",
    "CRD_PATH",
    "DOCS_PATH",
    "EVAL_RUN_CRD_PATH",
    "REPO",
    "SchemaError",
    "all_crds_yaml",
    "crd",
    "crd_yaml",
    "docs_markdown",
    "eval_run_crd",
    "eval_run_crd_yaml",
    "main",
    "model_schema",
]

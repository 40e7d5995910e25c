"""examples/translation-assistant.yaml: a valid LLMDeployment with an eval suite whose
dataset ConfigMap parses and whose checks pass on the references."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from schema_support import apply_defaults, conforms

from llm_rollout.api import LLMDeploymentSpec
from llm_rollout.evals.dataset import parse_dataset
from llm_rollout.gen import crd as crdgen
from llm_rollout.heuristics import parse_checks, run_checks

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "translation-assistant.yaml"


def documents() -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for d in yaml.safe_load_all(EXAMPLE.read_text())}


def test_the_example_is_a_valid_llmdeployment_with_an_eval_suite() -> None:
    deployment = documents()["LLMDeployment"]
    spec = LLMDeploymentSpec.model_validate(deployment["spec"])
    (suite,) = spec.evals
    assert suite.stages == ["experts"] and suite.compare_stable
    assert [c.name for c in suite.checks] == ["brand-names", "glossary", "formal-tone"]
    assert [j.name for j in suite.judges] == ["accuracy", "terminology"]
    assert {g.suite for g in spec.stages[0].gates if g.metric == "eval-score"} == {suite.name}
    schema = crdgen.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
    assert (
        conforms(schema["spec"], apply_defaults(schema["spec"], deployment["spec"]), ".spec") == []
    )


def test_the_dataset_parses_and_its_references_pass_the_checks() -> None:
    docs = documents()
    suite = LLMDeploymentSpec.model_validate(docs["LLMDeployment"]["spec"]).evals[0]
    config_map = docs["ConfigMap"]
    ref = suite.dataset.config_map_ref
    assert config_map["metadata"]["name"] == ref.name
    cases = parse_dataset(config_map["data"][ref.key])
    assert len(cases) == 8 and all(c.reference for c in cases)
    checks = parse_checks(suite.checks)
    for case in cases:
        assert case.reference is not None
        results = run_checks(checks, output=case.reference, input_text=case.input_text)
        assert all(r.passed for r in results), (case.id, results)

"""The generated CRD: up to date, a valid structural schema, CEL rules, defaults that
mirror the pydantic models, and statuses the engine writes that the schema accepts."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from engine_support import BAD, started
from schema_support import apply_defaults, conforms

from llm_rollout import GROUP, KIND, PLURAL, VERSION
from llm_rollout.api import LLMDeploymentSpec, ManualAction
from llm_rollout.gen import crd as crdgen

CRD = crdgen.crd()
VERSION_SPEC = CRD["spec"]["versions"][0]
ROOT = VERSION_SPEC["schema"]["openAPIV3Schema"]
SPEC = ROOT["properties"]["spec"]
STATUS = ROOT["properties"]["status"]


def nodes(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from nodes(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from nodes(node["additionalProperties"], f"{path}{{}}")


# --- drift --------------------------------------------------------------------------


def test_committed_crd_is_up_to_date() -> None:
    assert crdgen.CRD_PATH.read_text() == crdgen.crd_yaml(), "run `make crds`"
    assert yaml.safe_load(crdgen.CRD_PATH.read_text()) == CRD


def test_committed_reference_doc_is_up_to_date() -> None:
    assert crdgen.DOCS_PATH.read_text() == crdgen.docs_markdown(), (
        "run `python -m llm_rollout.gen.crd --docs`"
    )


def test_check_mode_reports_stale_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert crdgen.main(["--check", "--all"]) == 0
    stale = tmp_path / "crd.yaml"
    stale.write_text(crdgen.crd_yaml().replace("llmd", "llmx"))
    monkeypatch.setattr(crdgen.cli, "CRD_PATH", stale)
    assert crdgen.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert "-    - llmx" in out and "+    - llmd" in out
    assert crdgen.main([]) == 0 and crdgen.main(["--check"]) == 0  # written, now fresh


# --- identity, columns ---------------------------------------------------------------


def test_names_and_versions() -> None:
    spec = CRD["spec"]
    assert CRD["metadata"]["name"] == f"{PLURAL}.{GROUP}" == "llmdeployments.rollout.llmops.io"
    assert (spec["group"], spec["names"]["kind"], spec["names"]["plural"]) == (GROUP, KIND, PLURAL)
    assert spec["names"]["shortNames"] == ["llmd"] and spec["scope"] == "Namespaced"
    assert VERSION_SPEC["name"] == VERSION == "v1alpha1"
    assert VERSION_SPEC["served"] and VERSION_SPEC["storage"]
    assert VERSION_SPEC["subresources"] == {"status": {}}


def test_printer_columns() -> None:
    columns = {c["name"]: c for c in VERSION_SPEC["additionalPrinterColumns"]}
    assert list(columns) == [
        "Release",
        "Stage",
        "Step",
        "Phase",
        "Age",
        "Stable",
        "Candidate",
        "Message",
    ]
    wide = {n for n, c in columns.items() if c.get("priority") == 1}
    assert wide == {"Stable", "Candidate", "Message"}
    for column in columns.values():
        path = column["jsonPath"].lstrip(".").split(".")
        if path[0] == "metadata":
            continue
        node = ROOT
        for part in path:
            node = node["properties"][part]
        assert node["type"] == ("string" if column["type"] == "string" else node["type"])


# --- structural schema ---------------------------------------------------------------


def test_schema_is_structural() -> None:
    text = json.dumps(ROOT)
    for forbidden in (
        '"$ref"',
        '"$defs"',
        '"definitions"',
        '"anyOf"',
        '"oneOf"',
        '"allOf"',
        '"not"',
        '"uniqueItems"',
        '"x-kubernetes-int-or-string"',
    ):
        assert forbidden not in text
    for path, node in nodes(ROOT):
        assert "type" in node, path
        assert set(node) <= crdgen.ALLOWED_KEYWORDS, (path, set(node) - crdgen.ALLOWED_KEYWORDS)
        assert not ("properties" in node and "additionalProperties" in node), path
        assert node.get("additionalProperties", {}) is not False, path
        if node["type"] == "array":
            assert isinstance(node["items"], dict) and "type" in node["items"], path
        if node.get("x-kubernetes-preserve-unknown-fields"):
            assert node["type"] == "object", path
        if node.get("x-kubernetes-list-type") == "set":
            assert node["items"]["type"] in ("string", "integer", "number", "boolean"), path
        if node.get("x-kubernetes-list-type") == "map":
            keys = node["x-kubernetes-list-map-keys"]
            assert set(keys) <= set(node["items"].get("required", [])), path
        for name in node.get("required", []):
            assert name in node["properties"], (path, name)
        if "enum" in node:
            assert all(isinstance(v, str) for v in node["enum"]), path
        if "nullable" in node:
            assert node["nullable"] is True, path


def test_every_field_is_described() -> None:
    for path, node in nodes(ROOT):
        if path in (".metadata",) or path.endswith("[]") or path.endswith("{}"):
            continue
        assert node.get("description"), f"{path} has no description (kubectl explain)"


# CohortMatch (shared with the router) and the heuristic checks (of the router and of
# eval suites) have free lists/maps that no CEL rule reads (check names are read).
_UNBOUNDED_OK = re.compile(
    r"^\.spec\.(cohorts\[\]\.match|checks\[\]|evals\[\]\.checks\[\])\.(?!name$)"
)


def test_spec_strings_and_lists_are_bounded_for_cel_cost() -> None:
    for path, node in nodes(SPEC, ".spec"):
        if _UNBOUNDED_OK.match(path):
            continue
        if node["type"] == "string" and "enum" not in node:
            assert "maxLength" in node, f"{path}: strings need maxLength"
        if node["type"] == "array":
            assert "maxItems" in node, f"{path}: lists need maxItems"


def rules() -> list[tuple[str, dict[str, Any], dict[str, str]]]:
    return [
        (path, node, rule)
        for path, node in nodes(SPEC, ".spec")
        for rule in node.get("x-kubernetes-validations", [])
    ]


def test_cel_rules_cover_the_contract() -> None:
    messages = {rule["message"] for _, _, rule in rules()}
    assert messages >= {
        "stage names must be unique",
        "cohort names must be unique",
        "metric names must be unique",
        "gate names must be unique",
        "every cohort of a stage must be defined in spec.cohorts",
        "defaultCohort must name a cohort of spec.cohorts",
        "every gate metric must be defined in spec.metrics or be a built-in preset",
        "steps must be strictly ascending",
        "confidence must be in (0, 1)",
        "min must be <= max",
        "minDuration must be <= maxDuration",
    }


def test_cel_rules_reference_fields_of_their_node() -> None:
    for path, node, rule in rules():
        for field in re.findall(r"self\.(\w+)", rule["rule"]):
            if node["type"] == "array":
                continue  # `self` is the list; fields are of its items' variables
            assert field in node["properties"], (path, rule["rule"], field)


def test_cel_rule_lists_every_preset() -> None:
    (rule,) = [r for _, _, r in rules() if "built-in preset" in r["message"]]
    from llm_rollout.metrics.presets import PRESET_NAMES

    for name in PRESET_NAMES:
        assert f"'{name}'" in rule["rule"]


# --- defaults and values against the schema -----------------------------------------


def test_every_default_conforms_to_its_schema() -> None:
    for path, node in nodes(ROOT):
        if "default" in node:
            assert conforms(node, node["default"], path) == [], path


def test_server_defaults_equal_pydantic_defaults() -> None:
    minimal = {"release": {"model": {"name": "llama"}}}
    defaulted = apply_defaults(SPEC, minimal)
    expected = LLMDeploymentSpec.model_validate(minimal)
    assert LLMDeploymentSpec.model_validate(defaulted) == expected
    assert defaulted == expected.model_dump(mode="json", by_alias=True, exclude_none=True)


def test_a_full_spec_conforms() -> None:
    raw = {
        "release": {
            "model": {"name": "m", "revision": "r"},
            "prompt": {"version": "v", "configMapRef": {"name": "p", "key": "k"}},
            "template": {"spec": {"containers": [{"name": "a", "image": "i"}]}},
        },
        "metrics": [
            {"name": "q", "query": 'avg(q{r="{{ release }}"})', "samples": "count(q)"},
            {"name": "r", "ratio": {"success": "a", "total": "b"}},
        ],
        "stages": [
            {
                "name": "s",
                "cohorts": ["everyone"],
                "steps": [5, 50],
                "maxDuration": "1h",
                "gates": [
                    {
                        "name": "g",
                        "kind": "Compare",
                        "metric": "r",
                        "margin": 0.1,
                        "direction": "lowerIsBetter",
                        "minSamples": 10,
                    }
                ],
            }
        ],
        "prometheus": {
            "address": "http://prom:9090",
            "bearerTokenSecretRef": {"name": "s", "key": "t"},
        },
        "checks": [
            {"name": "json", "type": "validJson"},
            {"name": "terms", "type": "requiredTerms", "terms": ["ACME"]},
        ],
        "routing": {
            "provider": "gateway-api",
            "hosts": ["chat.example.com"],
            "gatewayApi": {
                "parentRefs": [{"name": "gw", "namespace": "infra", "sectionName": "https"}],
                "hostnames": ["chat.example.com"],
            },
        },
    }
    spec = LLMDeploymentSpec.model_validate(raw)
    dumped = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert conforms(SPEC, dumped, ".spec") == []
    assert conforms(SPEC, apply_defaults(SPEC, raw), ".spec") == []


def test_statuses_the_engine_writes_conform() -> None:
    drv = started()
    drv.call(30)
    drv.call(30)
    drv.call(30, BAD)
    drv.call(30, BAD)
    drv.call(1, action=ManualAction("retry", "1"))
    for decision in drv.decisions:
        patch = decision.status.to_patch()
        assert conforms(STATUS, patch, ".status") == [], decision.outcome

"""Generate the CRDs (LLMDeployment, LLMEvalRun) and their reference doc from the
pydantic models.

    python -m llm_rollout.crdgen            # write crds/rollout.llmops.io_*.yaml
    python -m llm_rollout.crdgen --docs     # write docs/crd-reference.md
    python -m llm_rollout.crdgen --all      # both
    python -m llm_rollout.crdgen --check    # exit 1 with a diff when the file is stale
    python -m llm_rollout.crdgen --stdout   # print instead of writing

pydantic's JSON schema is turned into a Kubernetes *structural* schema: $refs
inlined, Optional as `nullable`, no anyOf/oneOf, no `additionalProperties: false`,
numeric exclusive bounds in OpenAPI v3.0 form, defaults from default factories, and
only keywords the API server accepts (anything else is an error here, not there).
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from llm_rollout import GROUP, KIND, PLURAL, VERSION
from llm_rollout.api.actions import ACTION_ANNOTATION, ACTION_ID_ANNOTATION, ActionKind
from llm_rollout.api.evalrun import (
    EVAL_RUN_KIND,
    EVAL_RUN_PLURAL,
    EVAL_RUN_PRINTER_COLUMNS,
    LLMEvalRunSpec,
    LLMEvalRunStatus,
)
from llm_rollout.api.resource import PRINTER_COLUMNS, SHORT_NAMES, SINGULAR
from llm_rollout.api.spec import LLMDeploymentSpec
from llm_rollout.api.status import LLMDeploymentStatus
from llm_rollout.metrics.presets import PRESETS

REPO = Path(__file__).resolve().parents[2]
CRD_PATH = REPO / "crds" / f"{GROUP}_{PLURAL}.yaml"
EVAL_RUN_CRD_PATH = REPO / "crds" / f"{GROUP}_{EVAL_RUN_PLURAL}.yaml"
DOCS_PATH = REPO / "docs" / "crd-reference.md"

# Keywords a structural schema may carry (apiextensions.k8s.io/v1 JSONSchemaProps).
ALLOWED_KEYWORDS = frozenset(
    {
        "type",
        "description",
        "properties",
        "additionalProperties",
        "items",
        "required",
        "enum",
        "default",
        "format",
        "pattern",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "nullable",
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-validations",
        "x-kubernetes-list-type",
        "x-kubernetes-list-map-keys",
        "x-kubernetes-map-type",
    }
)
_DROPPED = frozenset({"title", "examples"})
# Readable key order in the YAML: what a node is first, its children last.
_KEY_ORDER = {
    k: i
    for i, k in enumerate(
        [
            "type",
            "description",
            "nullable",
            "default",
            "enum",
            "format",
            "pattern",
            "minimum",
            "exclusiveMinimum",
            "maximum",
            "exclusiveMaximum",
            "minLength",
            "maxLength",
            "minItems",
            "maxItems",
            "minProperties",
            "maxProperties",
            "x-kubernetes-preserve-unknown-fields",
            "x-kubernetes-list-type",
            "x-kubernetes-list-map-keys",
            "x-kubernetes-map-type",
            "required",
            "x-kubernetes-validations",
            "additionalProperties",
            "items",
            "properties",
        ]
    )
}


class _WithFactoryDefaults(GenerateJsonSchema):
    """Also emit defaults that come from default factories (the API server applies them)."""

    def get_default_value(self, schema: core_schema.WithDefaultSchema) -> Any:
        factory = schema.get("default_factory")
        if factory is not None and not schema.get("default_factory_takes_data"):
            return factory()  # type: ignore[call-arg]
        return super().get_default_value(schema)


def _clean_text(text: str) -> str:
    """Docstring-ish text as paragraphs of single lines."""
    paragraphs = [" ".join(p.split()) for p in text.strip().split("\n\n")]
    return "\n\n".join(p for p in paragraphs if p)


def _strip_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_none(v) for v in value]
    return value


class SchemaError(ValueError):
    """pydantic produced something a structural schema cannot express."""


def _structural(
    node: JsonSchemaValue, defs: dict[str, JsonSchemaValue], path: str
) -> dict[str, Any]:
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        node = {**target, **node}  # the field's own description / default win
    if "allOf" in node:
        (only,) = node.pop("allOf")
        node = {**_structural(only, defs, path), **node}
    nullable = False
    if "anyOf" in node:
        branches = [b for b in node.pop("anyOf") if b != {"type": "null"}]
        if len(branches) != 1:
            raise SchemaError(f"{path}: unions other than Optional[X] are not structural")
        nullable = True
        node = {**_structural(branches[0], defs, path), **node}
    if node.get("default", 0) is None:
        del node["default"]
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED:
            continue
        if key == "properties":
            out[key] = {k: _structural(v, defs, f"{path}.{k}") for k, v in value.items()}
        elif key == "items":
            out[key] = _structural(value, defs, f"{path}[]")
        elif key == "additionalProperties":
            if isinstance(value, dict) and value:
                out[key] = _structural(value, defs, f"{path}{{}}")
            # False (extra=forbid) and True/{} (free-form) are not structural: dropped;
            # free-form objects carry x-kubernetes-preserve-unknown-fields instead.
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out[bound], out[key] = value, True
        elif key == "const":
            out["enum"] = [value]
        elif key == "description":
            out[key] = _clean_text(value)
        elif key == "default":
            out[key] = _strip_none(value)
        elif key in ALLOWED_KEYWORDS:
            out[key] = value
        else:
            raise SchemaError(f"{path}: keyword {key!r} is not allowed in a structural schema")
    if nullable:
        out["nullable"] = True
    if out.get("x-kubernetes-preserve-unknown-fields"):
        out.setdefault("type", "object")
    if "type" not in out:
        raise SchemaError(f"{path}: no type")
    return dict(sorted(out.items(), key=lambda kv: _KEY_ORDER.get(kv[0], len(_KEY_ORDER))))


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural schema of a model (camelCase, defaults included)."""
    raw = model.model_json_schema(by_alias=True, schema_generator=_WithFactoryDefaults)
    defs = raw.pop("$defs", {})
    return _structural(raw, defs, model.__name__)


def _crd_document(
    *,
    kind: str,
    plural: str,
    singular: str,
    short_names: list[str],
    description: str,
    spec: dict[str, Any],
    status: dict[str, Any],
    columns: list[dict[str, Any]],
) -> dict[str, Any]:
    root: dict[str, Any] = {
        "type": "object",
        "description": description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "API version of the object."},
            "kind": {"type": "string", "description": "Kind of the object."},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": singular,
                "shortNames": short_names,
                "categories": ["llmops"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": root},
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                }
            ],
        },
    }


def crd() -> dict[str, Any]:
    spec = model_schema(LLMDeploymentSpec)
    return _crd_document(
        kind=KIND,
        plural=PLURAL,
        singular=SINGULAR,
        short_names=SHORT_NAMES,
        description="LLMDeployment rolls out releases of an LLM application (model, "
        "prompt, knowledge base) cohort by cohort, gated on evaluation and feedback "
        "metrics from Prometheus.",
        spec=spec,
        status=model_schema(LLMDeploymentStatus),
        columns=PRINTER_COLUMNS,
    )


def eval_run_crd() -> dict[str, Any]:
    """The LLMEvalRun CRD: one run of an eval suite, created by the operator."""
    return _crd_document(
        kind=EVAL_RUN_KIND,
        plural=EVAL_RUN_PLURAL,
        singular=EVAL_RUN_KIND.lower(),
        short_names=["llmeval"],
        description="LLMEvalRun is one run of an eval suite against one release of an "
        "LLMDeployment, at the start of a stage. The operator creates it; the eval runner "
        "writes its status; the results of a Succeeded run are exported as llm_eval_score.",
        spec=model_schema(LLMEvalRunSpec),
        status=model_schema(LLMEvalRunStatus),
        columns=EVAL_RUN_PRINTER_COLUMNS,
    )


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # no &anchors: shared sub-schemas are written out in full


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


_HEADER = (
    "# Generated by `python -m llm_rollout.crdgen` from llm_rollout/api. Do not edit:\n"
    "# change the models and run `make crds`.\n"
)


def _yaml(document: dict[str, Any]) -> str:
    return _HEADER + yaml.dump(
        document, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True
    )


def crd_yaml() -> str:
    return _yaml(crd())


def eval_run_crd_yaml() -> str:
    return _yaml(eval_run_crd())


def all_crds_yaml() -> str:
    """Every CRD of the operator, as one multi-document YAML stream (kubectl apply -f -)."""
    return crd_yaml() + "---\n" + eval_run_crd_yaml()


# --- reference doc -------------------------------------------------------------------


def _type_text(node: dict[str, Any]) -> str:
    t = str(node.get("type", ""))
    if "enum" in node:
        return " \\| ".join(f"`{v}`" for v in node["enum"])
    if t == "array":
        return f"[]{_type_text(node['items'])}"
    if t == "object" and "additionalProperties" in node:
        return f"map[string]{_type_text(node['additionalProperties'])}"
    if node.get("format") == "date-time":
        return "time"
    return t


def _constraints(node: dict[str, Any]) -> list[str]:
    out = []
    for key, label in (
        ("minimum", ">="),
        ("maximum", "<="),
        ("minLength", "min length"),
        ("maxLength", "max length"),
        ("minItems", "min items"),
        ("maxItems", "max items"),
        ("pattern", "pattern"),
    ):
        if key in node:
            op = label
            if key == "minimum" and node.get("exclusiveMinimum"):
                op = ">"
            if key == "maximum" and node.get("exclusiveMaximum"):
                op = "<"
            value = f"`{node[key]}`" if key == "pattern" else node[key]
            out.append(f"{op} {value}")
    if node.get("type") == "array" and "pattern" in node.get("items", {}):
        out.append(f"items: pattern `{node['items']['pattern']}`")
    if node.get("x-kubernetes-preserve-unknown-fields"):
        out.append("free-form")
    if node.get("nullable"):
        out.append("optional")
    return out


def _objects(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every object with properties under `node`, depth first, with its path."""
    if "properties" in node:
        yield path, node
        for name, child in node["properties"].items():
            yield from _objects(child, f"{path}.{name}")
    elif node.get("type") == "array":
        yield from _objects(node["items"], f"{path}[]")


def _rules(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, str]]]:
    for rule in node.get("x-kubernetes-validations", []):
        yield path, rule
    for name, child in node.get("properties", {}).items():
        yield from _rules(child, f"{path}.{name}")
    if "items" in node:
        yield from _rules(node["items"], f"{path}[]")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n\n", "<br><br>").replace("\n", " ")


def docs_markdown() -> str:
    definition = crd()
    version = definition["spec"]["versions"][0]
    root = version["schema"]["openAPIV3Schema"]
    lines = [
        "# LLMDeployment reference",
        "",
        "<!-- Generated by `python -m llm_rollout.crdgen --docs` from llm_rollout/api. "
        "Do not edit. -->",
        "",
        f"`{GROUP}/{VERSION}`, kind `{KIND}`, plural `{PLURAL}`, short name "
        f"`{SHORT_NAMES[0]}`, namespaced, status subresource on.",
        "",
        "## Printer columns",
        "",
        "| Column | JSONPath | Shown |",
        "|---|---|---|",
    ]
    lines += _columns_and_fields(version, "##")
    lines += [
        "## Validation rules (CEL, checked at admission)",
        "",
        "| Where | Rule | Message |",
        "|---|---|---|",
    ]
    for path, rule in _rules(root["properties"]["spec"], "spec"):
        lines.append(f"| `{path}` | `{_cell(rule['rule'])}` | {_cell(rule['message'])} |")
    lines += [
        "",
        "## Built-in metrics",
        "",
        "Usable by name in any gate without defining them; a `spec.metrics` entry of the "
        "same name replaces one.",
        "",
        "| Name | Kind | Description |",
        "|---|---|---|",
    ]
    for name, preset in PRESETS.items():
        lines.append(f"| `{name}` | {preset.kind} | {_cell(preset.description)} |")
    for name, preset in PRESETS.items():
        lines += ["", f"### `{name}`", "", "```promql"]
        if preset.query:
            lines.append(preset.query)
        else:
            lines += [f"# success\n{preset.success}", f"# total\n{preset.total}"]
        if preset.samples:
            lines.append(f"# samples\n{preset.samples}")
        lines.append("```")
    actions = ", ".join(f"`{a.value}`" for a in ActionKind)
    lines += [
        "",
        "## Manual actions",
        "",
        f"Annotation `{ACTION_ANNOTATION}`: one of {actions}; optional "
        f"`{ACTION_ID_ANNOTATION}` makes each request unique. Pause and resume: "
        "`spec.paused`. See docs/architecture.md.",
        "",
    ]
    lines += _eval_run_markdown()
    return "\n".join(lines)


def _columns_and_fields(version: dict[str, Any], level: str) -> list[str]:
    """The printer-column table and a field table per object of spec and status."""
    root = version["schema"]["openAPIV3Schema"]
    lines = []
    for column in version["additionalPrinterColumns"]:
        shown = "`-o wide`" if column.get("priority") else "always"
        lines.append(f"| {column['name']} | `{column['jsonPath']}` | {shown} |")
    for top in ("spec", "status"):
        lines += ["", f"{level} {top}", ""]
        for path, node in _objects(root["properties"][top], top):
            lines += [f"{level}# `{path}`", ""]
            if path != top and node.get("description"):
                lines += [_clean_text(node["description"]).replace("\n\n", "\n\n"), ""]
            lines += ["| Field | Type | Default | Description |", "|---|---|---|---|"]
            required = set(node.get("required", []))
            for name, child in node["properties"].items():
                field = f"`{name}`" + (" (required)" if name in required else "")
                default = (
                    f"`{json.dumps(child['default'], separators=(',', ':'))}`"
                    if "default" in child
                    else ""
                )
                notes = _constraints(child)
                description = child.get("description", "")
                if notes:
                    description += f" ({'; '.join(notes)})"
                lines.append(
                    f"| {field} | {_cell(_type_text(child))} | {_cell(default)} "
                    f"| {_cell(description)} |"
                )
            lines.append("")
    return lines


def _eval_run_markdown() -> list[str]:
    version = eval_run_crd()["spec"]["versions"][0]
    lines = [
        "# LLMEvalRun reference",
        "",
        f"`{GROUP}/{VERSION}`, kind `{EVAL_RUN_KIND}`, plural `{EVAL_RUN_PLURAL}`, short name "
        "`llmeval`, namespaced, status subresource on. Created by the operator (owned by "
        "the LLMDeployment), one per eval suite, stage and rollout attempt; its status is "
        "written by the eval runner. See docs/evals.md.",
        "",
        "## Printer columns",
        "",
        "| Column | JSONPath | Shown |",
        "|---|---|---|",
    ]
    return lines + _columns_and_fields(version, "##")


# --- entry point ---------------------------------------------------------------------


def _check(path: Path, wanted: str) -> bool:
    current = path.read_text() if path.exists() else ""
    if current == wanted:
        return True
    diff = difflib.unified_diff(
        current.splitlines(keepends=True),
        wanted.splitlines(keepends=True),
        fromfile=f"{path} (committed)",
        tofile=f"{path} (generated)",
    )
    sys.stdout.writelines(diff)
    print(f"\n{path} is stale: run `python -m llm_rollout.crdgen` (make crds)", file=sys.stderr)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llm_rollout.crdgen", description=__doc__)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--docs", action="store_true", help="the reference doc, not the CRD")
    which.add_argument("--all", action="store_true", help="the CRD and the reference doc")
    parser.add_argument("--check", action="store_true", help="exit 1 with a diff if stale")
    parser.add_argument("--stdout", action="store_true", help="print instead of writing")
    args = parser.parse_args(argv)
    targets = []
    if not args.docs:
        targets.append((CRD_PATH, crd_yaml()))
        targets.append((EVAL_RUN_CRD_PATH, eval_run_crd_yaml()))
    if args.docs or args.all:
        targets.append((DOCS_PATH, docs_markdown()))
    ok = True
    for path, text in targets:
        if args.stdout:
            sys.stdout.write(text)
        elif args.check:
            ok = _check(path, text) and ok
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

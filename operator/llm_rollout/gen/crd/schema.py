"""pydantic JSON schema -> Kubernetes structural schema (see the package docstring)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

# Keywords a structural schema may carry (apiextensions.k8s.io/v1 JSONSchemaProps), in
# the order they are written: what a node is first, its children last.
_KEYWORDS_IN_ORDER = (
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
)
ALLOWED_KEYWORDS = frozenset(_KEYWORDS_IN_ORDER)
_KEY_ORDER = {k: i for i, k in enumerate(_KEYWORDS_IN_ORDER)}

_DROPPED = frozenset({"title", "examples"})


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

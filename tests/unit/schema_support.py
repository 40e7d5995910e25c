"""A small OpenAPI v3 validator and the API server's defaulting, for CRD tests."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """What the API server's defaulting does to `value`."""
    if schema["type"] == "object" and isinstance(value, dict):
        out = dict(value)
        for name, child in schema.get("properties", {}).items():
            if name not in out and "default" in child:
                out[name] = json.loads(json.dumps(child["default"]))
            if name in out:
                out[name] = apply_defaults(child, out[name])
        return out
    if schema["type"] == "array" and isinstance(value, list):
        return [apply_defaults(schema["items"], v) for v in value]
    return value


_TYPES = {
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "object": dict,
    "array": list,
}


def conforms(schema: dict[str, Any], value: Any, path: str = "") -> list[str]:
    """A small OpenAPI v3 validator: enough to catch a model/schema mismatch."""
    if value is None:
        return [] if schema.get("nullable") else [f"{path}: null"]
    t = schema["type"]
    if not isinstance(value, _TYPES[t]) or (t in ("integer", "number") and isinstance(value, bool)):
        return [f"{path}: {value!r} is not {t}"]
    errors = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} not in enum")
    if t == "string":
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{path}: pattern")
        if len(value) > schema.get("maxLength", 1 << 30):
            errors.append(f"{path}: too long")
        if schema.get("format") == "date-time":
            datetime.fromisoformat(value.replace("Z", "+00:00"))
    if t in ("integer", "number"):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{path}: below minimum")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{path}: above maximum")
    if t == "array":
        if not schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", 1 << 30):
            errors.append(f"{path}: item count")
        for i, item in enumerate(value):
            errors += conforms(schema["items"], item, f"{path}[{i}]")
    if t == "object" and not schema.get("x-kubernetes-preserve-unknown-fields"):
        props = schema.get("properties")
        for name in schema.get("required", []):
            if name not in value:
                errors.append(f"{path}.{name}: required")
        for name, item in value.items():
            if props is not None:
                if name not in props:
                    errors.append(f"{path}.{name}: unknown field (would be pruned)")
                else:
                    errors += conforms(props[name], item, f"{path}.{name}")
            elif isinstance(schema.get("additionalProperties"), dict):
                errors += conforms(schema["additionalProperties"], item, f"{path}.{name}")
    return errors

"""What every part of the spec shares: limits, name and duration types, CEL helpers."""

from __future__ import annotations

from collections import Counter
from typing import Annotated

from pydantic import Field
from pydantic.config import JsonDict, JsonValue

from llm_rollout.api.durations import DURATION_MAX_LENGTH, DURATION_PATTERN
from llm_rollout.metrics.presets import PRESET_NAMES

MAX_COHORTS = 16


MAX_STAGES = 10


MAX_STEPS = 20


MAX_GATES = 10


MAX_COMPONENTS = 8


MAX_METRICS = 32


MAX_QUERY_LENGTH = 4096


MAX_LIST = 32  # hostnames, gateways, ...


MAX_CHECKS = 32


MAX_EVALS = 8


MAX_JUDGES = 8


MAX_RUBRIC_LENGTH = 8192


RESERVED_CRITERIA = ("composite",)


NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


Name = Annotated[str, Field(min_length=1, max_length=63, pattern=NAME_PATTERN)]


Duration = Annotated[
    str, Field(max_length=DURATION_MAX_LENGTH, pattern=DURATION_PATTERN, examples=["30s", "1h30m"])
]


Percent = Annotated[int, Field(ge=1, le=100)]


ShortText = Annotated[str, Field(max_length=253)]


_PRESETS_CEL = "[" + ", ".join(f"'{p}'" for p in PRESET_NAMES) + "]"


def _cel(rule: str, message: str, message_expression: str | None = None) -> JsonDict:
    """A CEL rule; `message_expression` names the item at fault (the API server falls
    back to `message` should the expression itself fail)."""
    if message_expression is None:
        return {"rule": rule, "message": message}
    return {"rule": rule, "message": message, "messageExpression": message_expression}


def _validations(*rules: JsonDict) -> JsonDict:
    """json_schema_extra carrying CEL rules (gen.crd keeps them in the CRD)."""
    items: list[JsonValue] = [*rules]
    return {"x-kubernetes-validations": items}


def _unique_names_cel(what: str) -> JsonDict:
    return _cel("self.all(x, self.exists_one(y, y.name == x.name))", f"{what} names must be unique")


def _listed(names: list[str]) -> str:
    """A list of names as CEL's format() prints it, so both checks say the same."""
    return "[" + ", ".join(f'"{n}"' for n in names) + "]"


def _duplicates(names: list[str]) -> list[str]:
    return sorted(n for n, count in Counter(names).items() if count > 1)


def _require_unique(names: list[str], what: str) -> None:
    if dup := _duplicates(names):
        raise ValueError(f"{what} names must be unique: {', '.join(dup)}")

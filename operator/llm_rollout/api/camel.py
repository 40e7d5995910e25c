"""Base of every wire model: snake_case in Python, camelCase on the wire.

Low-level modules (the routing table, heuristic checks) import it without the spec
models: `llm_rollout.api` loads its names lazily.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class CamelModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=False
    )

    @classmethod
    def validate_known(cls, raw: Mapping[str, Any] | None) -> Self:
        """Validate the keys that are fields (wire names); others are ignored (e.g. what
        other writers of a shared status put there)."""
        if not raw:
            return cls()
        known = {f.alias or name for name, f in cls.model_fields.items()}
        return cls.model_validate({k: v for k, v in raw.items() if k in known})

"""Base of every wire model: snake_case in Python, camelCase on the wire.

Kept outside the `api` package so low-level modules (routing tables) can use it
without importing the whole API.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class CamelModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=False
    )

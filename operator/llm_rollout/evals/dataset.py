"""Eval datasets: JSON Lines, one case per line (pure).

    {"id": "invoice-1", "messages": [{"role": "user", "content": "Translate: ..."}],
     "reference": "optional reference answer", "tags": ["billing"]}

`input` (a string) may stand for a single user message instead of `messages`.
Blank lines are skipped; other fields are ignored. Any other problem — a line that
is not JSON, a missing or mistyped field, a repeated id — is a `DatasetError`
naming the line: the run fails and nothing is exported for it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

MAX_CASES = 100_000


class DatasetError(ValueError):
    """A dataset that cannot be used, with the 1-based line number where known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        self.line = line
        self.detail = message
        super().__init__(f"dataset line {line}: {message}" if line else f"dataset: {message}")


@dataclass(frozen=True)
class Case:
    id: str
    messages: tuple[dict[str, str], ...]
    reference: str | None = None
    tags: tuple[str, ...] = ()
    line: int = 0

    @property
    def input_text(self) -> str:
        """What the user said (every user message), for checks that compare with the input."""
        return "\n".join(m["content"] for m in self.messages if m["role"] == "user")


def _messages(value: Any, line: int) -> tuple[dict[str, str], ...]:
    if not isinstance(value, list) or not value:
        raise DatasetError("'messages' must be a non-empty list", line)
    out = []
    for i, message in enumerate(value):
        if not isinstance(message, dict):
            raise DatasetError(f"messages[{i}] must be an object with role and content", line)
        role, content = message.get("role"), message.get("content")
        if not isinstance(role, str) or not role:
            raise DatasetError(f"messages[{i}] lacks a 'role'", line)
        if not isinstance(content, str):
            raise DatasetError(f"messages[{i}] lacks a string 'content'", line)
        out.append({"role": role, "content": content})
    return tuple(out)


def parse_case(text: str, line: int) -> Case:
    try:
        data = json.loads(text)
    except ValueError as err:
        raise DatasetError(f"not valid JSON: {err}", line) from None
    if not isinstance(data, dict):
        raise DatasetError("a case must be a JSON object", line)
    case_id = data.get("id")
    if isinstance(case_id, int) and not isinstance(case_id, bool):
        case_id = str(case_id)
    if not isinstance(case_id, str) or not case_id.strip():
        raise DatasetError("missing required field 'id' (a non-empty string)", line)
    if "messages" in data:
        messages = _messages(data["messages"], line)
    elif isinstance(data.get("input"), str):
        messages = ({"role": "user", "content": data["input"]},)
    else:
        raise DatasetError("missing required field 'messages' (or an 'input' string)", line)
    reference = data.get("reference")
    if reference is not None and not isinstance(reference, str):
        raise DatasetError("'reference' must be a string", line)
    tags = data.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise DatasetError("'tags' must be a list of strings", line)
    return Case(case_id, messages, reference, tuple(tags), line)


def parse_dataset(text: str) -> list[Case]:
    """Every case of a JSON Lines text; raises DatasetError on the first bad line."""
    cases: list[Case] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        case = parse_case(raw, number)
        if case.id in seen:
            raise DatasetError(
                f"duplicate case id {case.id!r} (first on line {seen[case.id]})", number
            )
        seen[case.id] = number
        cases.append(case)
        if len(cases) > MAX_CASES:
            raise DatasetError(f"more than {MAX_CASES} cases", number)
    if not cases:
        raise DatasetError("no cases")
    return cases


def sample_cases(cases: list[Case], size: int, *, seed: str) -> list[Case]:
    """A deterministic subset of `size` cases (0 or more than there are: all), in
    dataset order. The same dataset and seed give the same subset every run, so
    releases are compared on the same cases."""
    if size <= 0 or size >= len(cases):
        return list(cases)

    def rank(case: Case) -> str:
        return hashlib.sha256(f"{seed}/{case.id}".encode()).hexdigest()

    chosen = {c.id for c in sorted(cases, key=rank)[:size]}
    return [c for c in cases if c.id in chosen]

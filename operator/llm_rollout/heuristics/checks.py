"""Cheap, deterministic checks of one LLM answer.

Shared by the router (online, on live answers) and the eval runner (offline, on
golden-set answers). Each check is a small pydantic model with a `type`
discriminator and a `name`; `run_checks` is pure.

Regular expressions come from the LLMDeployment author (a trusted party), but
they run on model output: keep them linear (no nested quantifiers). The router
bounds the text it checks (see `MAX_CHECKED_CHARS`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import Field, TypeAdapter, field_validator, model_validator

from llm_rollout.api.camel import CamelModel

#: Text beyond this many characters is not checked (bounds CPU per answer).
MAX_CHECKED_CHARS = 256 * 1024

CHECK_NAME_PATTERN = r"^[a-z0-9]([-_a-z0-9]{0,61}[a-z0-9])?$"


class _Check(CamelModel):
    name: str = Field(
        pattern=CHECK_NAME_PATTERN,
        description="Check name (the `check` label of llm_heuristic_checks_total).",
    )


class _PatternCheck(_Check):
    pattern: str = Field(min_length=1, max_length=1024, description="Python regular expression.")
    ignore_case: bool = Field(default=False, description="Match case-insensitively.")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from exc
        return value

    def search(self, text: str) -> re.Match[str] | None:
        return _compile(self.pattern, re.IGNORECASE if self.ignore_case else 0).search(text)


class RegexCheck(_PatternCheck):
    """Passes when the output matches `pattern` (anywhere)."""

    type: Literal["regex"] = "regex"


class NotRegexCheck(_PatternCheck):
    """Passes when the output does not match `pattern` anywhere."""

    type: Literal["notRegex"] = "notRegex"


class MaxLengthCheck(_Check):
    """Passes when the output has at most `max` characters."""

    type: Literal["maxLength"] = "maxLength"
    max: int = Field(ge=0, description="Maximum number of characters.")


class ValidJsonCheck(_Check):
    """Passes when the output (stripped, fenced ```json blocks unwrapped) parses as JSON."""

    type: Literal["validJson"] = "validJson"


class RequiredTermsCheck(_Check):
    """Passes when every term (e.g. of a glossary) appears in the output."""

    type: Literal["requiredTerms"] = "requiredTerms"
    terms: list[str] = Field(min_length=1, max_length=200, description="Terms that must appear.")
    case_sensitive: bool = Field(default=False, description="Compare terms case-sensitively.")


class PreservedNamesCheck(_Check):
    """Passes when every name that appears in the input also appears verbatim in the output.

    For brand and product names that must not be translated or re-spelled. The
    presence test on the input is case-insensitive; the output test is exact.
    """

    type: Literal["preservedNames"] = "preservedNames"
    names: list[str] = Field(min_length=1, max_length=200, description="Names to preserve.")


class GlossaryCheck(_Check):
    """Passes when, for every glossary entry whose source term appears in the input,
    its required translation appears in the output.

    For translation and localisation: `{invoice: Rechnung}` means an input that
    mentions "invoice" must be answered with "Rechnung". Source terms match whole
    words of the input, case-insensitively; targets match anywhere in the output
    (so German compounds count), case-insensitively unless `caseSensitive`.
    """

    type: Literal["glossary"] = "glossary"
    glossary: dict[str, str] = Field(
        min_length=1, max_length=200, description="Source term -> required translation."
    )
    case_sensitive: bool = Field(default=False, description="Compare targets case-sensitively.")


HeuristicCheck = Annotated[
    RegexCheck
    | NotRegexCheck
    | MaxLengthCheck
    | ValidJsonCheck
    | RequiredTermsCheck
    | PreservedNamesCheck
    | GlossaryCheck,
    Field(discriminator="type"),
]
"""One check, discriminated by `type`."""

CHECK_ADAPTER: TypeAdapter[HeuristicCheck] = TypeAdapter(HeuristicCheck)

CheckType = Literal[
    "regex", "notRegex", "maxLength", "validJson", "requiredTerms", "preservedNames", "glossary"
]
_FIELDS: dict[str, tuple[str, ...]] = {
    "regex": ("pattern", "ignore_case"),
    "notRegex": ("pattern", "ignore_case"),
    "maxLength": ("max",),
    "validJson": (),
    "requiredTerms": ("terms", "case_sensitive"),
    "preservedNames": ("names",),
    "glossary": ("glossary", "case_sensitive"),
}


class CheckSpec(CamelModel):
    """One check as written in a spec: a flat object (CRD-friendly, no oneOf).

    Fields that do not belong to `type` are ignored when they hold their default
    (so API-server defaulting does no harm); `to_check()` gives the typed check.
    """

    name: str = Field(pattern=CHECK_NAME_PATTERN, max_length=63, description="Check name.")
    type: CheckType = Field(description="What the check tests.")
    pattern: str | None = Field(
        default=None, max_length=1024, description="regex, notRegex: Python regular expression."
    )
    ignore_case: bool = Field(default=False, description="regex, notRegex: ignore case.")
    max: int | None = Field(default=None, ge=0, description="maxLength: maximum characters.")
    terms: list[str] | None = Field(
        default=None, max_length=200, description="requiredTerms: terms that must appear."
    )
    case_sensitive: bool = Field(
        default=False, description="requiredTerms, glossary: compare case-sensitively."
    )
    names: list[str] | None = Field(
        default=None, max_length=200, description="preservedNames: names to keep verbatim."
    )
    glossary: dict[str, str] | None = Field(
        default=None,
        max_length=200,
        description="glossary: source term -> the translation the output must use "
        "whenever the input contains the term.",
    )

    @model_validator(mode="after")
    def _typed(self) -> CheckSpec:
        self.to_check()
        return self

    def to_check(self) -> HeuristicCheck:
        data: dict[str, object] = {"name": self.name, "type": self.type}
        data |= {f: getattr(self, f) for f in _FIELDS[self.type] if getattr(self, f) is not None}
        stray = [
            f
            for f in CheckSpec.model_fields
            if f not in ("name", "type", *_FIELDS[self.type])
            and getattr(self, f) != CheckSpec.model_fields[f].default
        ]
        if stray:
            raise ValueError(f"check {self.name}: {', '.join(stray)} do not apply to {self.type}")
        return CHECK_ADAPTER.validate_python(data)


_TYPED = (
    RegexCheck,
    NotRegexCheck,
    MaxLengthCheck,
    ValidJsonCheck,
    RequiredTermsCheck,
    PreservedNamesCheck,
    GlossaryCheck,
)


def _one(item: object) -> HeuristicCheck:
    if isinstance(item, _TYPED):
        return item
    return (item if isinstance(item, CheckSpec) else CheckSpec.model_validate(item)).to_check()


def parse_checks(raw: object) -> list[HeuristicCheck]:
    """Validate a list of check specs (camelCase, as in the LLMDeployment spec).

    Items may be typed checks, CheckSpec objects or plain dicts.
    """
    items = raw if raw is not None else []
    if not isinstance(items, list):
        raise ValueError("checks must be a list")
    checks = [_one(i) for i in items]
    names = [c.name for c in checks]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"duplicate check names: {', '.join(dupes)}")
    return checks


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    passed: bool
    detail: str = ""


@lru_cache(maxsize=512)
def _compile(pattern: str, flags: int) -> re.Pattern[str]:
    return re.compile(pattern, flags)


_FENCE = re.compile(r"^```[a-zA-Z0-9_-]*\s*\n(.*?)\n?```\s*$", re.DOTALL)


def _json_error(output: str) -> str | None:
    text = output.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    try:
        json.loads(text)
    except ValueError as exc:
        return f"not valid JSON: {exc}"
    return None


def _clip(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(repr(i) for i in items[:limit])
    return shown + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


def run_check(check: HeuristicCheck, *, output: str, input_text: str = "") -> CheckResult:
    """Run one check on one answer."""
    output = output[:MAX_CHECKED_CHARS]
    if isinstance(check, RegexCheck):
        ok = check.search(output) is not None
        return CheckResult(check.name, ok, "" if ok else f"no match for /{check.pattern}/")
    if isinstance(check, NotRegexCheck):
        m = check.search(output)
        return CheckResult(check.name, m is None, "" if m is None else f"matched {m.group(0)!r}")
    if isinstance(check, MaxLengthCheck):
        ok = len(output) <= check.max
        return CheckResult(check.name, ok, "" if ok else f"{len(output)} > {check.max} chars")
    if isinstance(check, ValidJsonCheck):
        err = _json_error(output)
        return CheckResult(check.name, err is None, err or "")
    if isinstance(check, RequiredTermsCheck):
        hay = output if check.case_sensitive else output.lower()
        missing = [t for t in check.terms if (t if check.case_sensitive else t.lower()) not in hay]
        return CheckResult(check.name, not missing, f"missing {_clip(missing)}" if missing else "")
    if isinstance(check, GlossaryCheck):
        return _glossary(check, output=output, input_text=input_text[:MAX_CHECKED_CHARS])
    # PreservedNamesCheck
    source = input_text[:MAX_CHECKED_CHARS].lower()
    lost = [n for n in check.names if n and n.lower() in source and n not in output]
    return CheckResult(check.name, not lost, f"not preserved {_clip(lost)}" if lost else "")


def _glossary(check: GlossaryCheck, *, output: str, input_text: str) -> CheckResult:
    hay = output if check.case_sensitive else output.lower()
    missing = [
        f"{source} -> {target}"
        for source, target in check.glossary.items()
        if source.strip()
        and _compile(rf"(?<!\w){re.escape(source.strip())}(?!\w)", re.IGNORECASE).search(input_text)
        and (target if check.case_sensitive else target.lower()) not in hay
    ]
    return CheckResult(check.name, not missing, f"missing {_clip(missing)}" if missing else "")


def run_checks(
    checks: list[HeuristicCheck], *, output: str, input_text: str = ""
) -> list[CheckResult]:
    """Run every check on one answer; pure, never raises on any text."""
    return [run_check(c, output=output, input_text=input_text) for c in checks]

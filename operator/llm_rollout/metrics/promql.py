"""PromQL templating: `{{ variable }}` substitution with label-value escaping.

Variables (all others are an error):

- `namespace`, `name`: namespace and name of the LLMDeployment;
- `release`: id of the release measured (the candidate; the stable in a Compare
  gate's stable queries); `stable_release`: id of the stable release;
- `cohorts`: regex alternation of the exposed cohorts, each regex-escaped (`=~`);
- `suite`, `criterion`: regex of the gate's eval suite / criterion (`.*` if unset);
- `window`: a PromQL duration, for range selectors: in count queries (ratio metrics)
  the time since the step's evidence began, in value queries the analysis window;
- `start`: the Unix time the step's evidence began, for the `@` modifier
  (`sum(x @ {{ start }})`: the counters' values when the step began).

Every variable but `window` and `start` is substituted escaped for a PromQL
double-quoted string
(backslash, double quote, newline), so a value can never end the string it sits in;
`validate_template` also insists that such variables sit inside double quotes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

STRING_VARIABLES = frozenset(
    {"namespace", "name", "release", "stable_release", "cohorts", "suite", "criterion"}
)
CODE_VARIABLES = frozenset({"window", "start"})  # used outside strings
TEMPLATE_VARIABLES = STRING_VARIABLES | CODE_VARIABLES

_VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_RE2_SPECIAL = frozenset("\\.+*?()|[]{}^$")
_CLOSERS = {")": "(", "]": "[", "}": "{"}


class TemplateError(ValueError):
    """A template that cannot be rendered (unknown variable)."""


def escape_label_value(value: str) -> str:
    """`value` escaped for the inside of a PromQL double-quoted string."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")


def escape_regex(value: str) -> str:
    """`value` as an RE2 regex matching exactly itself (Prometheus anchors regexes)."""
    return "".join("\\" + c if c in _RE2_SPECIAL else c for c in value)


def regex_alternation(values: Iterable[str]) -> str:
    """Regex matching exactly one of `values` (each escaped)."""
    return "|".join(escape_regex(v) for v in values)


@dataclass(frozen=True)
class TemplateValues:
    """Raw (unescaped) values of the template variables."""

    namespace: str
    name: str
    release: str
    stable_release: str
    cohorts: tuple[str, ...]
    window: str
    suite: str | None = None
    criterion: str | None = None
    start: str = "0"

    def substitutions(self) -> dict[str, str]:
        """Variable -> text to insert, already escaped."""
        regexes = {
            "cohorts": regex_alternation(self.cohorts),
            "suite": escape_regex(self.suite) if self.suite else ".*",
            "criterion": escape_regex(self.criterion) if self.criterion else ".*",
        }
        plain = {
            "namespace": self.namespace,
            "name": self.name,
            "release": self.release,
            "stable_release": self.stable_release,
        }
        subs = {k: escape_label_value(v) for k, v in {**plain, **regexes}.items()}
        subs["window"] = self.window
        subs["start"] = self.start
        return subs


def template_variables(template: str) -> list[str]:
    """Variables used by a template, in order of appearance (with repeats)."""
    return _VARIABLE.findall(template)


def render(template: str, values: TemplateValues | Mapping[str, str]) -> str:
    """Substitute every `{{ variable }}`; TemplateError on unknown ones.

    A Mapping is taken as already-escaped substitutions (what
    `TemplateValues.substitutions()` returns).
    """
    subs = values.substitutions() if isinstance(values, TemplateValues) else dict(values)

    def one(match: re.Match[str]) -> str:
        var = match.group(1)
        if var not in TEMPLATE_VARIABLES or var not in subs:
            raise TemplateError(f"unknown template variable {{{{ {var} }}}}")
        return subs[var]

    return _VARIABLE.sub(one, template)


@dataclass(frozen=True)
class _Scan:
    problems: list[str]
    # (variable, quote it sits in: '"', "'", "`" or "" outside strings)
    placements: list[tuple[str, str]]
    # decoded contents of double-quoted strings, in order
    strings: list[str]
    has_code: bool


def _scan(text: str, *, template: bool) -> _Scan:
    """A small lexer: strings, comments, bracket nesting and (in templates) variables."""
    problems: list[str] = []
    placements: list[tuple[str, str]] = []
    strings: list[str] = []
    stack: list[str] = []
    has_code = False
    i, n = 0, len(text)
    quote = ""
    current: list[str] = []
    while i < n:
        if template and (m := _VARIABLE.match(text, i)):
            placements.append((m.group(1), quote))
            has_code = has_code or not quote
            current.append(m.group(0))
            i = m.end()
            continue
        c = text[i]
        if quote:
            if c == "\\" and quote != "`" and i + 1 < n:
                current.append(_unescape(text[i + 1]))
                i += 2
                continue
            if c == quote:
                if quote == '"':
                    strings.append("".join(current))
                quote = ""
            elif c == "\n" and quote != "`":
                problems.append("unterminated string literal")
                quote = ""
            else:
                current.append(c)
            i += 1
            continue
        if c in "\"'`":
            quote, current = c, []
            has_code = True
        elif c == "#":  # comment to end of line
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        elif c in "([{":
            stack.append(c)
            has_code = True
        elif c in ")]}":
            if not stack or stack[-1] != _CLOSERS[c]:
                problems.append(f"unbalanced {c!r}")
                return _Scan(problems, placements, strings, True)
            stack.pop()
        elif not c.isspace():
            has_code = True
        i += 1
    if quote:
        problems.append("unterminated string literal")
    if stack:
        problems.append(f"unclosed {stack[-1]!r}")
    return _Scan(problems, placements, strings, has_code)


def _unescape(c: str) -> str:
    return {"n": "\n", "r": "\r", "t": "\t"}.get(c, c)


def syntax_problems(query: str) -> list[str]:
    """Obvious syntax errors of a rendered query (empty, unbalanced, unterminated)."""
    scan = _scan(query, template=False)
    if not scan.has_code:
        return ["empty query"]
    return scan.problems


def string_literals(query: str) -> list[str]:
    """Decoded contents of the double-quoted strings of a rendered query."""
    return _scan(query, template=False).strings


def validate_template(template: str) -> list[str]:
    """What is wrong with a template: unknown or misplaced variables, and the
    syntax problems of its rendering with sample values."""
    problems: list[str] = []
    scan = _scan(template, template=True)
    for var, quote in scan.placements:
        if var not in TEMPLATE_VARIABLES:
            known = ", ".join(sorted(TEMPLATE_VARIABLES))
            problems.append(f"unknown template variable {{{{ {var} }}}} (known: {known})")
        elif var in STRING_VARIABLES and quote != '"':
            problems.append(
                f"{{{{ {var} }}}} must be used inside a double-quoted label value, "
                f'e.g. label="{{{{ {var} }}}}"'
            )
        elif var == "window" and quote:
            problems.append("{{ window }} must be used outside strings, e.g. [{{ window }}]")
        elif var == "start" and quote:
            problems.append("{{ start }} must be used outside strings, e.g. x @ {{ start }}")
    if "{{" in _VARIABLE.sub("", template):
        problems.append("malformed template variable: '{{' without a matching '{{ name }}'")
    if problems:
        return problems
    sample = TemplateValues(
        namespace="ns",
        name="name",
        release="r",
        stable_release="s",
        cohorts=("c",),
        window="5m",
        start="1700000000",
    )
    return syntax_problems(render(template, sample))

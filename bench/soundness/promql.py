"""A parser for the subset of PromQL the engine plans; anything else is UnsupportedQuery.

Understood: metric selectors with `=`, `!=`, `=~`, `!~` matchers (double-quoted strings,
escaped like llm_rollout.metrics.promql), range selectors `[1h2m3s]`, the `@ <unix time>`
modifier, `sum(...)` (no by/without), `increase`, `resets`, `vector`, number literals, and
the binary operators `or`, `and`, `unless`, comparisons (filtering, no `bool`), `+ - * /`,
with `on(...)` / `ignoring(...)` and PromQL's precedence. Not understood (raise): offset,
subqueries, other functions and aggregations, group_left/right, unary minus.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache


class UnsupportedQuery(ValueError):
    """A query outside the shapes this simulator answers."""

    def __init__(self, query: str, why: str) -> None:
        super().__init__(f"promsim cannot answer {query!r}: {why}")
        self.query = query


# --- durations ---------------------------------------------------------------------------

_UNIT_MS = {
    "y": 365 * 86_400_000,
    "w": 7 * 86_400_000,
    "d": 86_400_000,
    "h": 3_600_000,
    "m": 60_000,
    "s": 1000,
    "ms": 1,
}
_DURATION_PART = re.compile(r"([0-9]+)(ms|y|w|d|h|m|s)")
_UNIT_ORDER = ["y", "w", "d", "h", "m", "s", "ms"]


def parse_duration_ms(text: str) -> int:
    """A PromQL duration in milliseconds; units in descending order, each at most once."""
    pos, total, last = 0, 0, -1
    while pos < len(text):
        m = _DURATION_PART.match(text, pos)
        if m is None:
            raise ValueError(f"not a PromQL duration: {text!r}")
        rank = _UNIT_ORDER.index(m.group(2))
        if rank <= last:
            raise ValueError(f"not a PromQL duration (unit order): {text!r}")
        last, pos = rank, m.end()
        total += int(m.group(1)) * _UNIT_MS[m.group(2)]
    if pos == 0:
        raise ValueError(f"not a PromQL duration: {text!r}")
    return total


# --- the syntax tree -----------------------------------------------------------------------


@dataclass(frozen=True)
class Matcher:
    label: str
    op: str  # =, !=, =~, !~
    value: str  # decoded

    def matches(self, labels: Mapping[str, str]) -> bool:
        got = labels.get(self.label, "")
        if self.op == "=":
            return got == self.value
        if self.op == "!=":
            return got != self.value
        hit = regex(self.value).fullmatch(got) is not None
        return hit if self.op == "=~" else not hit


@lru_cache(maxsize=1024)
def regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.DOTALL)  # RE2 as Prometheus uses it: `.` matches \n


@dataclass(frozen=True)
class Selector:
    name: str
    matchers: tuple[Matcher, ...]
    range_ms: int | None = None  # a range selector
    at: float | None = None  # the @ modifier, Unix seconds


@dataclass(frozen=True)
class Number:
    value: float


@dataclass(frozen=True)
class Call:
    func: str  # increase, resets, vector
    arg: Node


@dataclass(frozen=True)
class Sum:
    arg: Node


@dataclass(frozen=True)
class Binary:
    op: str
    lhs: Node
    rhs: Node
    on: tuple[str, ...] | None = None  # on(labels)
    ignoring: tuple[str, ...] | None = None


Node = Selector | Number | Call | Sum | Binary

# Lowest first (PromQL: or < and unless < comparisons < + - < * / %).
PRECEDENCE = {
    "or": 1,
    "and": 2,
    "unless": 2,
    "==": 3,
    "!=": 3,
    ">": 3,
    "<": 3,
    ">=": 3,
    "<=": 3,
    "+": 4,
    "-": 4,
    "*": 5,
    "/": 5,
    "%": 5,
}
SET_OPS = frozenset({"or", "and", "unless"})
COMPARISONS = frozenset({"==", "!=", ">", "<", ">=", "<="})
FUNCTIONS = frozenset({"increase", "resets", "vector"})

# --- lexer and parser -------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    \s*(?:
      (?P<string>"(?:[^"\\\n]|\\.)*")
    | (?P<braces>\{(?:[^{}"]|"(?:[^"\\\n]|\\.)*")*\})
    | (?P<duration>\[[^\]]*\])
    | (?P<number>[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)
    | (?P<op>==|!=|>=|<=|=~|!~|[=<>+\-*/%^@])
    | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
    | (?P<punct>[(){},])
    )""",
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"', "'": "'"}


class _Parser:
    def __init__(self, query: str) -> None:
        self.query = query
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        while query[pos:].strip():
            m = _TOKEN.match(query, pos)
            if m is None or m.lastgroup is None:
                raise self.fail(f"unexpected text at {query[pos : pos + 20]!r}")
            self.tokens.append((m.lastgroup, m.group(m.lastgroup)))
            pos = m.end()
        self.pos = 0

    def fail(self, why: str) -> UnsupportedQuery:
        return UnsupportedQuery(self.query, why)

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else ("end", "")

    def take(self, kind: str, text: str | None = None) -> str:
        tok = self.peek()
        if tok[0] != kind or (text is not None and tok[1] != text):
            raise self.fail(f"expected {text or kind!r}, got {tok[1] or 'the end'!r}")
        self.pos += 1
        return tok[1]

    def labels(self) -> tuple[str, ...]:
        self.take("punct", "(")
        out: list[str] = []
        while self.peek() != ("punct", ")"):
            out.append(self.take("ident"))
            if self.peek() == ("punct", ","):
                self.pos += 1
        self.take("punct", ")")
        return tuple(out)

    def parse(self) -> Node:
        node = self.expr(1)
        if self.peek()[0] != "end":
            raise self.fail(f"unexpected {self.peek()[1]!r}")
        return node

    def binary_op(self) -> str | None:
        kind, text = self.peek()
        if (kind == "op" or (kind == "ident" and text in SET_OPS)) and text in PRECEDENCE:
            return text
        return None

    def expr(self, min_prec: int) -> Node:
        lhs = self.primary()
        while (op := self.binary_op()) is not None and PRECEDENCE[op] >= min_prec:
            self.pos += 1
            if self.peek() == ("ident", "bool"):
                raise self.fail("the bool modifier")
            on = ignoring = None
            if self.peek() == ("ident", "on"):
                self.pos += 1
                on = self.labels()
            elif self.peek() == ("ident", "ignoring"):
                self.pos += 1
                ignoring = self.labels()
            if self.peek()[1] in ("group_left", "group_right"):
                raise self.fail(self.peek()[1])
            rhs = self.expr(PRECEDENCE[op] + 1)  # all left-associative (no ^ here)
            lhs = Binary(op, lhs, rhs, on, ignoring)
        return lhs

    def primary(self) -> Node:
        kind, text = self.peek()
        if kind == "punct" and text == "(":
            self.pos += 1
            node = self.expr(1)
            self.take("punct", ")")
            return self.at_modifier(node)
        if kind == "number":
            self.pos += 1
            return Number(float(text))
        if kind != "ident":
            raise self.fail(f"unexpected {text or 'end'!r}")
        self.pos += 1
        if text == "sum":
            if self.peek()[1] in ("by", "without"):
                raise self.fail(f"sum {self.peek()[1]} (...)")
            self.take("punct", "(")
            node = self.expr(1)
            self.take("punct", ")")
            return Sum(node)
        if self.peek() == ("punct", "("):
            if text not in FUNCTIONS:
                raise self.fail(f"function or aggregation {text}()")
            self.pos += 1
            arg = self.expr(1)
            self.take("punct", ")")
            return Call(text, arg)
        return self.selector(text)

    def selector(self, name: str) -> Node:
        matchers: tuple[Matcher, ...] = ()
        if self.peek()[0] == "braces":
            try:
                matchers = _matchers(self.take("braces"))
            except ValueError as err:
                raise self.fail(str(err)) from None
        range_ms = None
        if self.peek()[0] == "duration":
            body = self.take("duration")[1:-1]
            try:
                range_ms = parse_duration_ms(body)
            except ValueError:
                raise self.fail(
                    f"range [{body}] (subqueries and fractions are not understood)"
                ) from None
        return self.at_modifier(Selector(name, tuple(matchers), range_ms))

    def at_modifier(self, node: Node) -> Node:
        if self.peek() == ("ident", "offset"):
            raise self.fail("the offset modifier")
        if self.peek() != ("op", "@"):
            return node
        self.pos += 1
        if not isinstance(node, Selector):
            raise self.fail("@ on anything but a selector")
        return Selector(node.name, node.matchers, node.range_ms, float(self.take("number")))


_MATCHER = re.compile(
    r"""\s*(?P<label>[a-zA-Z_][a-zA-Z0-9_]*)\s*(?P<op>=~|!~|!=|=)\s*
    (?P<value>"(?:[^"\\\n]|\\.)*")\s*(?P<sep>,|$)""",
    re.VERBOSE,
)


@lru_cache(maxsize=4096)
def _matchers(braces: str) -> tuple[Matcher, ...]:
    """The matchers of a `{...}` block (cached: the same blocks recur at every look);
    ValueError when malformed."""
    body, pos, out = braces[1:-1], 0, []
    while body[pos:].strip():
        m = _MATCHER.match(body, pos)
        if m is None:
            raise ValueError(f"bad matchers at {body[pos : pos + 20]!r}")
        value = _unquote(m.group("value"))
        if m.group("op") in ("=~", "!~"):
            try:
                regex(value)
            except re.error as err:
                raise ValueError(f"bad regex {value!r}: {err}") from None
        out.append(Matcher(m.group("label"), m.group("op"), value))
        pos = m.end()
    return tuple(out)


def _unquote(literal: str) -> str:
    out, i, body = [], 0, literal[1:-1]
    while i < len(body):
        if body[i] == "\\":
            if body[i + 1] not in _ESCAPES:
                raise ValueError(f"escape \\{body[i + 1]} in a string")
            out.append(_ESCAPES[body[i + 1]])
            i += 2
        else:
            out.append(body[i])
            i += 1
    return "".join(out)


@lru_cache(maxsize=4096)
def parse(query: str) -> Node:
    """The query's syntax tree; UnsupportedQuery outside the supported subset."""
    return _Parser(query).parse()

"""A simulated Prometheus: scraped counter series, and instant queries over them.

Queries are parsed by bench.soundness.promql (the subset the engine plans; anything else
raises UnsupportedQuery naming the query, so the benchmark fails loudly instead of
guessing) and evaluated with Prometheus's semantics:

- `increase()` is extrapolatedRate (promql/functions.go) for float samples: samples with
  start <= t <= end (Prometheus 2.x; 3.x excludes the start, `left_open`), counter resets,
  extrapolation to a boundary within 1.1x the average sample spacing else by half a
  spacing, then the counter's zero point as a limit (the order since
  prometheus/prometheus#13725, 2.51+). Fewer than two samples: no value for that series.
- `resets()`: drops between consecutive samples of the range (a value for any series with
  a sample in it).
- an instant selector takes each series' latest sample within the 5m lookback (none of
  these series goes stale); `@ T` evaluates it at Unix time T (`epoch` maps Unix time to
  the simulation's seconds).
- `sum` of nothing is nothing; vector/vector operators match on labels without
  __name__ (or on(...) / ignoring(...)), one to one; set operators as in PromQL;
  comparisons filter; x / 0 is +-Inf and 0 / 0 NaN.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from bench.soundness.promql import (
    COMPARISONS,
    SET_OPS,
    Binary,
    Call,
    Matcher,
    Node,
    Number,
    Selector,
    Sum,
    UnsupportedQuery,
    parse,
)

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
LOOKBACK_MS = 300_000


@dataclass(frozen=True)
class Empty:
    """An instant query with no series in its result."""

    query: str


@dataclass(frozen=True)
class Multiple:
    """An instant query with several series in its result."""

    query: str
    count: int


Answer = float | Empty | Multiple
Labels = dict[str, str]
Vector = list[tuple[Labels, float]]


# --- series and increase() ---------------------------------------------------------------


@dataclass
class Series:
    """One scraped counter series: sample timestamps (ms, ascending) and values."""

    labels: Mapping[str, str]  # including __name__
    times: IntArray
    values: FloatArray
    # Running sum of the values before each reset, so a range's reset correction is a
    # difference of two entries instead of a scan.
    _resets: FloatArray = field(init=False, repr=False)
    _reset_count: IntArray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.times) != len(self.values):
            raise ValueError("times and values differ in length")
        if len(self.times) > 1 and bool(np.any(np.diff(self.times) <= 0)):
            raise ValueError("sample times must be strictly ascending")
        drops = np.zeros(len(self.values))
        if len(self.values) > 1:
            prev = self.values[:-1]
            drops[1:] = np.where(self.values[1:] < prev, prev, 0.0)
        self._resets = np.cumsum(drops)
        self._reset_count = np.cumsum(drops > 0)

    @classmethod
    def of(cls, labels: Mapping[str, str], samples: Iterable[tuple[float, float]]) -> Series:
        """From (seconds, value) pairs; times rounded to ms like the TSDB stores them."""
        pairs = list(samples)
        times = np.array([round(t * 1000) for t, _ in pairs], dtype=np.int64)
        values = np.array([v for _, v in pairs], dtype=np.float64)
        return cls(dict(labels), times, values)

    def span(self, start_ms: int, end_ms: int, left_open: bool) -> tuple[int, int]:
        """Indices of the first and last sample in the range (last < first: none)."""
        i0 = int(np.searchsorted(self.times, start_ms, "right" if left_open else "left"))
        return i0, int(np.searchsorted(self.times, end_ms, "right")) - 1

    def increase(self, start_ms: int, end_ms: int, *, left_open: bool = False) -> float | None:
        """increase() of this series over [start, end] (None: fewer than two samples)."""
        i0, i1 = self.span(start_ms, end_ms, left_open)
        if i1 - i0 < 1:
            return None
        first_t, last_t = int(self.times[i0]), int(self.times[i1])
        first_v = float(self.values[i0])
        result = float(self.values[i1]) - first_v + float(self._resets[i1] - self._resets[i0])
        return extrapolate(result, first_v, first_t, last_t, i1 - i0, start_ms, end_ms)

    def resets(self, start_ms: int, end_ms: int, *, left_open: bool = False) -> float | None:
        """resets() over [start, end] (None: no sample in it)."""
        i0, i1 = self.span(start_ms, end_ms, left_open)
        if i1 < i0:
            return None
        return float(self._reset_count[i1] - self._reset_count[i0])

    def at(self, t_ms: int, *, left_open: bool = False) -> float | None:
        """The instant selector's value at t: the latest sample within the lookback."""
        i0, i1 = self.span(t_ms - LOOKBACK_MS, t_ms, left_open)
        return float(self.values[i1]) if i1 >= i0 else None


def extrapolate(
    result: float,
    first_value: float,
    first_t: int,
    last_t: int,
    intervals: int,
    start_ms: int,
    end_ms: int,
) -> float:
    """Prometheus's extrapolation of a counter's raw increase to the range [start, end]."""
    to_start = (first_t - start_ms) / 1000
    to_end = (end_ms - last_t) / 1000
    sampled = (last_t - first_t) / 1000
    average = sampled / intervals
    threshold = average * 1.1
    if to_start >= threshold:  # the series starts inside the range
        to_start = average / 2
    if result > 0 and first_value >= 0:  # never extrapolate below zero
        to_zero = sampled * (first_value / result)
        to_start = min(to_start, to_zero)
    if to_end >= threshold:
        to_end = average / 2
    return result * ((sampled + to_start + to_end) / sampled)


# --- the server ------------------------------------------------------------------------------


def _div(a: float, b: float) -> float:
    if b == 0:  # Go float division, as Prometheus does it: +-Inf, or NaN for 0/0
        if a == 0 or math.isnan(a):
            return math.nan
        return math.inf if (a > 0) == (math.copysign(1, b) > 0) else -math.inf
    return a / b


_ARITHMETIC: dict[str, Callable[[float, float], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": _div,
}
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
    ">=": operator.ge,
    "<=": operator.le,
}


def _without_name(labels: Labels) -> Labels:
    return {k: v for k, v in labels.items() if k != "__name__"}


class Prometheus:
    """Answers instant queries over a fixed set of series."""

    def __init__(
        self, series: Sequence[Series] = (), *, left_open: bool = False, epoch: float = 0.0
    ) -> None:
        self.left_open = left_open
        self.epoch = epoch  # the Unix time of simulation time 0
        self._by_name: dict[str, list[Series]] = {}
        self._selected: dict[tuple[str, tuple[Matcher, ...]], list[Series]] = {}
        for s in series:
            self.add(s)

    def add(self, series: Series) -> None:
        name = series.labels.get("__name__", "")
        if not name:
            raise ValueError(f"series without a __name__: {dict(series.labels)}")
        self._by_name.setdefault(name, []).append(series)
        self._selected.clear()

    def select(self, name: str, matchers: tuple[Matcher, ...]) -> list[Series]:
        key = (name, matchers)
        if key not in self._selected:
            self._selected[key] = [
                s for s in self._by_name.get(name, []) if all(m.matches(s.labels) for m in matchers)
            ]
        return self._selected[key]

    def answer(self, promql: str, at_time: float) -> Answer:
        """The single value of an instant query at `at_time` (simulation seconds), Empty
        or Multiple. NaN and +-Inf come back as floats, as Prometheus returns them."""
        node = parse(promql)
        at_ms = math.floor(at_time * 1000)  # Prometheus keeps ms
        value = _Eval(self, promql, at_ms).eval(node)
        if isinstance(value, float):
            return value
        if not value:
            return Empty(promql)
        if len(value) > 1:
            return Multiple(promql, len(value))
        return value[0][1]


@dataclass
class _Eval:
    prom: Prometheus
    query: str
    at_ms: int

    def fail(self, why: str) -> UnsupportedQuery:
        return UnsupportedQuery(self.query, why)

    def eval(self, node: Node) -> Vector | float:
        if isinstance(node, Number):
            return node.value
        if isinstance(node, Selector):
            if node.range_ms is not None:
                raise self.fail("a range selector outside increase() / resets()")
            return self.series_values(
                node, lambda s, t: s.at(t, left_open=self.prom.left_open), keep_name=True
            )
        if isinstance(node, Sum):
            vector = self.vector(node.arg)
            return [({}, math.fsum(v for _, v in vector))] if vector else []
        if isinstance(node, Call):
            return self.call(node)
        return self.binary(node)

    def vector(self, node: Node) -> Vector:
        value = self.eval(node)
        if isinstance(value, float):
            raise self.fail("a scalar where an instant vector is needed")
        return value

    def when(self, sel: Selector) -> int:
        if sel.at is None:
            return self.at_ms
        return round((sel.at - self.prom.epoch) * 1000)  # as Prometheus converts @ times

    def series_values(
        self, sel: Selector, fn: Callable[[Series, int], float | None], *, keep_name: bool = False
    ) -> Vector:
        out: Vector = []
        for s in self.prom.select(sel.name, sel.matchers):
            value = fn(s, self.when(sel))
            if value is not None:
                labels = dict(s.labels)
                out.append((labels if keep_name else _without_name(labels), value))
        return out

    def call(self, node: Call) -> Vector:
        if node.func == "vector":
            scalar = self.eval(node.arg)
            if not isinstance(scalar, float):
                raise self.fail("vector() of a vector")
            return [({}, scalar)]
        sel = node.arg
        if not isinstance(sel, Selector) or sel.range_ms is None:
            raise self.fail(f"{node.func}() of anything but a range selector")
        span = sel.range_ms
        left_open = self.prom.left_open
        if node.func == "increase":
            return self.series_values(
                sel, lambda s, t: s.increase(t - span, t, left_open=left_open)
            )
        return self.series_values(sel, lambda s, t: s.resets(t - span, t, left_open=left_open))

    def signature(self, labels: Labels, node: Binary) -> tuple[tuple[str, str], ...]:
        if node.on is not None:
            return tuple((k, labels.get(k, "")) for k in sorted(node.on))
        skip = set(node.ignoring or ()) | {"__name__"}
        return tuple(sorted((k, v) for k, v in labels.items() if k not in skip))

    def binary(self, node: Binary) -> Vector | float:
        lhs, rhs = self.eval(node.lhs), self.eval(node.rhs)
        if node.op in SET_OPS:
            if isinstance(lhs, float) or isinstance(rhs, float):
                raise self.fail(f"{node.op} with a scalar")
            right = {self.signature(labels, node) for labels, _ in rhs}
            if node.op == "and":
                return [e for e in lhs if self.signature(e[0], node) in right]
            if node.op == "unless":
                return [e for e in lhs if self.signature(e[0], node) not in right]
            left = {self.signature(labels, node) for labels, _ in lhs}
            return lhs + [e for e in rhs if self.signature(e[0], node) not in left]
        if isinstance(lhs, float) and isinstance(rhs, float):
            if node.op in COMPARISONS:
                raise self.fail("a scalar comparison without bool")
            return _ARITHMETIC[node.op](lhs, rhs)
        if isinstance(lhs, float) or isinstance(rhs, float):
            return self.with_scalar(node, lhs, rhs)
        return self.one_to_one(node, lhs, rhs)

    def with_scalar(self, node: Binary, lhs: Vector | float, rhs: Vector | float) -> Vector:
        vector, scalar = (lhs, rhs) if isinstance(rhs, float) else (rhs, lhs)
        assert isinstance(vector, list) and isinstance(scalar, float)
        out: Vector = []
        for labels, v in vector:
            a, b = (v, scalar) if vector is lhs else (scalar, v)
            if node.op in COMPARISONS:
                if _COMPARE[node.op](a, b):
                    out.append((labels, v))  # a filter keeps the vector's value
            else:
                out.append((_without_name(labels), _ARITHMETIC[node.op](a, b)))
        return out

    def one_to_one(self, node: Binary, lhs: Vector, rhs: Vector) -> Vector:
        right: dict[tuple[tuple[str, str], ...], float] = {}
        for labels, v in rhs:
            sig = self.signature(labels, node)
            if sig in right:
                raise self.fail("many-to-many matching (several right-hand series match)")
            right[sig] = v
        out: Vector = []
        for labels, v in lhs:
            sig = self.signature(labels, node)
            if sig not in right:
                continue
            if node.op in COMPARISONS:
                if _COMPARE[node.op](v, right[sig]):
                    out.append((labels, v))
                continue
            result = (
                dict(sig)
                if node.on is not None
                else {
                    k: val
                    for k, val in _without_name(labels).items()
                    if k not in set(node.ignoring or ())
                }
            )
            out.append((result, _ARITHMETIC[node.op](v, right[sig])))
        return out

"""Batched count queries: one grouped PromQL query per counter for every rollout that
needs it at the same time, answered per rollout exactly as its own query would be.

A preset count query (`presets.count_since_start`) reads, for one rollout,

    (A - (B or vector(0))) and on() (R == 0) or I

with A = sum(sel) now, B = sum(sel @ start), R = sum(resets(sel[W])), I =
sum(increase(sel[W])), where sel pins the rollout's namespace, deployment, release
and cohorts and W is the time since its step's evidence began. Only A and R change
from one analysis to the next, and both are sums over series, so for many rollouts
they are one query each, grouped by the labels that tell rollouts apart:

- `current`: sum by (namespace, deployment, release, cohort) (sel) -> A per rollout;
- `resets`: the same over resets(sel[Wmax]), Wmax the longest W asked for: a
  rollout whose series did not reset in Wmax did not reset in its own W;
- `last_sample`: max by (...) (timestamp(sel)): whether the rollout's series have a
  sample inside its own W (else R over W would be empty, and I would answer).

B is fixed once the step's start is past and Prometheus has ingested it, so it is
asked once per step and cached (by the caller). Where the grouped answers cannot
prove what the rollout's own query would give (a counter reset, series that went
stale), `fan_out` says so and the caller asks that rollout's own query.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from llm_rollout.metrics.promql import escape_label_value, regex_alternation

GROUP_LABELS = ("namespace", "deployment", "release", "cohort")
# A grouped answer: (namespace, deployment, release) -> cohort -> value.
Rows = Mapping[tuple[str, str, str], Mapping[str, float]]


@dataclass(frozen=True)
class CountSince:
    """The batchable form of one rollout's count query: the counter, the matchers
    every rollout shares (rendered, e.g. `rating="positive"`), and the rollout's own
    labels, evidence start and range."""

    metric: str
    shared: str
    namespace: str
    deployment: str
    release: str
    cohorts: tuple[str, ...]
    window_seconds: int
    baseline: str  # PromQL of B: `sum(sel @ start) or vector(0)`, fixed for the step
    start: float  # Unix seconds the step's evidence began

    @property
    def batch_key(self) -> tuple[str, str]:
        """Queries with the same key are answered by the same grouped queries."""
        return self.metric, self.shared


class Part(Enum):
    CURRENT = "current"
    RESETS = "resets"
    LAST_SAMPLE = "last_sample"


@dataclass(frozen=True)
class GroupedQueries:
    """The grouped queries that answer one batch key for a set of rollouts."""

    current: str
    resets: str
    last_sample: str

    def by_part(self) -> dict[Part, str]:
        return {
            Part.CURRENT: self.current,
            Part.RESETS: self.resets,
            Part.LAST_SAMPLE: self.last_sample,
        }


def grouped_queries(counts: Sequence[CountSince]) -> GroupedQueries:
    """The grouped queries for `counts` (all of one batch key)."""
    metric, shared = counts[0].batch_key
    assert all(c.batch_key == (metric, shared) for c in counts)
    namespaces = regex_alternation(sorted({c.namespace for c in counts}))
    deployments = regex_alternation(sorted({c.deployment for c in counts}))
    matchers = [
        f'namespace=~"{escape_label_value(namespaces)}"',
        f'deployment=~"{escape_label_value(deployments)}"',
    ]
    if shared:
        matchers.append(shared)
    selector = f"{metric}{{{','.join(matchers)}}}"
    by = f"by ({', '.join(GROUP_LABELS)})"
    longest = max(c.window_seconds for c in counts)
    return GroupedQueries(
        current=f"sum {by} ({selector})",
        resets=f"sum {by} (resets({selector}[{longest}s]))",
        last_sample=f"max {by} (timestamp({selector}))",
    )


def rows(series: Iterable[tuple[Mapping[str, str], float]]) -> Rows:
    """A grouped answer's series, indexed by rollout and release: (namespace,
    deployment, release) -> cohort -> value, so each rollout finds its own rows in
    O(its cohorts) however many rollouts the batch holds."""
    keyed: dict[tuple[str, str, str], dict[str, float]] = {}
    for labels, value in series:
        key = (
            labels.get("namespace", ""),
            labels.get("deployment", ""),
            labels.get("release", ""),
        )
        keyed.setdefault(key, {})[labels.get("cohort", "")] = value
    return keyed


class Answer(Enum):
    EMPTY = "empty"  # the rollout's own query would return no series
    OWN_QUERY = "own_query"  # only the rollout's own query can say


def fan_out(count: CountSince, at: float, answers: Mapping[Part, Rows]) -> float | Answer:
    """A (the rollout's counters summed now) when the grouped answers prove the rollout's
    own query equals A - B; otherwise what to do instead. `at` is the evaluation time
    (Unix seconds)."""
    key = (count.namespace, count.deployment, count.release)

    def mine(part: Part) -> list[float]:
        by_cohort = answers[part].get(key, {})
        return [by_cohort[c] for c in count.cohorts if c in by_cohort]

    resets = mine(Part.RESETS)
    if not resets:
        # No sample in the longest range, so none in the rollout's own: R and I are
        # empty, and so is its query whatever A says.
        return Answer.EMPTY
    if sum(resets) != 0:
        return Answer.OWN_QUERY  # a counter reset: its query falls back to increase()
    current, last = mine(Part.CURRENT), mine(Part.LAST_SAMPLE)
    if not current or not last or max(last) <= at - count.window_seconds:
        # Its series went stale, or have no sample inside its own range (R over it
        # would be empty and I would answer): not provable from the grouped answers.
        return Answer.OWN_QUERY
    return sum(current)

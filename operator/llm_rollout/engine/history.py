"""status.history: a bounded record of notable decisions that keeps the rollout's story.

Every analysis that holds adds an entry, so trimming the oldest entries would soon
forget how the current rollout began. Over the bound, the entries go in this order:
the oldest Hold (a per-analysis note, and the next Hold says the same), then the
oldest entry from before the current rollout began, then the oldest entry after its
start. The current rollout's start is the last entry to go.
"""

from __future__ import annotations

from llm_rollout.api.status import HISTORY_LIMIT, HistoryEntry
from llm_rollout.engine.types import Outcome

_STARTS = frozenset({Outcome.START.value, Outcome.RETRY.value})


def starts_rollout(entry: HistoryEntry) -> bool:
    """Whether this entry began a rollout (a new attempt of a candidate)."""
    return entry.decision in _STARTS or (
        entry.decision == Outcome.SUPERSEDE.value and entry.reason == "Superseded"
    )


def record(
    history: list[HistoryEntry], entry: HistoryEntry, limit: int = HISTORY_LIMIT
) -> list[HistoryEntry]:
    """`history` with `entry` appended, compacted to at most `limit` entries."""
    kept = [*history, entry]
    while len(kept) > limit:
        start = max((i for i, e in enumerate(kept) if starts_rollout(e)), default=0)
        holds = [i for i, e in enumerate(kept[:-1]) if e.decision == Outcome.HOLD.value]
        if holds:
            del kept[holds[0]]
        elif start > 0:
            del kept[0]
        else:
            del kept[1]  # keep the start; drop the oldest milestone after it
    return kept


__all__ = ["record", "starts_rollout"]

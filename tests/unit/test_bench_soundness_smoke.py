"""A small run of the soundness benchmark (`make bench-soundness` runs the full one).

It drives the real engine through the benchmark's own harness, so a change that
brought back peeking (the old gates promoted 44% of candidates sitting exactly at
their threshold in this cell) or broke the harness fails here, not in a long run.
"""

from __future__ import annotations

from bench.soundness import cells, harness


def test_a_candidate_at_its_threshold_is_rarely_promoted_and_a_good_one_always() -> None:
    settings = harness.Settings()
    at_bound, _ = harness.run_cell(cells.BY_NAME["ratio-p070"], 60, settings, workers=1)
    good, _ = harness.run_cell(cells.BY_NAME["ratio-p080"], 30, settings, workers=1)
    promoted = sum(r.outcome == "Promote" for r in at_bound)
    # At most 5% in the long run; 60 rollouts allow Monte Carlo noise up to 9 of them.
    assert promoted <= 9, [(r.outcome, r.reason) for r in at_bound]
    assert all(r.outcome == "Promote" for r in good), [(r.outcome, r.reason) for r in good]
    assert all(r.looks >= 5 for r in good)  # decided on analyses, not at the start

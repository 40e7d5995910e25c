"""Soundness benchmark: Monte Carlo rollouts of the real engine against a simulated Prometheus.

    .venv/bin/python -m bench.soundness --quick                  # CI smoke test, ~1 min
    .venv/bin/python -m bench.soundness --cells ratio,compare --json-out run.json
    .venv/bin/python -m bench.soundness --baseline-ref 73f79ba   # side by side with a commit

Each rollout drives the unmodified engine as Controller.reconcile does (harness.py); every
query it plans is parsed and answered from scraped counter series (promsim.py) of simulated
users (traffic.py), so the benchmark follows whatever PromQL the engine renders. Cells
(cells.py) fix the true parameters; the output is P(promoted) and P(rolled back) with Wilson
95% Monte Carlo intervals, time to decision and samples at promotion.

Randomness comes only from the traffic, seeded per (seed, cell, rollout index): two engines
run with the same seed see the same event streams, so their differences are paired.
"""

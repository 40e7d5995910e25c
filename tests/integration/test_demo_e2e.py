"""The whole product end to end, as `make demo` runs it (smaller): operator, router,
model servers and simulated users on the real bed. A good release is promoted
stage by stage; a regressed one is rolled back at the experts stage before any
beta user sees it; Prometheus agrees with what the simulated users did."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llm_rollout.demo.run import Demo
from llm_rollout.demo.scenario import TRACE_PROJECT, DemoConfig
from llm_rollout.demo.summary import summary
from llm_rollout.testbed.traces import TraceBackend


async def test_demo_promotes_the_good_release_and_rolls_back_the_regressed_one(
    bed: Any, crd: None, tmp_path: Path, trace_backend: TraceBackend
) -> None:
    config = DemoConfig(
        out_dir=tmp_path,
        live=False,
        scenario_timeout=240,
        durations={"experts": ("8s", "90s"), "beta": ("4s", "90s"), "all": ("4s", "90s")},
    )
    demo = Demo(config, bed=bed, traces=trace_backend)
    try:
        result = await demo.run()
    finally:
        demo.stop()
    print(summary(result))
    assert result.ok, result.problems

    first, good, regressed = result.scenarios
    assert first.phase == "Promoted"
    assert (good.phase, regressed.phase) == ("Promoted", "RolledBack")
    assert regressed.stage == "experts"

    moves = [
        (d["decision"], d.get("stage"), d.get("step"))
        for d in good.decisions
        if d["decision"] != "Hold"
    ]
    assert moves[0][0] == "Start" and moves[-1][0] == "Promote"
    advances = [(stage, step) for decision, stage, step in moves if decision == "Advance"]
    assert advances == [
        ("experts", 0),
        ("beta", 0),
        ("beta", 1),
        ("all", 0),
        ("all", 1),
        ("all", 2),
    ], moves
    assert [d["decision"] for d in regressed.decisions if d["decision"] != "Hold"] == [
        "Start",
        "Advance",
        "Rollback",
    ]

    ids = result.releases
    record = result.record
    assert record.failed_requests == 0, "every simulated request was answered"
    assert ids["B''"] not in record.releases_seen_by("beta")
    assert ids["B''"] not in record.releases_seen_by("everyone")
    assert ids["B''"] in record.releases_seen_by("experts"), "experts did see B''"
    accepted = {k: float(v) for k, v in record.feedback_accepted.items() if v}
    assert result.prometheus_feedback == accepted
    assert sum(accepted.values()) > 100
    for scenario in (good, regressed):
        assert scenario.plot is not None and scenario.plot.stat().st_size > 10_000

    # The loop: B'' is rolled back, its bad answers become a golden set, and the suite
    # that uses it fails B'' and passes B'.
    loop = result.loop
    assert loop is not None and loop.cases > 0, loop
    cases = [json.loads(line) for line in loop.path.read_text().splitlines()]
    regressed_tag = "release:" + ids["B''"]
    assert all("production" in c["tags"] and regressed_tag in c["tags"] for c in cases)
    assert any("failed-check:brand-names" in c["tags"] for c in cases)
    by_label = {run.label: run for run in loop.runs}
    assert not by_label["B''"].passes and by_label["B'"].passes, loop.runs
    assert by_label["B'"].total == by_label["B''"].total == loop.cases
    # Every eval case of the loop is in the trace backend, its judge scores on it.
    spans = trace_backend.spans(TRACE_PROJECT, name=f"eval case {cases[0]['id']}")
    assert {s["attributes"]["llm_rollout.release.id"] for s in spans} >= {ids["B'"], ids["B''"]}

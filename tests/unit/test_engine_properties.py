"""Invariants of the engine over random event sequences (hypothesis).

Events: time passing with good / bad / inconclusive / broken / random metrics, manual
actions, pause toggles, new releases (and reverts), readiness flips, stage edits.
"""

from __future__ import annotations

import os
from typing import Any

from engine_support import BAD, GOOD, NAME, NS, UNSURE, ObsFn, at, broken, ratio, spec_dict
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from schema_support import conforms

from llm_rollout.api import (
    ACTION_ANNOTATION,
    HISTORY_LIMIT,
    LLMDeploymentSpec,
    LLMDeploymentStatus,
    ManualAction,
    Phase,
    Verdict,
    release_id,
)
from llm_rollout.api.status import ACTIVE_PHASES
from llm_rollout.engine import (
    ObservationErrorKind,
    Outcome,
    decide,
    evaluate_stage,
    exposed_cohorts,
    plan_queries,
)
from llm_rollout.engine.plan import earlier_cohorts
from llm_rollout.gen import crd as crdgen

EXAMPLES = int(os.environ.get("LLM_ROLLOUT_PROPERTY_EXAMPLES", "300"))
STATUS_SCHEMA = crdgen.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][
    "status"
]
assert ACTION_ANNOTATION  # the annotation the actions below stand for

STAGE_VARIANTS: list[list[dict[str, Any]]] = [
    spec_dict()["stages"],
    [  # no gates: time-based
        {"name": "experts", "cohorts": ["experts"], "minDuration": "30s"},
        {"name": "all", "cohorts": ["beta", "everyone"], "steps": [20, 60], "minDuration": "30s"},
    ],
    [  # a Compare gate and a Threshold, one stage with all cohorts
        {
            "name": "experts",
            "cohorts": ["experts", "beta"],
            "steps": [30, 100],
            "minDuration": "45s",
            "maxDuration": "5m",
            "gates": [
                {"name": "err", "kind": "Compare", "metric": "error-rate", "margin": 0.05},
                {"name": "fb", "kind": "Threshold", "metric": "feedback-positive-rate", "min": 0.5},
            ],
        },
        {
            "name": "all",
            "cohorts": ["everyone"],
            "minDuration": "30s",
            "gates": [
                {
                    "name": "fb",
                    "kind": "Ratio",
                    "metric": "feedback-positive-rate",
                    "min": 0.5,
                    "minSamples": 20,
                }
            ],
        },
    ],
]

OBSERVATION_MODES: dict[str, ObsFn] = {
    "good": GOOD,
    "bad": BAD,
    "unsure": UNSURE,
    "down": broken(),
    "empty": broken(ObservationErrorKind.EMPTY),
}

tick = st.tuples(
    st.just("tick"),
    st.sampled_from([1, 10, 30, 45, 61, 200, 700]),
    st.one_of(
        st.sampled_from(sorted(OBSERVATION_MODES)),
        st.tuples(st.integers(0, 500), st.integers(0, 500)),
    ),
)
# Several analyses in a row with the same metrics: long enough to soak and advance.
run = st.tuples(st.just("run"), st.integers(2, 6), st.sampled_from(["good", "good", "bad", "down"]))
any_event = st.one_of(
    *[tick] * 6,
    run,
    run,
    st.tuples(
        st.just("action"),
        st.sampled_from(["promote", "promote-full", "abort", "retry", "resume", "bogus"]),
        st.integers(0, 3),
    ),
    st.tuples(st.just("pause"), st.booleans(), st.just(0)),
    st.tuples(st.just("release"), st.sampled_from(["1", "2", "3"]), st.just(0)),
    st.tuples(st.just("ready"), st.booleans(), st.just(0)),
    st.tuples(st.just("stages"), st.integers(0, len(STAGE_VARIANTS) - 1), st.just(0)),
)


def build(revision: str, paused: bool, variant: int) -> LLMDeploymentSpec:
    return LLMDeploymentSpec.model_validate(
        spec_dict(revision, paused=paused, stages=STAGE_VARIANTS[variant])
    )


def observation_fn(mode: Any) -> ObsFn:
    if isinstance(mode, tuple):
        return ratio(min(mode), max(mode))
    return OBSERVATION_MODES[mode]


def position(s: LLMDeploymentStatus) -> tuple[int, int]:
    return (s.stage_index, s.step_index)


def check_routing(spec: LLMDeploymentSpec, s: LLMDeploymentStatus) -> None:
    routing = s.routing
    assert routing is not None
    active = s.phase in ACTIVE_PHASES and s.candidate is not None
    if not active:
        # After rollback, failure or promotion nobody reaches a candidate.
        assert routing.candidate is None
        assert all(r.candidate_percent == 0 for r in routing.routes)
        return
    exposed = set(exposed_cohorts(spec, s.stage_index))
    earlier = earlier_cohorts(spec, s.stage_index)
    for r in routing.routes:
        if r.candidate_percent > 0:
            # A cohort never reaches the candidate before its stage.
            assert s.exposed and r.cohort in exposed, (r, s.stage)
        if s.exposed and r.cohort in earlier:
            assert r.candidate_percent == 100


# LLM_ROLLOUT_PROPERTY_EXAMPLES=5000 for a longer hunt.
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(any_event, min_size=1, max_size=60))
def test_engine_invariants(events: list[tuple[str, Any, Any]]) -> None:
    revision, paused, variant = "1", False, 0
    spec = build(revision, paused, variant)
    ready = {release_id(spec)}
    status = LLMDeploymentStatus()
    t, generation, action_seq = 0.0, 1, 0
    # Start from a rollout in progress: the first release, then a second one.
    flat = [e for ev in events for e in ([("tick", 30, ev[2])] * ev[1] if ev[0] == "run" else [ev])]
    for kind, a, b in [("tick", 0, "good"), ("release", "2", 0), *flat]:
        action = None
        fn: ObsFn = GOOD
        stages_changed = False
        if kind == "tick":
            t += a
            fn = observation_fn(b)
        elif kind == "action":
            action_seq += b  # b == 0 repeats the last id: must not apply twice
            action = ManualAction(a, str(action_seq))
        elif kind == "pause":
            paused = a
        elif kind == "release":
            revision = a
        elif kind == "ready":
            rid = release_id(spec)
            if a:
                ready.add(rid)
            else:
                ready.discard(rid)
        elif kind == "stages":
            stages_changed = variant != a
            variant = a
        new_spec = build(revision, paused, variant)
        if new_spec != spec:
            generation += 1
            spec = new_spec
            if kind == "release":
                ready.add(release_id(spec))
        observations = {q.key: fn(q) for q in plan_queries(spec, status, NS, NAME, now=at(t))}
        snapshot = status.model_dump()
        kwargs: dict[str, Any] = dict(
            now=at(t),
            name=NAME,
            generation=generation,
            observations=observations,
            ready_releases=frozenset(ready),
            action=action,
        )
        d = decide(spec, status, **kwargs)

        # Pure: same inputs, same decision; the input is left alone.
        assert decide(spec, status, **kwargs) == d
        assert status.model_dump() == snapshot
        new = d.status
        event(f"{d.outcome.value}/{d.reason}")

        assert len(new.history) <= HISTORY_LIMIT
        assert new.observed_generation == generation
        assert new.phase is not Phase.INVALID
        assert d.requeue_after is None or d.requeue_after >= 0
        check_routing(spec, new)

        # Never advance while a gate is not Pass.
        same_rollout = (
            status.candidate is not None
            and new.candidate == status.candidate
            and status.phase in ACTIVE_PHASES
            and new.phase in ACTIVE_PHASES
            and d.outcome not in (Outcome.START, Outcome.RETRY, Outcome.SUPERSEDE)
            and not stages_changed
        )
        moved = same_rollout and position(new) > position(status)
        promoted = d.outcome is Outcome.PROMOTE and d.reason != "FirstRelease"
        if moved or promoted:
            assert d.reason in ("GatesPassed", "MinDurationElapsed", "ManualPromotion"), d
        # The stage the decision was about (the stage list may have just been edited).
        stage = next((x for x in spec.stages if x.name == status.stage), None)
        if d.reason == "GatesPassed":
            # An edit that keeps the current stage (by name) may analyse in the same call,
            # on queries planned for the edited spec; one that moves it realigns first.
            assert stage is not None and stage.gates
            results = evaluate_stage(spec, stage, observations, status.gates)
            assert all(r.verdict is Verdict.PASS for r in results)
        if d.reason == "MinDurationElapsed":
            assert stage is not None and not stage.gates

        # Sticky exposure: within one rollout a cohort's share never shrinks.
        if same_rollout and status.routing is not None and new.routing is not None:
            before = {r.cohort: r.candidate_percent for r in status.routing.routes}
            for r in new.routing.routes:
                assert r.candidate_percent >= before.get(r.cohort, 0), (r, d)

        # Manual actions are applied at most once.
        if action is not None and status.last_handled_action == action.key:
            assert d.outcome in (Outcome.NOOP, Outcome.HOLD) or d.reason not in (
                "ManualPromotion",
                "Aborted",
                "Retried",
                "Resumed",
                "ActionRejected",
            )

        assert conforms(STATUS_SCHEMA, new.to_patch(), ".status") == []
        status = new

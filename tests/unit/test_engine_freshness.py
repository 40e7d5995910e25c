"""KnowledgeFresh: the stable release's knowledge-base snapshot against
spec.freshness.knowledgeBaseMaxAge, judged at the time the engine is given (pure)."""

from __future__ import annotations

from typing import Any

from engine_support import T0, Driver, cond, make_spec
from prometheus_client import generate_latest

from llm_rollout.api import ConditionType, LLMDeploymentSpec, release_id
from llm_rollout.controller.operator_metrics import OperatorMetrics

DAY = 86400.0
BUILT = "2025-01-01T12:00:00Z"  # T0: the engine's clock starts there


def fresh_spec(
    created: str | None = BUILT, max_age: str | None = "720h", **kb: Any
) -> LLMDeploymentSpec:
    knowledge_base: dict[str, Any] = {"snapshot": "kb-2025-01", **kb}
    if created is not None:
        knowledge_base["createdAt"] = created
    overrides: dict[str, Any] = {"release": {"model": {"name": "llama", "revision": "1"},
                                             "knowledgeBase": knowledge_base}}  # fmt: skip
    if max_age is not None:
        overrides["freshness"] = {"knowledgeBaseMaxAge": max_age}
    return make_spec(**overrides)


def first(spec: LLMDeploymentSpec) -> Driver:
    d = Driver(spec, ready={release_id(spec)})
    d.call()
    return d


def test_a_snapshot_within_max_age_is_fresh_and_turns_stale_when_it_passes() -> None:
    d = first(fresh_spec())
    assert cond(d.status, ConditionType.KNOWLEDGE_FRESH) == ("True", "Fresh")
    fresh = d.status.condition(ConditionType.KNOWLEDGE_FRESH)
    assert fresh is not None and "kb-2025-01" in fresh.message and "720h" in fresh.message
    d.call(dt=29 * DAY)
    assert cond(d.status, ConditionType.KNOWLEDGE_FRESH) == ("True", "Fresh")
    d.call(dt=2 * DAY)  # 31 days: past 720h
    assert cond(d.status, ConditionType.KNOWLEDGE_FRESH) == ("False", "Stale")
    stale = d.status.condition(ConditionType.KNOWLEDGE_FRESH)
    assert stale is not None and "older than maxAge 720h" in stale.message
    # The message names the build time, not the age: a later reconcile writes nothing new.
    before = d.status.model_dump()
    d.call(dt=DAY)
    assert d.status.condition(ConditionType.KNOWLEDGE_FRESH) == stale
    assert d.status.model_dump()["conditions"] == before["conditions"]


def test_a_new_snapshot_rolled_out_and_promoted_makes_it_fresh_again() -> None:
    d = first(fresh_spec())
    d.call(dt=40 * DAY)
    assert cond(d.status, ConditionType.KNOWLEDGE_FRESH) == ("False", "Stale")
    newer = fresh_spec(created="2025-02-09T00:00:00Z", snapshot="kb-2025-02")
    assert release_id(newer) != release_id(fresh_spec()), "a new snapshot is a new release"
    d.apply(newer)
    d.call()
    # Until it is promoted, the stable release (and its old snapshot) is what users get.
    assert cond(d.status, ConditionType.KNOWLEDGE_FRESH) == ("False", "Stale")
    for _ in range(40):
        if d.status.stable is not None and d.status.stable.id == release_id(newer):
            break
        d.call(dt=70)
    assert d.status.stable is not None and d.status.stable.id == release_id(newer)
    assert cond(d.status, ConditionType.KNOWLEDGE_FRESH) == ("True", "Fresh")


def test_no_creation_time_is_unknown_and_no_max_age_is_no_condition() -> None:
    d = first(fresh_spec(created=None))
    assert cond(d.status, ConditionType.KNOWLEDGE_FRESH) == ("Unknown", "NoCreationTime")
    d = first(fresh_spec(max_age=None))
    assert d.status.condition(ConditionType.KNOWLEDGE_FRESH) is None
    # Turned off later: the condition goes.
    d = first(fresh_spec())
    d.apply(d.spec.model_copy(update={"freshness": fresh_spec(max_age=None).freshness}))
    d.call()
    assert d.status.condition(ConditionType.KNOWLEDGE_FRESH) is None


def test_the_stable_snapshot_time_and_max_age_are_exported() -> None:
    spec = fresh_spec()
    d = first(spec)
    m = OperatorMetrics()
    m.observe_spec("team", "assistant", spec.model_dump(mode="json", by_alias=True))
    m.observe_status("team", "assistant", d.status, {})
    created = m.registry.get_sample_value(
        "llm_rollout_knowledge_base_created_time_seconds",
        {"namespace": "team", "deployment": "assistant", "release": release_id(spec),
         "snapshot": "kb-2025-01"},
    )  # fmt: skip
    assert created == T0.timestamp()
    max_age = m.registry.get_sample_value(
        "llm_rollout_knowledge_base_max_age_seconds",
        {"namespace": "team", "deployment": "assistant"},
    )
    assert max_age == 30 * DAY
    assert m.render().count(b"llm_rollout_knowledge_base_created_time_seconds{") == 1
    m.observe_spec("team", "assistant", {"stages": []})  # maxAge removed from the spec
    assert b"llm_rollout_knowledge_base_max_age_seconds{" not in generate_latest(m.registry)

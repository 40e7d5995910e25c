"""The spec models: defaults, the pydantic mirrors of the CEL rules, release identity."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from pydantic import ValidationError

from llm_rollout.api import (
    ACTION_ANNOTATION,
    ACTION_ID_ANNOTATION,
    ActionKind,
    LLMDeploymentSpec,
    LLMDeploymentStatus,
    ManualAction,
    Phase,
    action_from_annotations,
    format_duration,
    parse_duration,
    release_id,
    release_info,
)

MINIMAL: dict[str, Any] = {"release": {"model": {"name": "llama", "revision": "3.1"}}}


def spec(**overrides: Any) -> LLMDeploymentSpec:
    return LLMDeploymentSpec.model_validate({**MINIMAL, **overrides})


def test_defaults() -> None:
    s = spec()
    assert [c.name for c in s.cohorts] == ["experts", "beta", "everyone"]
    assert s.cohorts[0].match.headers == {"x-user-group": ["expert"]}
    assert s.default_cohort == "everyone" and s.user_id_header == "x-user-id"
    assert [(st.name, st.cohorts, st.percents) for st in s.stages] == [
        ("experts", ["experts"], [100]),
        ("beta", ["beta"], [100]),
        ("all", ["everyone"], [10, 25, 50]),
    ]
    a = s.analysis
    assert (a.interval, a.window, a.confidence, a.failure_limit, a.error_limit) == (
        "30s",
        "5m",
        0.95,
        1,
        3,
    )
    assert a.on_metrics_unavailable.value == "Pause"
    assert s.release.replicas == 1 and s.release.port == 8080
    assert s.routing.provider.value == "builtin" and not s.paused
    assert s.prometheus.address is None


def test_router_fields_checks_and_hosts() -> None:
    s = spec(
        checks=[
            {"name": "json", "type": "validJson"},
            {"name": "short", "type": "maxLength", "max": 2000},
        ],
        routing={"hosts": ["chat.example.com"]},
    )
    assert [c.name for c in s.checks] == ["json", "short"]
    assert s.routing.hosts == ["chat.example.com"]
    with pytest.raises(ValidationError, match="checks"):
        spec(checks=[{"name": "x", "type": "maxLength", "pattern": "a"}])
    with pytest.raises(ValidationError, match="duplicate check names"):
        spec(checks=[{"name": "x", "type": "validJson"}, {"name": "x", "type": "validJson"}])


def test_camel_case_on_the_wire() -> None:
    s = spec(
        defaultCohort="beta",
        userIdHeader="x-uid",
        analysis={"failureLimit": 4, "onMetricsUnavailable": "Rollback"},
    )
    dumped = s.model_dump(by_alias=True, exclude_none=True)
    assert dumped["defaultCohort"] == "beta" and dumped["analysis"]["failureLimit"] == 4
    assert "knowledgeBase" in dumped["release"]


def stage(name: str = "s", **fields: Any) -> dict[str, Any]:
    return {"name": name, "cohorts": ["everyone"], **fields}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"stages": [stage("a"), stage("a")]}, "stage names must be unique"),
        (
            {
                "cohorts": [{"name": "x"}, {"name": "x"}],
                "defaultCohort": "x",
                "stages": [{"name": "s", "cohorts": ["x"]}],
            },
            "cohort names must be unique",
        ),
        ({"stages": [{"name": "s", "cohorts": ["vip"]}]}, r'undefined cohorts \["vip"\]'),
        ({"defaultCohort": "vip"}, "defaultCohort vip"),
        (
            {
                "stages": [
                    stage(gates=[{"name": "g", "kind": "Threshold", "metric": "nope", "min": 1}])
                ]
            },
            "undefined metrics nope",
        ),
        (
            {
                "stages": [
                    stage(
                        gates=[
                            {
                                "name": "g",
                                "kind": "Composite",
                                "min": 1,
                                "components": [{"metric": "nope"}],
                            }
                        ]
                    )
                ]
            },
            "undefined metrics",
        ),
        ({"stages": [stage(steps=[10, 10])]}, "strictly ascending"),
        ({"stages": [stage(steps=[50, 10])]}, "strictly ascending"),
        ({"stages": [stage(steps=[0])]}, "greater than or equal to 1"),
        ({"stages": [stage(steps=[101])]}, "less than or equal to 100"),
        ({"stages": [stage(minDuration="10m", maxDuration="5m")]}, "minDuration must be <="),
        ({"stages": [stage(minDuration="5 minutes")]}, "should match pattern"),
        ({"analysis": {"confidence": 1.0}}, "less than 1"),
        ({"analysis": {"confidence": 0}}, "greater than 0"),
        ({"analysis": {"interval": "500ms"}}, "at least 1s"),
        (
            {
                "stages": [
                    stage(
                        gates=[
                            {
                                "name": "g",
                                "kind": "Threshold",
                                "metric": "error-rate",
                                "min": 2,
                                "max": 1,
                            }
                        ]
                    )
                ]
            },
            "min must be <= max",
        ),
        (
            {"stages": [stage(gates=[{"name": "g", "kind": "Ratio", "metric": "error-rate"}])]},
            "need min and/or max",
        ),
        (
            {"stages": [stage(gates=[{"name": "g", "kind": "Threshold", "min": 1}])]},
            "need a metric",
        ),
        (
            {"stages": [stage(gates=[{"name": "g", "kind": "Composite", "min": 1}])]},
            "need components",
        ),
        (
            {
                "stages": [
                    stage(
                        gates=[
                            {"name": "g", "kind": "Compare", "metric": "error-rate"},
                            {"name": "g", "kind": "Compare", "metric": "error-rate"},
                        ]
                    )
                ]
            },
            "gate names must be unique",
        ),
        ({"metrics": [{"name": "m"}]}, "exactly one of query or ratio"),
        (
            {"metrics": [{"name": "m", "query": "x", "ratio": {"success": "a", "total": "b"}}]},
            "exactly one of query or ratio",
        ),
        (
            {"metrics": [{"name": "m", "ratio": {"success": "a", "total": "b"}, "samples": "c"}]},
            "samples only applies",
        ),
        (
            {"metrics": [{"name": "m", "query": "x"}, {"name": "m", "query": "y"}]},
            "metric names must be unique",
        ),
        ({"stages": []}, "at least 1 item"),
        ({"stages": [stage(str(i)) for i in range(11)]}, "at most 10 items"),
        ({"paused": True, "bogus": 1}, "Extra inputs are not permitted"),
        ({"release": {"model": {"name": ""}}}, "at least 1 character"),
        ({"prometheus": {"address": "file:///etc/passwd"}}, "should match pattern"),
    ],
)
def test_invalid_specs(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        spec(**overrides)


def test_gate_fields_by_kind_are_accepted() -> None:
    s = spec(
        metrics=[{"name": "q", "query": 'avg(q{r="{{ release }}"})', "samples": "count(q)"}],
        stages=[
            stage(
                gates=[
                    {"name": "a", "kind": "Threshold", "metric": "q", "min": 0.5, "minSamples": 10},
                    {"name": "b", "kind": "Ratio", "metric": "feedback-positive-rate", "min": 0.6},
                    {
                        "name": "c",
                        "kind": "Compare",
                        "metric": "latency-p95",
                        "margin": 0.1,
                        "direction": "lowerIsBetter",
                    },
                    {
                        "name": "d",
                        "kind": "Composite",
                        "max": 2,
                        "components": [
                            {"metric": "q", "weight": 2},
                            {"metric": "eval-score", "suite": "golden"},
                        ],
                    },
                ]
            )
        ],
    )
    gates = s.stages[0].gates
    assert gates[0].min_value == 0.5 and gates[3].max_value == 2
    assert gates[3].metric_names() == ["q", "eval-score"]
    assert s.metric_kind("q") is not None and s.metric_kind("q").value == "value"  # type: ignore[union-attr]
    assert s.metric_kind("error-rate").value == "ratio"  # type: ignore[union-attr]
    assert s.metric_kind("nope") is None


# --- release identity ---------------------------------------------------------------


def test_release_id_is_ten_hex_digits_and_stable() -> None:
    rid = release_id(spec())
    assert len(rid) == 10 and int(rid, 16) >= 0
    assert rid == release_id(spec())
    # Pinned (sha256 of the canonical JSON, defaults left out): a change here would
    # re-roll every deployment on operator upgrade.
    canonical = b'{"model":{"name":"llama","revision":"3.1"}}'
    assert rid == hashlib.sha256(canonical).hexdigest()[:10] == "d365466fa4"


def test_release_id_ignores_replicas_defaults_and_key_order() -> None:
    base = release_id(spec())
    assert release_id(spec(release={**MINIMAL["release"], "replicas": 5})) == base
    assert (
        release_id(
            spec(
                release={
                    "model": {"revision": "3.1", "name": "llama"},
                    "port": 8080,
                    "template": {},
                }
            )
        )
        == base
    )
    assert release_id(spec(stages=[stage()], paused=True)) == base  # rollout settings


@pytest.mark.parametrize(
    "change",
    [
        {"model": {"name": "llama", "revision": "3.2"}},
        {"prompt": {"version": "v2"}},
        {"prompt": {"configMapRef": {"name": "p", "key": "k"}}},
        {"knowledgeBase": {"snapshot": "2025-01"}},
        {"template": {"spec": {"containers": [{"name": "app", "image": "x:2"}]}}},
        {"port": 9000},
    ],
)
def test_release_id_changes_with_what_users_get(change: dict[str, Any]) -> None:
    assert release_id(spec(release={**MINIMAL["release"], **change})) != release_id(spec())


def test_release_info() -> None:
    s = spec(
        release={
            **MINIMAL["release"],
            "prompt": {"version": "p7"},
            "knowledgeBase": {"snapshot": "kb1"},
        }
    )
    info = release_info(s)
    assert (info.id, info.model, info.model_revision, info.prompt_version, info.knowledge_base) == (
        release_id(s),
        "llama",
        "3.1",
        "p7",
        "kb1",
    )
    assert release_info(s.release) == info


# --- durations, actions, status -----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("10m", 600),
        ("1h", 3600),
        ("1h30m", 5400),
        ("250ms", 0.25),
        ("1.5h", 5400),
        ("0s", 0),
        ("2h0m5s", 7205),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "1d", "m", "-1s", "1h 30m", "1.s", "1e3s", "s5"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (30, "30s"),
        (300, "5m"),
        (5400, "1h30m"),
        (0.25, "250ms"),
        (3661.5, "1h1m1s500ms"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds)


def test_action_from_annotations() -> None:
    assert action_from_annotations(None) is None
    assert action_from_annotations({"other": "x"}) is None
    assert action_from_annotations({ACTION_ANNOTATION: " "}) is None
    a = action_from_annotations({ACTION_ANNOTATION: "promote-full", ACTION_ID_ANNOTATION: "17"})
    assert a == ManualAction("promote-full", "17") and a.key == "promote-full/17"
    assert a.kind is ActionKind.PROMOTE_FULL
    b = action_from_annotations({ACTION_ANNOTATION: "abort"})
    assert b is not None and b.key == "abort/" and b.kind is ActionKind.ABORT
    assert ManualAction("explode").kind is None


def test_status_round_trip_and_patch() -> None:
    raw = {"phase": "RolledBack", "lastHandledAction": "abort/1", "kopf": {"progress": {}}}
    s = LLMDeploymentStatus.from_object(raw)
    assert s.phase is Phase.ROLLED_BACK and s.last_handled_action == "abort/1"
    patch = s.to_patch()
    assert patch["phase"] == "RolledBack" and patch["candidate"] is None  # clears on merge
    assert LLMDeploymentStatus.from_object(patch) == s
    assert LLMDeploymentStatus.from_object(None) == LLMDeploymentStatus()

"""Reading LLMDeployment objects, selecting a deployment, resolving backends (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_rollout.router.config import load_config_text, served_from_object
from llm_rollout.router.state import RouterState
from llm_rollout.traffic.backends import ServiceBackends, StaticBackends

OBJ = {
    "apiVersion": "rollout.llmops.io/v1alpha1",
    "kind": "LLMDeployment",
    "metadata": {"namespace": "ns", "name": "app", "uid": "123", "generation": 4},
    "spec": {
        "stages": [{"name": "experts"}],
        "cohorts": [{"name": "experts", "match": {"headers": {"X-Group": ["e"]}}}],
        "defaultCohort": "everyone",
        "userIdHeader": "x-account",
        "checks": [{"name": "short", "type": "maxLength", "max": 100}],
        "routing": {"provider": "builtin", "hosts": ["Chat.Example.com"]},
        "release": {"model": {"name": "m"}, "port": 9000},
    },
    "status": {
        "phase": "Progressing",
        "routing": {
            "stable": {"id": "s1", "model": "m"},
            "candidate": {"id": "c2"},
            "routes": [{"cohort": "experts", "candidatePercent": 100}],
        },
    },
}


def test_served_from_object_reads_what_it_needs() -> None:
    s = served_from_object(OBJ)
    assert (s.namespace, s.name, s.default_cohort, s.user_id_header) == (
        "ns",
        "app",
        "everyone",
        "x-account",
    )
    assert [c.name for c in s.cohorts] == ["experts"]
    assert s.compiled[0].headers == (("x-group", frozenset({"e"})),)
    assert s.routing.candidate_percent("experts") == 100 and s.routing.stable is not None
    assert [c.name for c in s.checks] == ["short"]
    assert (s.hosts, s.port) == (("chat.example.com",), 9000)
    assert s.has_cohort("everyone") and s.has_cohort("experts") and not s.has_cohort("x")


@pytest.mark.parametrize(
    "broken",
    [
        {"metadata": {}},
        {"metadata": {"name": "a"}, "spec": {"cohorts": [{"name": "Bad_Name"}]}},
        {"metadata": {"name": "a"}, "spec": {"checks": [{"type": "nope", "name": "x"}]}},
        {
            "metadata": {"name": "a"},
            "status": {"routing": {"routes": [{"cohort": "x", "candidatePercent": 101}]}},
        },
        {"metadata": {"name": "a"}, "spec": {"release": {"port": 70000}}},
        {"metadata": {"name": "a"}, "spec": {"release": {"port": True}}},
        {"metadata": {"name": "a"}, "spec": {"routing": {"hosts": "x"}}},
        {"metadata": {"name": "a"}, "spec": {"routing": []}},
        {"metadata": {"name": "a"}, "spec": []},
        {"metadata": {"name": "a"}, "spec": {"tracing": {"redact": "x"}}},
    ],
)
def test_unusable_objects_raise_value_error(broken: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        served_from_object(broken)


def test_load_config_text_shapes() -> None:
    import json

    one = json.dumps(OBJ)
    assert len(load_config_text(one)) == 1
    assert len(load_config_text(json.dumps({"kind": "List", "items": [OBJ]}))) == 1
    other = {**OBJ, "metadata": {"namespace": "ns", "name": "other"}}
    assert len(load_config_text(f"{one}\n---\n{json.dumps([other])}")) == 2
    assert load_config_text("") == []
    with pytest.raises(ValueError):
        load_config_text(f"[{one}, {one}]")  # same deployment twice
    with pytest.raises(ValueError):
        load_config_text("a: [")
    with pytest.raises(ValueError):
        load_config_text("- 1")


def test_state_select() -> None:
    app = served_from_object(OBJ)
    other = served_from_object({"metadata": {"namespace": "ns", "name": "other"}})
    state = RouterState()
    assert not state.ready and state.select(None, "/v1", None) is None
    state.update([app])
    assert state.ready
    assert state.select(None, "/v1/x", "anything") == (app, "/v1/x")  # the only one
    state.update([app, other])
    assert state.select(None, "/v1/x", "localhost") is None  # ambiguous
    assert state.select("ns/other", "/v1/x", None) == (other, "/v1/x")
    assert state.select("ns/nope", "/d/ns/app/v1", None) is None  # header wins, unknown
    assert state.select(None, "/d/ns/other/v1/x", None) == (other, "/v1/x")
    assert state.select(None, "/d/ns/other", None) == (other, "/")
    assert state.select(None, "/d/ns", None) is None
    assert state.select(None, "/v1", "chat.example.com:8080") == (app, "/v1")
    assert state.select(None, "/v1", "CHAT.example.com") == (app, "/v1")
    assert state.release("ns", "app", "s1") is not None
    state.update([other])
    assert state.get("ns", "app") is None
    assert state.release("ns", "app", "s1") is not None  # remembered for late feedback


def test_backends() -> None:
    state = RouterState([served_from_object(OBJ)])
    svc = ServiceBackends(8000, state.port_of)
    assert svc.resolve("ns", "app", "c2") == "http://app-c2.ns.svc:9000"
    assert svc.resolve("ns", "unknown", "c2") == "http://unknown-c2.ns.svc:8000"
    static = StaticBackends.from_specs(["ns/app/s1=http://127.0.0.1:8001/"])
    assert static.resolve("ns", "app", "s1") == "http://127.0.0.1:8001"
    assert static.resolve("ns", "app", "c2") is None
    for bad in (
        "ns/app=http://x",
        "ns/app/s1",
        "ns/app/s1=ftp://x",
        "ns/app/s1=http://x/?q=1",
        "ns/app/s1=http://u:p@x",
        "ns//s1=http://x",
    ):
        with pytest.raises(ValueError):
            StaticBackends.from_specs([bad])


def test_backend_file(tmp_path: Path) -> None:
    f = tmp_path / "b.json"
    f.write_text('{"ns/app/s1": "http://127.0.0.1:1"}')
    assert StaticBackends.parse_file(f) == {("ns", "app", "s1"): "http://127.0.0.1:1"}
    f.write_text("ns/app/s1: http://127.0.0.1:2\n")
    assert StaticBackends.parse_file(f) == {("ns", "app", "s1"): "http://127.0.0.1:2"}
    f.write_text("- a\n")
    with pytest.raises(ValueError):
        StaticBackends.parse_file(f)


def test_a_redaction_pattern_that_does_not_compile_redacts_everything(caplog) -> None:
    from llm_rollout.telemetry.genai import ContentPolicy

    served = served_from_object(
        {"metadata": {"name": "a"}, "spec": {"tracing": {"redact": ["(unclosed"]}}}
    )
    shaped = ContentPolicy(capture=True, redactions=served.redactions).shape([("user", "secret")])
    assert "secret" not in shaped and "[REDACTED]" in shaped
    assert "recording no message content" in caplog.text

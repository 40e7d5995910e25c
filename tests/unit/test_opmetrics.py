from __future__ import annotations

from prometheus_client import generate_latest

from llm_rollout.api.status import GateResult, LLMDeploymentStatus, Phase, Verdict
from llm_rollout.controller.settings import OperatorSettings
from llm_rollout.opmetrics import OperatorMetrics
from llm_rollout.routing.table import ReleaseInfo


def status() -> LLMDeploymentStatus:
    return LLMDeploymentStatus(
        phase=Phase.PROGRESSING, stage="beta", stage_index=1, step_percent=50,
        stable=ReleaseInfo(id="aaa"), candidate=ReleaseInfo(id="bbb"),
        gates=[GateResult(name="thumbs", kind="Ratio", verdict=Verdict.FAIL, value=0.55,
                          interval=[0.5, 0.6], samples=400)])


def test_status_becomes_series_and_a_deleted_rollout_leaves_none() -> None:
    m = OperatorMetrics()
    m.observe_status("ns", "bot", status(), {"thumbs": (0.7, None)})
    m.observe_status("ns", "other", status(), {})
    text = generate_latest(m.registry).decode()
    assert 'llm_rollout_phase{deployment="bot",namespace="ns",phase="Progressing"} 1.0' in text
    assert 'llm_rollout_gate_value{deployment="bot",gate="thumbs",namespace="ns",stage="beta"}' \
        ' 0.55' in text
    assert 'bound="min",deployment="bot",gate="thumbs"' in text
    assert 'verdict="Fail"} 1.0' in text
    assert 'llm_rollout_info{candidate="bbb",deployment="bot",namespace="ns",stable="aaa"}' in text

    promoted = status().model_copy(update={"phase": Phase.PROMOTED, "candidate": None,
                                           "stable": ReleaseInfo(id="bbb")})
    m.observe_status("ns", "bot", promoted, {})
    text = generate_latest(m.registry).decode()
    assert 'candidate="bbb",deployment="bot"' not in text  # one info series per rollout
    assert 'candidate="bbb",deployment="other"' in text

    m.forget("ns", "bot")
    text = generate_latest(m.registry).decode()
    assert 'deployment="bot"' not in text and 'deployment="other"' in text


def test_only_configured_prometheus_addresses_are_allowed() -> None:
    s = OperatorSettings(prometheus_url="http://prom:9090/",
                         allowed_prometheus=frozenset({"https://team-prom.example:9090"}))
    assert s.prometheus_allowed("http://prom:9090")
    assert s.prometheus_allowed("https://team-prom.example:9090/")
    assert not s.prometheus_allowed("http://169.254.169.254")
    assert not s.prometheus_allowed("http://prom:9090.evil.example")

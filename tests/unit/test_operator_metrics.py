from __future__ import annotations

from typing import Any

from prometheus_client import generate_latest

from llm_rollout.api.routing_table import ReleaseInfo
from llm_rollout.api.status import GateResult, LLMDeploymentStatus, Phase, Verdict
from llm_rollout.controller.operator_metrics import OperatorMetrics
from llm_rollout.controller.settings import OperatorSettings


def status() -> LLMDeploymentStatus:
    return LLMDeploymentStatus(
        phase=Phase.PROGRESSING,
        stage="beta",
        stage_index=1,
        step_percent=50,
        stable=ReleaseInfo(id="aaa"),
        candidate=ReleaseInfo(id="bbb"),
        gates=[
            GateResult(
                name="thumbs",
                kind="Ratio",
                verdict=Verdict.FAIL,
                value=0.55,
                interval=[0.5, 0.6],
                samples=400,
            )
        ],
    )


def test_status_becomes_series_and_a_deleted_rollout_leaves_none() -> None:
    m = OperatorMetrics()
    m.observe_status("ns", "bot", status(), {"thumbs": (0.7, None)})
    m.observe_status("ns", "other", status(), {})
    text = generate_latest(m.registry).decode()
    assert 'llm_rollout_phase{deployment="bot",namespace="ns",phase="Progressing"} 1.0' in text
    assert (
        'llm_rollout_gate_value{deployment="bot",gate="thumbs",namespace="ns",stage="beta"}'
        " 0.55" in text
    )
    assert 'bound="min",deployment="bot",gate="thumbs"' in text
    assert 'verdict="Fail"} 1.0' in text
    assert 'llm_rollout_info{candidate="bbb",deployment="bot",namespace="ns",stable="aaa"}' in text

    promoted = status().model_copy(
        update={"phase": Phase.PROMOTED, "candidate": None, "stable": ReleaseInfo(id="bbb")}
    )
    m.observe_status("ns", "bot", promoted, {})
    text = generate_latest(m.registry).decode()
    assert 'candidate="bbb",deployment="bot"' not in text  # one info series per rollout
    assert 'candidate="bbb",deployment="other"' in text

    m.forget("ns", "bot")
    text = generate_latest(m.registry).decode()
    assert 'deployment="bot"' not in text and 'deployment="other"' in text


def test_only_configured_prometheus_addresses_are_allowed() -> None:
    s = OperatorSettings(
        prometheus_url="http://prom:9090/",
        allowed_prometheus=frozenset({"https://team-prom.example:9090"}),
    )
    assert s.prometheus_allowed("http://prom:9090")
    assert s.prometheus_allowed("https://team-prom.example:9090/")
    assert not s.prometheus_allowed("http://169.254.169.254")
    assert not s.prometheus_allowed("http://prom:9090.evil.example")


def test_only_the_current_stage_is_exported_and_decisions_start_at_zero() -> None:
    from datetime import UTC, datetime

    from llm_rollout.api.status import Condition, ConditionStatus, ConditionType

    m = OperatorMetrics()
    m.observe_spec(
        "ns",
        "bot",
        {
            "stages": [
                {"name": "experts", "maxDuration": "1h"},
                {"name": "beta", "maxDuration": "2h30m"},
                {"name": "broken", "maxDuration": "soon"},
            ]
        },
    )
    start = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    experts = status().model_copy(
        update={"stage": "experts", "stage_index": 0, "step_start_time": start}
    )
    m.observe_status("ns", "bot", experts, {"thumbs": (0.7, None)})
    text = generate_latest(m.registry).decode()
    assert 'stage="experts"' in text
    assert 'llm_rollout_step_max_duration_seconds{deployment="bot",namespace="ns"} 3600.0' in text
    assert (
        m.registry.get_sample_value(
            "llm_rollout_step_start_time_seconds", {"namespace": "ns", "deployment": "bot"}
        )
        == start.timestamp()
    )
    # every outcome exists at zero before it first happens
    assert (
        'llm_rollout_decisions_total{deployment="bot",namespace="ns",outcome="Rollback"} 0.0'
        in text
    )

    cond = Condition(
        type=ConditionType.METRICS_AVAILABLE,
        status=ConditionStatus.FALSE,
        last_transition_time=start,
    )
    beta = status().model_copy(update={"conditions": [cond]})
    m.observe_status("ns", "bot", beta, {"thumbs": (0.7, None)})
    text = generate_latest(m.registry).decode()
    assert 'stage="experts"' not in text, "the stage left behind is no longer exported"
    assert 'llm_rollout_step_max_duration_seconds{deployment="bot",namespace="ns"} 9000.0' in text
    assert (
        'llm_rollout_condition{condition="MetricsAvailable",deployment="bot",'
        'namespace="ns",status="False"} 1.0'
    ) in text
    assert "llm_rollout_step_start_time_seconds{" not in text  # beta has no start time set

    m.observe_status("ns", "bot", beta.model_copy(update={"gates": [], "stage": "broken"}), {})
    text = generate_latest(m.registry).decode()
    assert "llm_rollout_gate_value{" not in text
    assert "llm_rollout_step_max_duration_seconds{" not in text


def test_the_operator_exports_the_operator_names_of_metrics_names() -> None:
    from prometheus_client import generate_latest

    from llm_rollout.controller.operator_metrics import OperatorMetrics
    from llm_rollout.metrics import names

    text = generate_latest(OperatorMetrics().registry).decode()
    typed = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}
    operator_names = {
        v
        for k, v in vars(names).items()
        if k.isupper() and isinstance(v, str) and v.startswith("llm_rollout_")
    }
    assert operator_names <= typed, operator_names - typed


class _NoScan(dict):  # type: ignore[type-arg]
    """A metric's children that refuse to be listed: a scan of every series fails."""

    def __iter__(self):  # type: ignore[no-untyped-def]
        raise AssertionError("observe_status scanned every series of a metric")

    def keys(self):  # type: ignore[no-untyped-def]
        raise AssertionError("observe_status scanned every series of a metric")

    def items(self):  # type: ignore[no-untyped-def]
        raise AssertionError("observe_status scanned every series of a metric")


def test_observing_one_rollout_does_not_scan_the_others_series() -> None:
    """The cost of one rollout's export must not grow with the number of rollouts."""
    m = OperatorMetrics()
    for i in range(300):
        m.observe_status("ns", f"bot-{i}", status(), {"thumbs": (0.7, None)})
    for metric in vars(m).values():
        if hasattr(metric, "_metrics"):
            metric._metrics = _NoScan(metric._metrics)
    # A stage change and a new release pair: old series of bot-7 must go, others stay.
    moved = status().model_copy(update={"stage": "all", "candidate": ReleaseInfo(id="ccc")})
    m.observe_status("ns", "bot-7", moved, {"thumbs": (0.7, None)})
    for metric in vars(m).values():
        if hasattr(metric, "_metrics"):
            metric._metrics = dict(dict.items(metric._metrics))
    text = generate_latest(m.registry).decode()
    assert (
        'llm_rollout_gate_value{deployment="bot-7",gate="thumbs",namespace="ns",stage="all"}'
        in text
    )
    assert 'deployment="bot-7",gate="thumbs",namespace="ns",stage="beta"' not in text
    assert 'candidate="bbb",deployment="bot-7"' not in text
    assert (
        'llm_rollout_gate_value{deployment="bot-8",gate="thumbs",namespace="ns",stage="beta"}'
        in text
    )


def exposition(text: bytes) -> tuple[set[tuple[str, str]], set[tuple[str, tuple[Any, ...], float]]]:
    """(families with their type, samples) of a /metrics page, parsed as Prometheus does;
    it fails on a family shown twice."""
    from prometheus_client.parser import text_string_to_metric_families

    families: set[tuple[str, str]] = set()
    samples: set[tuple[str, tuple[Any, ...], float]] = set()
    for family in text_string_to_metric_families(text.decode()):
        assert (family.name, family.type) not in families, f"{family.name} shown twice"
        families.add((family.name, family.type))
        for s in family.samples:
            samples.add((s.name, tuple(sorted(s.labels.items())), s.value))
    return families, samples


def test_the_cached_page_says_what_the_registry_says_after_every_kind_of_change() -> None:
    """/metrics renders each rollout's lines when it changes and joins them: the page
    must hold exactly the registry's samples, whatever happened since the last scrape."""
    m = OperatorMetrics()

    def same() -> None:
        assert exposition(m.render()) == exposition(generate_latest(m.registry))

    same()  # no rollout yet: every metric's header, no samples
    m.count_kube_request("GET")
    m.observe_status("ns", "bot", status(), {"thumbs": (0.7, None)})
    m.observe_status("ns", "other", status(), {})
    same()
    m.count_decision("ns", "bot", "Rollback")
    m.count_query_error("ns", "other", "timeout")
    assert (
        b'llm_rollout_decisions_total{deployment="bot",namespace="ns",outcome="Rollback"} 1.0'
        in m.render()
    )
    same()
    # The next stage: its gates replace the last stage's, the release pair changes.
    promoted = status().model_copy(
        update={"phase": Phase.PROMOTED, "candidate": None, "stable": ReleaseInfo(id="bbb"),
                "stage": "all", "gates": []}
    )  # fmt: skip
    m.observe_status("ns", "bot", promoted, {})
    same()
    assert b'candidate="bbb",deployment="bot"' not in m.render()
    m.forget("ns", "bot")
    same()
    assert b'deployment="bot"' not in m.render() and b'deployment="other"' in m.render()
    m.count_query_error("ns", "new", "forbidden")  # a rollout never observed yet
    same()

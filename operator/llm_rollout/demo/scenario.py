"""What the demo runs: its settings (time compressed), its rollouts, the example
LLMDeployment adapted to them, and the result it reports."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llm_rollout import GROUP, VERSION
from llm_rollout.demo.simulator import DEFAULT_LOAD, CohortLoad, SimulatorRecord
from llm_rollout.testbed.bed import REPO_ROOT

NAMESPACE = "demo"
NAME = "assistant"
EXAMPLE = REPO_ROOT / "examples" / "assistant.yaml"
# The eval suite and its golden set come from the evals example.
EVAL_EXAMPLE = REPO_ROOT / "examples" / "translation-assistant.yaml"
JUDGE_KEY = "demo-judge-key"
FINAL = ("Promoted", "RolledBack", "Failed", "Paused", "Invalid")
# The experts stage's eval gate: a composite eval score of at least this passes.
EVAL_QUALITY_MIN = 0.8
# The trace backend's project of every span the demo sends (router, operator, evals).
TRACE_PROJECT = "demo"
# After B'' is rolled back: its bad answers as a golden set, and the suite that uses it.
BAD_ANSWERS = "assistant-bad-answers"
REGRESSION_SUITE = "production-regressions"


@dataclass
class DemoConfig:
    out_dir: Path = REPO_ROOT / "docs" / "img"
    scenario_timeout: float = 300.0
    live: bool = True  # redraw the status table in the terminal
    load: tuple[CohortLoad, ...] = DEFAULT_LOAD
    # Compressed time: seconds where the example says minutes and hours.
    interval: str = "2s"
    window: str = "30s"
    durations: dict[str, tuple[str, str]] = field(
        default_factory=lambda: {
            "experts": ("12s", "120s"),
            "beta": ("6s", "120s"),
            "all": ("6s", "120s"),
        }
    )
    min_samples_divisor: int = 10
    # Compressed time gives a step hundreds of samples, where the example's hours give
    # thousands (docs/statistics.md, sizing): proving an error rate under 2% with zero
    # errors takes ~260 requests, more than a beta step of a few seconds; a Compare
    # margin of 0.03 takes ~10,000 ratings per release, 0.15 a few hundred.
    gate_overrides: dict[str, dict[str, float]] = field(
        default_factory=lambda: {"errors": {"max": 0.05}, "thumbs-vs-stable": {"margin": 0.15}}
    )


@dataclass
class Scenario:
    title: str
    release: str
    expected: str  # final phase expected
    expected_stage: str | None = None
    phase: str = ""
    stage: str = ""
    started: float = 0.0
    ended: float = 0.0
    decisions: list[dict[str, Any]] = field(default_factory=list)
    plot: Path | None = None


@dataclass
class LoopRun:
    """One release evaluated on the golden set made of the regressed release's bad answers."""

    label: str
    release: str
    run: str
    phase: str
    composite: float | None
    passed: int
    total: int

    @property
    def passes(self) -> bool:
        return (
            self.phase == "Succeeded"
            and self.composite is not None
            and self.composite >= EVAL_QUALITY_MIN
        )


@dataclass
class DatasetLoop:
    """Production feedback turned into eval data: the dataset, and how releases do on it."""

    cases: int
    report: str  # what `llm-rollout dataset` said
    path: Path
    runs: list[LoopRun] = field(default_factory=list)


@dataclass
class DemoResult:
    scenarios: list[Scenario]
    record: SimulatorRecord
    releases: dict[str, str]  # label -> release id
    problems: list[str]
    prometheus_feedback: dict[tuple[str, str, str, str], float]
    eval_runs: str = ""  # `kubectl get llmevalruns` at the end
    loop: DatasetLoop | None = None
    traces_url: str = ""  # the trace backend's UI

    @property
    def ok(self) -> bool:
        return not self.problems


def eval_example() -> tuple[dict[str, Any], dict[str, Any]]:
    """The evals example's suite and its golden-set ConfigMap."""
    docs = list(yaml.safe_load_all(EVAL_EXAMPLE.read_text()))
    suite = next(d for d in docs if d["kind"] == "LLMDeployment")["spec"]["evals"][0]
    dataset = next(d for d in docs if d["kind"] == "ConfigMap")
    return suite, dataset


def demo_spec(
    config: DemoConfig,
    *,
    revision: str | None = None,
    prompt: str | None = None,
    judge_url: str = "http://127.0.0.1:8010/v1",
) -> dict[str, Any]:
    """The example LLMDeployment with time compressed, a chosen release, and the evals
    example's suite run at the experts stage against the local judge."""
    spec: dict[str, Any] = copy.deepcopy(yaml.safe_load(EXAMPLE.read_text())["spec"])
    suite, _ = eval_example()
    suite = copy.deepcopy(suite)
    suite.update(compareStable=False, timeout="60s", requestTimeout="10s")
    for judge in suite["judges"]:
        judge["endpoint"] = judge_url
        judge["apiKeySecretRef"] = {"name": "judge-api-key", "key": "token"}
    spec["evals"] = [suite]
    experts = next(st for st in spec["stages"] if st["name"] == "experts")
    experts["gates"].append(
        {
            "name": "eval-quality",
            "kind": "Threshold",
            "metric": "eval-score",
            "suite": suite["name"],
            "criterion": "composite",
            "min": EVAL_QUALITY_MIN,
        }
    )
    release = spec["release"]
    release["replicas"] = 1
    if revision:
        release["model"]["revision"] = revision
    if prompt:
        release["prompt"]["version"] = prompt
    spec["analysis"].update(interval=config.interval, window=config.window)
    for stage in spec["stages"]:
        stage["minDuration"], stage["maxDuration"] = config.durations[stage["name"]]
        for gate in stage.get("gates", []):
            if "minSamples" in gate:
                gate["minSamples"] = max(8, gate["minSamples"] // config.min_samples_divisor)
            gate.update(config.gate_overrides.get(gate["name"], {}))
    return spec


def regression_run(
    name: str, release: str, suite: dict[str, Any], *, model: str, port: int
) -> dict[str, Any]:
    """An LLMEvalRun of the demo's suite on the golden set of the regressed release's bad
    answers, made by hand as a team trying a dataset would (docs/evals.md): the operator
    does not run it, `llm-rollout eval --run` does."""
    regression = copy.deepcopy(suite)
    regression.update(
        name=REGRESSION_SUITE,
        dataset={"configMapRef": {"name": BAD_ANSWERS, "key": "cases.jsonl"}},
        compareStable=False,
    )
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "LLMEvalRun",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "deployment": NAME,
            "release": release,
            "model": model,
            "stage": "experts",
            "port": port,
            "suite": regression,
        },
    }

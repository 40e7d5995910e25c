"""Eval suites in the API, the LLMEvalRun CRD, the objects the operator builds for a run
(the LLMEvalRun, its Job), the local executor's command and the exported metrics."""

from __future__ import annotations

import copy
import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError
from schema_support import apply_defaults, conforms

from llm_rollout import GROUP
from llm_rollout.api import LLMDeploymentSpec
from llm_rollout.api.evalrun import LLMEvalRunSpec, LLMEvalRunStatus
from llm_rollout.engine.evals import EvalRunRequest
from llm_rollout.evals.executor import JobExecutor, LocalExecutor, make_executor
from llm_rollout.evals.manifests import build_eval_job, build_eval_run, job_name
from llm_rollout.evals.metrics import EvalResultsCollector
from llm_rollout.evals.settings import EvalSettings
from llm_rollout.gen import crd as crdgen
from llm_rollout.kube.builders import Owner

SUITE: dict[str, Any] = {
    "name": "golden",
    "dataset": {"configMapRef": {"name": "golden", "key": "cases.jsonl"}},
    "stages": ["experts"],
    "checks": [{"name": "brand", "type": "preservedNames", "names": ["Acme"]}],
    "judges": [
        {
            "name": "accuracy",
            "endpoint": "http://judge/v1",
            "model": "m",
            "rubric": "r",
            "apiKeySecretRef": {"name": "k", "key": "t"},
        }
    ],
}


def spec_with(suite: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    return {"release": {"model": {"name": "m"}}, "evals": [copy.deepcopy(suite or SUITE)], **top}


# --- the API ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s["evals"][0].update(stages=["nope"]), 'undefined stages ["nope"]'),
        (lambda s: s["evals"][0].update(stages=["experts", "experts"]), "stage names must be"),
        (lambda s: s["evals"].append(copy.deepcopy(SUITE)), "eval suite names must be unique"),
        (lambda s: s["evals"][0].update(checks=[], judges=[]), "needs checks or judges"),
        (lambda s: s["evals"][0]["judges"][0].update(name="brand"), "names must differ"),
        (lambda s: s["evals"][0]["judges"][0].update(name="composite"), "reserved"),
        (
            lambda s: s["evals"][0]["judges"][0].update(scale={"min": 5, "max": 5}),
            "scale min must be < max",
        ),
        (lambda s: s["evals"][0]["judges"][0].update(endpoint="judge:80"), "should match pattern"),
        (
            lambda s: s.update(
                stages=[
                    {
                        "name": "experts",
                        "cohorts": ["experts"],
                        "gates": [
                            {
                                "name": "g",
                                "kind": "Threshold",
                                "metric": "eval-score",
                                "suite": "other",
                                "min": 0.5,
                            }
                        ],
                    }
                ]
            ),
            "undefined eval suite other",
        ),
    ],
)
def test_validators_mirror_the_cel_rules(change: Any, message: str) -> None:
    raw = spec_with()
    change(raw)
    with pytest.raises(ValidationError, match=re.escape(message)):
        LLMDeploymentSpec.model_validate(raw)


def test_a_gate_may_name_a_suite_without_spec_evals_for_external_eval_pipelines() -> None:
    raw = {
        "release": {"model": {"name": "m"}},
        "stages": [
            {
                "name": "s",
                "cohorts": ["everyone"],
                "gates": [
                    {
                        "name": "g",
                        "kind": "Threshold",
                        "metric": "eval-score",
                        "suite": "from-elsewhere",
                        "min": 0.5,
                    }
                ],
            }
        ],
    }
    assert LLMDeploymentSpec.model_validate(raw).evals == []


def test_suites_at_a_stage_and_defaults() -> None:
    spec = LLMDeploymentSpec.model_validate(spec_with())
    (suite,) = spec.suites_at("experts")
    assert spec.suites_at("beta") == []
    assert (
        suite.sample,
        suite.timeout_seconds,
        suite.request_timeout_seconds,
        suite.concurrency,
        suite.pass_threshold,
        suite.max_invalid_ratio,
    ) == (0, 900, 60, 4, 0.75, 0.5)
    assert suite.criteria() == ["brand", "accuracy"]


def test_crd_rules_and_defaults_for_evals() -> None:
    root = crdgen.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    messages = {r["message"] for r in root["x-kubernetes-validations"]}
    assert "every stage of an eval suite must be defined in spec.stages" in messages
    assert "every eval suite an eval-score gate names must be defined in spec.evals" in messages
    raw = spec_with()
    defaulted = apply_defaults(root, raw)
    assert LLMDeploymentSpec.model_validate(defaulted) == LLMDeploymentSpec.model_validate(raw)
    assert conforms(root, defaulted, ".spec") == []


def test_the_llmevalrun_crd() -> None:
    crd = crdgen.eval_run_crd()
    assert crd["metadata"]["name"] == f"llmevalruns.{GROUP}"
    names = crd["spec"]["names"]
    assert (names["kind"], names["plural"], names["shortNames"]) == (
        "LLMEvalRun",
        "llmevalruns",
        ["llmeval"],
    )
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")]
    assert columns == ["Deployment", "Release", "Suite", "Stage", "Phase", "Score", "Age"]
    assert crdgen.EVAL_RUN_CRD_PATH.read_text() == crdgen.eval_run_crd_yaml(), "make crds"
    docs = list(yaml.safe_load_all(crdgen.all_crds_yaml()))
    assert [d["spec"]["names"]["kind"] for d in docs] == ["LLMDeployment", "LLMEvalRun"]


# --- the objects -------------------------------------------------------------------------

OWNER = Owner("team", "bot", "uid-1")


def request(name: str = "bot-abc-experts-golden-1") -> EvalRunRequest:
    suite = LLMDeploymentSpec.model_validate(spec_with()).evals[0]
    return EvalRunRequest(
        name=name,
        suite=suite,
        stage="experts",
        release="abc",
        model="m",
        attempt=1,
        stable_release="def",
    )


def run_object(name: str = "bot-abc-experts-golden-1") -> dict[str, Any]:
    manifest = build_eval_run(OWNER, request(name), port=9000)
    return manifest | {"metadata": manifest["metadata"] | {"uid": "run-uid"}}


def test_the_eval_run_object() -> None:
    run = build_eval_run(OWNER, request(), port=9000)
    assert (run["apiVersion"], run["kind"]) == (f"{GROUP}/v1alpha1", "LLMEvalRun")
    meta = run["metadata"]
    assert (meta["name"], meta["namespace"]) == ("bot-abc-experts-golden-1", "team")
    assert meta["ownerReferences"][0]["kind"] == "LLMDeployment"
    assert meta["ownerReferences"][0]["controller"] is True
    assert meta["labels"][f"{GROUP}/deployment"] == "bot"
    assert meta["labels"][f"{GROUP}/suite"] == "golden"
    spec = LLMEvalRunSpec.model_validate(run["spec"])
    assert (spec.deployment, spec.release, spec.stable_release, spec.port, spec.model) == (
        "bot",
        "abc",
        "def",
        9000,
        "m",
    )
    assert spec.suite.name == "golden" and spec.suite.judges[0].name == "accuracy"
    schema = crdgen.eval_run_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert conforms(schema["properties"]["spec"], run["spec"], ".spec") == []


def test_the_job() -> None:
    settings = EvalSettings(image="img:1", service_account="evals", memory_limit="1Gi")
    job = build_eval_job(run_object(), settings)
    assert job["metadata"]["name"] == "bot-abc-experts-golden-1"
    owner = job["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "LLMEvalRun",
        "bot-abc-experts-golden-1",
        "run-uid",
    )
    spec = job["spec"]
    assert spec["backoffLimit"] == 1 and spec["activeDeadlineSeconds"] == 900 + 60
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["serviceAccountName"] == "evals"
    (container,) = pod["containers"]
    assert container["image"] == "img:1"
    assert container["command"] == ["llm-rollout", "eval", "--run", "team/bot-abc-experts-golden-1"]
    assert container["resources"]["limits"] == {"memory": "1Gi"}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {
        "name": "LLM_ROLLOUT_EVAL_EXECUTOR",
        "value": "job/bot-abc-experts-golden-1",
    } in container["env"]
    assert spec["template"]["metadata"]["labels"] == job["metadata"]["labels"]


def test_long_run_names_make_short_job_names_and_label_values() -> None:
    long = "bot-" + "x" * 120 + "-experts-golden-1"
    job = build_eval_job(run_object(long), EvalSettings())
    name = job["metadata"]["name"]
    assert len(name) <= 63 and name == job_name(long) != job_name(long + "0")
    assert all(len(v) <= 63 for v in job["metadata"]["labels"].values())
    assert job["spec"]["template"]["spec"]["containers"][0]["command"][-1] == f"team/{long}"


def test_executors() -> None:
    settings = EvalSettings(
        executor="local",
        python="/py",
        kubeconfig="/kc",
        backends=("team/bot/abc=http://127.0.0.1:1",),
        backend_file="/b.yaml",
    )
    local = make_executor(None, settings)  # type: ignore[arg-type]
    assert isinstance(local, LocalExecutor)
    assert local.argv("team", "run-1") == [
        "/py",
        "-m",
        "llm_rollout.cli",
        "eval",
        "--run",
        "team/run-1",
        "--kubeconfig",
        "/kc",
        "--backend",
        "team/bot/abc=http://127.0.0.1:1",
        "--backend-file",
        "/b.yaml",
    ]
    assert isinstance(make_executor(None, EvalSettings()), JobExecutor)  # type: ignore[arg-type]


def test_operator_flags() -> None:
    from llm_rollout.cli import build_parser
    from llm_rollout.controller.main import settings_from_args

    args = build_parser().parse_args(
        [
            "operator",
            "--kubeconfig",
            "/kc",
            "--eval-executor",
            "local",
            "--eval-backend-file",
            "/b.json",
            "--eval-backend",
            "a/b/c=http://x:1",
            "--eval-image",
            "img:2",
        ]
    )
    evals = settings_from_args(args).evals
    assert (evals.executor, evals.kubeconfig, evals.backend_file, evals.backends, evals.image) == (
        "local",
        "/kc",
        "/b.json",
        ("a/b/c=http://x:1",),
        "img:2",
    )
    assert settings_from_args(build_parser().parse_args(["operator"])).evals.executor == "job"


def test_runs_trace_where_the_operator_does_or_not_at_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from llm_rollout.cli import build_parser
    from llm_rollout.controller.main import settings_from_args

    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    off = settings_from_args(build_parser().parse_args(["operator"])).evals
    assert off.tracing is None
    assert not [e for e in build_eval_job(run_object(), off)["spec"]["template"]["spec"][
        "containers"][0]["env"] if e["name"].startswith("OTEL_")]  # fmt: skip
    assert "--otlp-endpoint" not in LocalExecutor(replace(off, executor="local")).argv("t", "r")

    argv = [
        "operator",
        "--otlp-endpoint",
        "http://c:4318/v1/traces",
        "--trace-sample-ratio",
        "0.25",
    ]
    on = settings_from_args(build_parser().parse_args(argv)).evals
    env = build_eval_job(run_object(), on)["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "value": "http://c:4318/v1/traces"} in env
    assert {"name": "OTEL_TRACES_SAMPLER_ARG", "value": "0.25"} in env
    assert LocalExecutor(replace(on, executor="local")).argv("t", "r")[-4:] == [
        "--otlp-endpoint",
        "http://c:4318/v1/traces",
        "--trace-sample-ratio",
        "0.25",
    ]


# --- exported metrics --------------------------------------------------------------------


def finished(
    release: str,
    phase: str,
    *,
    composite: float | None,
    completed: str,
    stable: str | None = None,
    suite: str = "golden",
) -> dict[str, Any]:
    def result(rel: str, score: float | None) -> dict[str, Any]:
        return {
            "release": rel,
            "cases": {"total": 4, "pass": 3, "fail": 1},
            "criteria": [{"name": "accuracy", "kind": "judge", "score": score, "count": 4}],
            "composite": score,
        }

    run = run_object()
    run["spec"]["release"] = release
    run["spec"]["suite"]["name"] = suite
    run["status"] = {
        "phase": phase,
        "completionTime": completed,
        "candidate": result(release, composite),
        "composite": composite,
    }
    if stable:
        run["status"]["stable"] = result(stable, 0.5)
    return run


def label_set(base: dict[str, str], **labels: str) -> frozenset[tuple[str, str]]:
    return frozenset((base | labels).items())


def exported(registry: CollectorRegistry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_export_the_latest_succeeded_run_and_nothing_of_failed_ones() -> None:
    registry = CollectorRegistry()
    collector = EvalResultsCollector(registry)
    collector.update(
        "team",
        "bot",
        [
            finished("r1", "Succeeded", composite=0.6, completed="2026-01-01T10:00:00Z"),
            finished(
                "r1", "Succeeded", composite=0.9, completed="2026-01-01T11:00:00Z", stable="r0"
            ),
            finished("r2", "Failed", composite=0.1, completed="2026-01-01T12:00:00Z"),
            run_object(),  # not finished: skipped
        ],
    )
    samples = exported(registry)
    base = {"namespace": "team", "deployment": "bot", "suite": "golden"}
    assert samples[("llm_eval_score", label_set(base, release="r1", criterion="composite"))] == 0.9
    assert samples[("llm_eval_score", label_set(base, release="r0", criterion="accuracy"))] == 0.5
    assert not any(dict(labels).get("release") == "r2" for _name, labels in samples)
    assert samples[("llm_eval_cases_total", label_set(base, release="r1", result="pass"))] == 6
    assert samples[("llm_eval_runs_total", label_set(base, phase="Failed"))] == 1
    assert samples[("llm_eval_runs_total", label_set(base, phase="Succeeded"))] == 2
    collector.forget("team", "bot")
    assert not any(name == "llm_eval_score" for name, _labels in exported(registry))


def test_run_status_reads_what_the_runner_writes() -> None:
    status = LLMEvalRunStatus.from_object(
        {"phase": "Succeeded", "kopf": {"x": 1}, "completionTime": "2026-01-01T10:00:00Z"}
    )
    assert status.finished and status.completion_time == datetime(2026, 1, 1, 10, tzinfo=UTC)

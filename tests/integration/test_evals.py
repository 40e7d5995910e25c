"""The evaluation pipeline on the real bed: eval suites run when a stage starts, as
LLMEvalRun objects executed by the operator's local executor (the bed has no
kubelet), against two simulated OpenAI-compatible releases (a good and a regressed
translation assistant) and a deterministic simulated judge, all real processes on
free ports. Results are exported by the operator, scraped by the real Prometheus
and read back by `eval-score` gates. The Job executor's manifests go to the real
API server (nothing runs them)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from tests.conftest import Cluster, Prometheus
from tests.integration.support import OperatorProcess, Rollouts, running_operator, wait_for
from tests.integration.test_operator_tracing import named, otel_env

from llm_rollout import GROUP, VERSION
from llm_rollout.api import LLMDeploymentSpec, release_id
from llm_rollout.sim.toylang import BRANDS, GLOSSARY, SAMPLE_SENTENCES, translate
from llm_rollout.telemetry.genai import CAPTURE_CONTENT_ENV
from llm_rollout.testbed.kubelet import KubeletStandIn
from llm_rollout.testbed.procs import free_port, spawn, stop_pid
from llm_rollout.testbed.traces import TraceBackend

TERMINOLOGY = (
    "Score whether the glossary terms are translated as the glossary requires "
    "and brand names are kept verbatim."
)
ACCURACY = "Score how accurately the answer translates the question into German."


def case_line(index: int, sentence: str) -> str:
    return json.dumps(
        {
            "id": f"case-{index}",
            "tags": ["billing"],
            "messages": [{"role": "user", "content": f"Translate into German: {sentence}"}],
            "reference": translate(sentence),
        },
        ensure_ascii=False,
    )


GOLDEN = "\n".join(case_line(i, s) for i, s in enumerate(SAMPLE_SENTENCES)) + "\n"


class SimServer:
    """`python -m llm_rollout.sim.<module>` on a free port, until stopped."""

    def __init__(self, module: str, log_dir: Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        log = log_dir / f"{module}-{self.port}.log"
        self.proc = spawn(
            [
                sys.executable,
                "-m",
                f"llm_rollout.sim.{module}",
                "--listen",
                f"127.0.0.1:{self.port}",
                *args,
            ],
            log,
            tied_to_parent=True,
        )
        wait_for(
            self._healthy,
            timeout=20,
            what=f"{module} on {self.url}",
            describe=lambda: log.read_text(errors="replace"),
        )

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as resp:
                return int(resp.status) == 200
        except OSError:
            return False

    def stop(self) -> None:
        stop_pid(self.proc.pid)


@pytest.fixture(scope="module")
def sims(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """URLs of the good and regressed releases and of the judge (+ a dead endpoint)."""
    logs = tmp_path_factory.mktemp("sims")
    servers = {
        "good": SimServer("model_server", logs, "--profile", "good"),
        "regressed": SimServer("model_server", logs, "--profile", "regressed"),
        "judge": SimServer("judge", logs),
    }
    try:
        yield {name: s.url for name, s in servers.items()} | {
            "dead": f"http://127.0.0.1:{free_port()}"
        }
    finally:
        for server in servers.values():
            server.stop()


def judge(
    name: str, rubric: str, url: str, model: str = "sim-judge", **extra: Any
) -> dict[str, Any]:
    return {
        "name": name,
        "endpoint": f"{url}/v1",
        "model": model,
        "rubric": rubric,
        "scale": {"min": 1, "max": 5},
        **extra,
    }


def suite(sims: dict[str, str], **overrides: Any) -> dict[str, Any]:
    terms = ("invoice", "account", "report", "security key", "billing dashboard")
    return {
        "name": "translation",
        "dataset": {"configMapRef": {"name": "golden", "key": "cases.jsonl"}},
        "stages": ["experts"],
        "checks": [
            {"name": "brand-names", "type": "preservedNames", "names": list(BRANDS)},
            {"name": "glossary", "type": "glossary", "glossary": {t: GLOSSARY[t] for t in terms}},
        ],
        "judges": [
            judge("accuracy", ACCURACY, sims["judge"]),
            judge("terminology", TERMINOLOGY, sims["judge"], weight=2),
        ],
        "timeout": "60s",
        "requestTimeout": "5s",
        **overrides,
    }


EVAL_GATES = [
    {
        "name": "terminology",
        "kind": "Threshold",
        "metric": "eval-score",
        "suite": "translation",
        "criterion": "terminology",
        "min": 0.8,
    },
    {
        "name": "overall",
        "kind": "Threshold",
        "metric": "eval-score",
        "suite": "translation",
        "criterion": "composite",
        "min": 0.8,
    },
]


def spec(
    revision: str,
    sims: dict[str, str],
    *,
    suite_overrides: dict[str, Any] | None = None,
    gates: list[dict[str, Any]] | None = None,
    analysis: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "release": {
            "model": {"name": "acme-translate", "revision": revision},
            "template": {"spec": {"containers": [{"name": "app", "image": "app:1"}]}},
        },
        "analysis": {
            "interval": "1s",
            "window": "60s",
            "failureLimit": 2,
            "errorLimit": 3,
            **(analysis or {}),
        },
        "evals": [suite(sims, **(suite_overrides or {}))],
        "stages": [
            {
                "name": "experts",
                "cohorts": ["experts"],
                "minDuration": "1s",
                "maxDuration": "120s",
                "gates": EVAL_GATES if gates is None else gates,
            },
            {"name": "beta", "cohorts": ["beta"], "minDuration": "1s"},
            {"name": "all", "cohorts": ["everyone"], "minDuration": "1s"},
        ],
    }


def rid(body: dict[str, Any]) -> str:
    return release_id(LLMDeploymentSpec.model_validate(body))


def obj(name: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "LLMDeployment",
        "metadata": {"name": name},
        "spec": body,
    }


class Bench:
    """One test's namespace: the dataset, the release URLs, the operator."""

    def __init__(
        self,
        cluster: Cluster,
        namespace: str,
        sims: dict[str, str],
        rollouts: Rollouts,
        tmp_path: Path,
    ) -> None:
        self.cluster, self.namespace, self.sims, self.rollouts = (
            cluster,
            namespace,
            sims,
            rollouts,
        )
        self.core = client.CoreV1Api(cluster.api_client)
        self.custom = client.CustomObjectsApi(cluster.api_client)
        self.backend_file = tmp_path / "backends.json"
        self.backend_file.write_text("{}")
        self.dataset(GOLDEN)

    def dataset(self, text: str, name: str = "golden") -> None:
        body = client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=name), data={"cases.jsonl": text}
        )
        try:
            self.core.create_namespaced_config_map(self.namespace, body)
        except client.ApiException:
            self.core.replace_namespaced_config_map(name, self.namespace, body)

    def serve(self, body: dict[str, Any], server: str) -> str:
        """Route the release of `body` to a sim server (the backend file); its id."""
        release = rid(body)
        backends = json.loads(self.backend_file.read_text())
        backends[f"{self.namespace}/bot/{release}"] = self.sims[server]
        self.backend_file.write_text(json.dumps(backends))
        return release

    def runs(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "llmevalruns"
        )["items"]
        return items

    def run(self, release: str) -> dict[str, Any] | None:
        return next((r for r in self.runs() if r["spec"]["release"] == release), None)

    def run_phase(self, release: str) -> str | None:
        run = self.run(release)
        return ((run or {}).get("status") or {}).get("phase")

    def start_stable(self, body: dict[str, Any]) -> str:
        release = self.serve(body, "good")
        self.rollouts.create(obj("bot", body))
        wait_for(
            lambda: self.rollouts.status("bot").get("phase") == "Promoted",
            what="first release promoted",
            describe=lambda: self.rollouts.describe("bot"),
        )
        return release

    def roll_back_regressed(self, op: OperatorProcess | None = None) -> tuple[str, str]:
        """A good stable, then a regressed candidate, until it is rolled back: their ids."""
        stable = self.start_stable(spec("v1", self.sims))
        v3 = spec("v3-regressed", self.sims)
        bad = self.serve(v3, "regressed")
        self.rollouts.patch("bot", {"spec": v3})
        wait_for(
            lambda: self.rollouts.status("bot").get("phase") == "RolledBack",
            timeout=90,
            what="the regressed release rolled back",
            describe=lambda: self.describe() + (op.log_tail(60) if op else ""),
        )
        return stable, bad

    def describe(self) -> str:
        runs = [(r["metadata"]["name"], r.get("status")) for r in self.runs()]
        return self.rollouts.describe("bot") + "\nruns: " + json.dumps(runs, indent=1)[:4000]


@pytest.fixture
def bench(
    cluster: Cluster, namespace: str, sims: dict[str, str], rollouts: Rollouts, tmp_path: Path
) -> Bench:
    cluster.kubectl(
        "wait", "--for", "condition=established", "--timeout", "60s", f"crd/llmevalruns.{GROUP}"
    )
    return Bench(cluster, namespace, sims, rollouts, tmp_path)


@pytest.fixture
def eval_operator(
    cluster: Cluster,
    prometheus: Prometheus,
    crd: None,
    namespace: str,
    bench: Bench,
    kubelet: KubeletStandIn,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[OperatorProcess]:
    """The operator with the local eval executor, scraped by the bed's Prometheus."""
    with scraped_eval_operator(cluster, prometheus, namespace, bench, tmp_path) as op:
        try:
            yield op
        finally:
            failed = getattr(request.node, "rep_call", None)
            if failed is not None and failed.failed:
                print(f"--- operator log ---\n{op.log_tail(120)}")


@contextlib.contextmanager
def scraped_eval_operator(
    cluster: Cluster,
    prometheus: Prometheus,
    namespace: str,
    bench: Bench,
    tmp_path: Path,
    env: dict[str, str] | None = None,
) -> Iterator[OperatorProcess]:
    extra = ["--eval-executor", "local", "--eval-backend-file", str(bench.backend_file)]
    with running_operator(cluster, prometheus, namespace, tmp_path, extra, env) as op:
        target = f"operator-{namespace}"
        prometheus.add_target(target, f"127.0.0.1:{op.metrics_port}")
        try:
            yield op
        finally:
            prometheus.remove_target(target)


def operator_metrics(op: OperatorProcess) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{op.metrics_port}/metrics", timeout=5) as resp:
        return str(resp.read().decode())


def history(rollouts: Rollouts) -> list[tuple[str, str, str]]:
    return [
        (h["decision"], h.get("stage", ""), h.get("reason", ""))
        for h in rollouts.status("bot").get("history", [])
    ]


def conditions(rollouts: Rollouts) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in rollouts.status("bot").get("conditions", [])}


# --- good and regressed releases -----------------------------------------------------


def test_good_release_passes_its_eval_gates_and_is_promoted(
    bench: Bench,
    eval_operator: OperatorProcess,
    prometheus: Prometheus,
    cluster: Cluster,
    namespace: str,
) -> None:
    bench.start_stable(spec("v1", bench.sims))
    v2 = spec("v2", bench.sims)
    good = bench.serve(v2, "good")
    bench.rollouts.patch("bot", {"spec": v2})

    wait_for(
        lambda: (
            bench.rollouts.status("bot").get("phase") == "Promoted"
            and bench.rollouts.status("bot")["stable"]["id"] == good
        ),
        timeout=90,
        what="the good release promoted",
        describe=bench.describe,
    )

    (run,) = bench.runs()
    assert run["metadata"]["name"] == f"bot-{good}-experts-translation-1"
    assert run["metadata"]["ownerReferences"][0]["kind"] == "LLMDeployment"
    status = run["status"]
    assert status["phase"] == "Succeeded", status
    assert status["composite"] == 1.0
    assert status["startTime"] <= status["completionTime"]
    result = status["candidate"]
    assert result["cases"] == {"total": 10, "pass": 10, "fail": 0, "invalid": 0, "error": 0}
    criteria = {c["name"]: c for c in result["criteria"]}
    assert set(criteria) == {"brand-names", "glossary", "accuracy", "terminology"}
    assert criteria["terminology"] == criteria["terminology"] | {
        "kind": "judge",
        "score": 1.0,
        "mean": 5.0,
        "passRate": 1.0,
        "count": 10,
        "invalid": 0,
    }
    # the experts stage waited for the suite before advancing (the first analysis comes
    # an interval into the step: the suite may be running then, or already done)
    decisions = history(bench.rollouts)
    assert [d for d in decisions if d[0] == "Advance"][1][1] == "beta"
    to_beta = next(
        h
        for h in bench.rollouts.status("bot")["history"]
        if h["decision"] == "Advance" and h.get("stage") == "beta"
    )
    assert datetime.fromisoformat(to_beta["time"]) >= datetime.fromisoformat(
        status["completionTime"]
    )
    assert conditions(bench.rollouts)["EvalsSucceeded"]["status"] == "True"

    table = cluster.kubectl("get", "llmevalruns", "-n", namespace).stdout
    header, row = table.splitlines()[:2]
    assert header.split() == [
        "NAME",
        "DEPLOYMENT",
        "RELEASE",
        "SUITE",
        "STAGE",
        "PHASE",
        "SCORE",
        "AGE",
    ]
    assert row.split()[1:7] == ["bot", good, "translation", "experts", "Succeeded", "1"]

    # the scores are in the real Prometheus, as gates read them
    selector = f'namespace="{namespace}",deployment="bot",release="{good}",suite="translation"'
    assert prometheus.wait_value(f'llm_eval_score{{{selector},criterion="composite"}}') == 1.0
    assert prometheus.wait_value(f'llm_eval_cases_total{{{selector},result="pass"}}') == 10.0


def test_regressed_release_fails_its_eval_gates_and_is_rolled_back_at_experts(
    bench: Bench, eval_operator: OperatorProcess, prometheus: Prometheus, namespace: str
) -> None:
    stable, bad = bench.roll_back_regressed()
    status = bench.rollouts.status("bot")
    assert status["stable"]["id"] == stable and status["stage"] == "experts"
    assert {stage for _, stage, _ in history(bench.rollouts) if stage} == {"experts"}
    gates = {g["name"]: g for g in status["gates"]}
    assert gates["terminology"]["verdict"] == "Fail"
    assert gates["terminology"]["value"] < 0.8
    assert all(r["candidatePercent"] == 0 for r in status["routing"]["routes"])

    run = bench.run(bad)
    assert run is not None and run["status"]["phase"] == "Succeeded"
    result = run["status"]["candidate"]
    criteria = {c["name"]: c for c in result["criteria"]}
    assert criteria["brand-names"]["passRate"] < 1 and criteria["glossary"]["passRate"] < 1
    assert criteria["terminology"]["score"] < 0.8
    assert result["cases"]["fail"] > 0
    failures = run["status"]["failures"]
    assert failures and failures[0]["release"] == bad and failures[0]["result"] == "fail"
    value = prometheus.wait_value(
        f'llm_eval_score{{namespace="{namespace}",release="{bad}",criterion="terminology"}}'
    )
    assert value == criteria["terminology"]["score"]


def test_the_eval_run_and_its_judged_cases_are_in_the_rollouts_trace(
    bench: Bench,
    cluster: Cluster,
    prometheus: Prometheus,
    crd: None,
    namespace: str,
    kubelet: KubeletStandIn,
    tmp_path: Path,
    trace_backend: TraceBackend,
) -> None:
    """Configured only by OTEL_*, the operator hands tracing to the runs it starts: in the
    real trace backend, the regressed release's rollback trace holds the eval run, a span
    per golden-set case, and on each case its judges' scores and checks as evaluations."""
    project = f"evals-{uuid.uuid4().hex[:10]}"
    env = otel_env(trace_backend.url, project) | {CAPTURE_CONTENT_ENV: "true"}
    with scraped_eval_operator(cluster, prometheus, namespace, bench, tmp_path, env) as op:
        _, bad = bench.roll_back_regressed(op)
        run = bench.run(bad)
        assert run is not None
        total = run["status"]["candidate"]["cases"]["total"]
        failed_cases = {f["case"] for f in run["status"]["failures"] if f["result"] == "fail"}
    spans = trace_backend.wait_spans(project, 2 + total, timeout=30)
    [root] = named(spans, f"rollout {bad}")
    [evaluation] = named(spans, "eval translation")
    assert evaluation["context"]["trace_id"] == root["context"]["trace_id"]
    assert evaluation["parent_id"] == root["context"]["span_id"]
    assert evaluation["attributes"]["llm_rollout.eval.run"] == run["metadata"]["name"]
    assert evaluation["attributes"]["llm_rollout.eval.phase"] == "Succeeded"
    cases = [
        s for s in named(spans, "eval case ") if s["parent_id"] == evaluation["context"]["span_id"]
    ]
    assert len(cases) == total
    results = {}
    for case in cases:
        attrs = case["attributes"]
        assert attrs["llm_rollout.release.id"] == bad
        assert "Translate into German" in attrs["gen_ai.input.messages"]
        events = {
            e["attributes"]["gen_ai.evaluation.name"]: e["attributes"]
            for e in case["events"]
            if e["name"] == "gen_ai.evaluation.result"
        }
        assert set(events) == {"brand-names", "glossary", "accuracy", "terminology"}
        assert events["terminology"]["llm_rollout.evaluation.source"] == "judge"
        assert events["brand-names"]["llm_rollout.evaluation.source"] == "heuristic"
        results[attrs["llm_rollout.eval.case"]] = attrs["llm_rollout.eval.case.result"], events
    failing = {cid for cid, (result, _) in results.items() if result == "fail"}
    assert failing and failing >= failed_cases  # status shows the first few failures
    some_fail = next(iter(failing))
    labels = {name: e["gen_ai.evaluation.score.label"] for name, e in results[some_fail][1].items()}
    assert "fail" in labels.values()


# --- bad input -------------------------------------------------------------------------

BAD_LINES = {
    "not-json": ('{"id": "broken", "messages": [', "dataset line 3: not valid JSON"),
    "no-messages": (
        '{"id": "lonely", "reference": "x"}',
        "dataset line 3: missing required field 'messages'",
    ),
}


@pytest.mark.parametrize("kind", list(BAD_LINES))
def test_a_bad_dataset_line_fails_the_run_with_its_line_number(
    bench: Bench, eval_operator: OperatorProcess, kind: str
) -> None:
    line, message = BAD_LINES[kind]
    lines = GOLDEN.splitlines()
    bench.dataset("\n".join([*lines[:2], line, *lines[2:]]) + "\n")
    bench.start_stable(spec("v1", bench.sims))
    v2 = spec("v2", bench.sims)
    release = bench.serve(v2, "good")
    bench.rollouts.patch("bot", {"spec": v2})

    wait_for(
        lambda: bench.run_phase(release) == "Failed",
        timeout=60,
        what="the run failed",
        describe=bench.describe,
    )
    run = bench.run(release)
    assert run is not None
    assert run["status"]["reason"] == "InvalidDataset"
    assert message in run["status"]["message"]
    # the rollout holds on the failed run (a gate Error), then pauses at errorLimit
    wait_for(
        lambda: bench.rollouts.status("bot").get("phase") == "Paused",
        timeout=60,
        what="paused after errorLimit",
        describe=bench.describe,
    )
    cond = conditions(bench.rollouts)["EvalsSucceeded"]
    assert cond["status"] == "False" and cond["reason"] == "InvalidDataset"
    assert message in cond["message"]
    assert message in bench.rollouts.status("bot")["message"]
    assert ("Hold", "experts", "EvalFailed") in history(bench.rollouts)
    # nothing is exported for the failed run
    exported = operator_metrics(eval_operator)
    assert f'release="{release}"' not in exported
    assert "llm_eval_runs_total{" in exported and 'phase="Failed"' in exported


def test_judge_failures_are_counted_and_shown_never_passed(
    bench: Bench, eval_operator: OperatorProcess
) -> None:
    sims = bench.sims
    judges = [
        judge("accuracy", ACCURACY, sims["judge"]),
        judge("garbage", ACCURACY, sims["judge"], model="sim-judge+garbage", weight=0),
        judge("forbidden", ACCURACY, sims["judge"], model="sim-judge+status-401", weight=0),
        judge("unreachable", ACCURACY, sims["dead"], weight=0),
        judge("too-high", ACCURACY, sims["judge"], model="sim-judge+out-of-scale", weight=0),
        judge("fenced", ACCURACY, sims["judge"], model="sim-judge+fenced"),
    ]
    overrides = {"judges": judges, "maxInvalidRatio": 1.0, "concurrency": 8}
    bench.start_stable(spec("v1", bench.sims, suite_overrides=overrides))
    v2 = spec(
        "v2",
        bench.sims,
        suite_overrides=overrides,
        gates=[EVAL_GATES[1] | {"criterion": "accuracy"}],
    )
    release = bench.serve(v2, "good")
    bench.rollouts.patch("bot", {"spec": v2})

    wait_for(
        lambda: bench.run_phase(release) == "Succeeded",
        timeout=60,
        what="the run finished",
        describe=bench.describe,
    )
    run = bench.run(release)
    assert run is not None
    criteria = {c["name"]: c for c in run["status"]["candidate"]["criteria"]}
    expected = {
        "garbage": "malformed",
        "forbidden": "http_401",
        "unreachable": "unreachable",
        "too-high": "out_of_scale",
    }
    for name, reason in expected.items():
        c = criteria[name]
        assert (c["count"], c["invalid"], c["invalidReasons"]) == (0, 10, {reason: 10}), c
        assert c.get("score") is None and c["passRate"] == 0
        assert c["lastError"].startswith(reason)
    assert "simulated HTTP 401" in criteria["forbidden"]["lastError"]
    # a fenced JSON answer is a valid one
    assert criteria["fenced"]["count"] == 10 and criteria["fenced"]["score"] == 1.0
    cases = run["status"]["candidate"]["cases"]
    assert cases["invalid"] == 10 and cases["pass"] == 0, "an invalid score is never a pass"
    # the composite weighs only valid judges (the broken ones have weight 0)
    assert run["status"]["composite"] == 1.0
    wait_for(
        lambda: bench.rollouts.status("bot").get("phase") == "Promoted",
        timeout=60,
        what="promoted on the accuracy gate",
        describe=bench.describe,
    )


def test_a_missing_judge_secret_is_a_condition_until_it_exists(
    bench: Bench, eval_operator: OperatorProcess, namespace: str
) -> None:
    keyed = [
        judge(
            "accuracy",
            ACCURACY,
            bench.sims["judge"],
            apiKeySecretRef={"name": "judge-key", "key": "token"},
        )
    ]
    overrides = {"judges": keyed}
    bench.start_stable(spec("v1", bench.sims, suite_overrides=overrides))
    v2 = spec(
        "v2",
        bench.sims,
        suite_overrides=overrides,
        analysis={"errorLimit": 100},
        gates=[EVAL_GATES[1]],
    )
    bench.serve(v2, "good")
    bench.rollouts.patch("bot", {"spec": v2})

    def secret_condition() -> dict[str, Any] | None:
        cond = conditions(bench.rollouts).get("EvalsSucceeded")
        return cond if cond and cond["reason"] == "SecretMissing" else None

    cond = wait_for(
        secret_condition,
        timeout=30,
        what="EvalsSucceeded=False SecretMissing",
        describe=bench.describe,
    )
    assert cond["status"] == "False"
    assert f"judge accuracy: API-key Secret {namespace}/judge-key not found" in cond["message"]
    assert bench.runs() == [], "no run is created without its Secret"

    bench.core.create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="judge-key"), string_data={"token": "s3cret"}
        ),
    )
    wait_for(
        lambda: bench.rollouts.status("bot").get("phase") == "Promoted",
        timeout=60,
        what="promoted once the Secret exists",
        describe=bench.describe,
    )
    assert conditions(bench.rollouts)["EvalsSucceeded"]["status"] == "True"


def test_admission_rejects_undefined_suites_and_stages(
    bench: Bench, cluster: Cluster, namespace: str
) -> None:
    bad = spec("v1", bench.sims, gates=[EVAL_GATES[0] | {"suite": "no-such-suite"}])
    bad["evals"][0]["stages"] = ["experts", "no-such-stage"]
    bad["evals"][0]["judges"][1]["name"] = "glossary"  # clashes with a check
    result = cluster.kubectl(
        "apply", "-n", namespace, "-f", "-", input=json.dumps(obj("bad", bad)), check=False
    )
    assert result.returncode != 0
    for message in (
        "every eval suite an eval-score gate names must be defined in spec.evals",
        "every stage of an eval suite must be defined in spec.stages",
        "judge and check names must differ",
    ):
        assert message in result.stderr
    suite = bad["evals"][0]["name"]
    assert f'eval suite {suite}: undefined stages ["no-such-stage"]' in result.stderr
    assert "stage experts: an eval-score gate names an undefined suite" in result.stderr
    # and the same spec does not parse in Python either (the CEL rules are mirrored)
    with pytest.raises(ValueError, match=r"no-such-st|no-such-suite|must differ"):
        LLMDeploymentSpec.model_validate(bad)


# --- the Job executor ------------------------------------------------------------------


def test_job_executor_creates_a_valid_job_and_a_run_nobody_executes_times_out(
    cluster: Cluster,
    prometheus: Prometheus,
    crd: None,
    namespace: str,
    bench: Bench,
    kubelet: KubeletStandIn,
    tmp_path: Path,
) -> None:
    extra = [
        "--eval-executor",
        "job",
        "--eval-image",
        "registry.example/llm-rollout:test",
        "--eval-service-account",
        "evals",
    ]
    with running_operator(cluster, prometheus, namespace, tmp_path, extra) as op:
        bench.start_stable(spec("v1", bench.sims))
        v2 = spec("v2", bench.sims, suite_overrides={"timeout": "4s"})
        release = bench.serve(v2, "good")
        bench.rollouts.patch("bot", {"spec": v2})
        batch = client.BatchV1Api(cluster.api_client)

        def jobs() -> list[Any]:
            return list(batch.list_namespaced_job(namespace).items)

        (job,) = wait_for(
            jobs, timeout=30, what="the eval Job", describe=lambda: bench.describe() + op.log_tail()
        )
        run = bench.run(release)
        assert run is not None
        assert job.metadata.name == run["metadata"]["name"]
        owner = job.metadata.owner_references[0]
        assert (owner.kind, owner.name, owner.uid) == (
            "LLMEvalRun",
            run["metadata"]["name"],
            run["metadata"]["uid"],
        )
        container = job.spec.template.spec.containers[0]
        assert container.image == "registry.example/llm-rollout:test"
        assert container.command == [
            "llm-rollout",
            "eval",
            "--run",
            f"{namespace}/{run['metadata']['name']}",
        ]
        assert job.spec.template.spec.service_account_name == "evals"
        assert container.security_context.read_only_root_filesystem is True

        # a restarted operator finds the run and its Job: nothing is duplicated
        op.stop()
        op.start()
        time.sleep(3)
        assert len(bench.runs()) == 1 and len(jobs()) == 1

        # no kubelet runs the Job: the run times out, a gate Error, then the pause
        wait_for(
            lambda: bench.rollouts.status("bot").get("phase") == "Paused",
            timeout=60,
            what="paused on the timed-out run",
            describe=lambda: bench.describe() + op.log_tail(),
        )
        cond = conditions(bench.rollouts)["EvalsSucceeded"]
        assert (cond["status"], cond["reason"]) == ("False", "TimedOut")
        assert "did not finish within its timeout of 4s" in cond["message"]


def test_job_manifest_passes_server_side_validation(cluster: Cluster, namespace: str) -> None:
    from llm_rollout.evals.manifests import build_eval_job
    from llm_rollout.evals.settings import EvalSettings

    run = {
        "metadata": {
            "name": "bot-abc-experts-translation-1",
            "namespace": namespace,
            "uid": "0f0e0d0c-0000-4000-8000-000000000001",
        },
        "spec": {
            "deployment": "bot",
            "release": "abc",
            "stage": "experts",
            "suite": {
                "name": "translation",
                "stages": ["experts"],
                "dataset": {"configMapRef": {"name": "d", "key": "k"}},
                "checks": [{"name": "c", "type": "maxLength", "max": 5}],
            },
        },
    }
    job = build_eval_job(run, EvalSettings(image="example/llm-rollout:1"))
    result = cluster.kubectl(
        "create", "--dry-run=server", "-o", "json", "-f", "-", input=json.dumps(job)
    )
    created = json.loads(result.stdout)
    assert created["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert created["metadata"]["ownerReferences"][0]["kind"] == "LLMEvalRun"


def test_eval_cli_reports_a_missing_run(cluster: Cluster, crd: None, namespace: str) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "llm_rollout.cli",
            "eval",
            "--run",
            f"{namespace}/nope",
            "--kubeconfig",
            cluster.kubeconfig,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert f"LLMEvalRun {namespace}/nope not found" in result.stderr

"""The dataset loop of `make demo`: after B'' is rolled back, its bad answers, read back
from the trace backend, become a golden set, and the demo's suite on it must fail B''
and pass B'. The same commands a team runs: `llm-rollout dataset`, `kubectl apply`,
`llm-rollout eval --run`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from llm_rollout.demo.scenario import (
    BAD_ANSWERS,
    NAME,
    NAMESPACE,
    REGRESSION_SUITE,
    TRACE_PROJECT,
    DatasetLoop,
    LoopRun,
    regression_run,
)

if TYPE_CHECKING:
    from llm_rollout.demo.run import Demo


def dataset_loop(demo: Demo) -> DatasetLoop:
    """The regressed release's bad answers (read back from the trace backend) become a
    golden set; the same suite on it fails B'' and passes B'."""
    assert demo.traces is not None and demo.bed is not None
    regressed = demo.ids["B''"]
    demo.say("=== Production feedback becomes eval data: the bad answers of B'' as a golden set")
    jsonl = demo.work / f"{BAD_ANSWERS}.jsonl"
    manifest = demo.work / f"{BAD_ANSWERS}.yaml"
    made = demo.cli(
        "dataset", f"{NAMESPACE}/{NAME}", "--release", regressed,
        "--phoenix-url", demo.traces.url, "--project", TRACE_PROJECT, "--since", "1h",
        "-o", str(jsonl), "--configmap", BAD_ANSWERS, "--configmap-output", str(manifest),
    )  # fmt: skip
    report = made.stderr.strip().splitlines()[-1] if made.stderr.strip() else ""
    demo.say(f"    llm-rollout dataset: {report}")
    loop = DatasetLoop(len(jsonl.read_text().splitlines()), report, jsonl)
    if not loop.cases:
        return loop
    demo.kubectl("apply", "-f", str(manifest))
    suite = demo.specs["B''"]["evals"][0]
    port = int(demo.specs["B''"]["release"].get("port", 8080))
    for label in ("B''", "B'"):
        release = demo.ids[label]
        name = f"{NAME}-{release}-{REGRESSION_SUITE}"
        model = demo.specs[label]["release"]["model"].get("name", "")
        run = regression_run(name, release, suite, model=model, port=port)
        demo.kubectl("apply", "-f", "-", input=json.dumps(run))
        demo.cli(
            "eval", "--run", f"{NAMESPACE}/{name}",
            "--kubeconfig", demo.bed.state.kubeconfig,
            "--backend-file", str(demo.backend_file),
            "--otlp-endpoint", demo.traces.otlp_endpoint,
        )  # fmt: skip
        obj = json.loads(demo.kubectl("get", "llmevalruns", name, "-n", NAMESPACE, "-o", "json"))
        status = obj.get("status") or {}
        cases = (status.get("candidate") or {}).get("cases") or {}
        result = LoopRun(
            label,
            release,
            name,
            status.get("phase", ""),
            status.get("composite"),
            int(cases.get("pass", 0)),
            int(cases.get("total", 0)),
        )
        loop.runs.append(result)
        demo.say(
            f"    {REGRESSION_SUITE} on {label}: {result.passed}/{result.total} cases "
            f"passed, composite {result.composite} -> {'pass' if result.passes else 'FAIL'}"
        )
    return loop


def loop_problems(loop: DatasetLoop) -> list[str]:
    """What went wrong in the dataset loop: no cases, or a release judged the wrong way."""
    if not loop.cases:
        return [f"no bad answer of B'' became an eval case ({loop.report})"]
    problems = []
    for run in loop.runs:
        expected = run.label == "B'"  # the good release passes, the regressed one fails
        if run.passes != expected:
            problems.append(
                f"{REGRESSION_SUITE} on {run.label}: expected it to "
                f"{'pass' if expected else 'fail'}, got {run.phase} with composite "
                f"{run.composite} ({run.passed}/{run.total} cases passed)"
            )
    if len(loop.runs) != 2:
        problems.append(f"{REGRESSION_SUITE}: {len(loop.runs)} of 2 runs evaluated")
    return problems

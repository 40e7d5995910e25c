"""The demo's closing summary: each rollout's decisions, what the users were served,
and whether everything ended as expected."""

from __future__ import annotations

from llm_rollout.demo.scenario import DemoResult


def summary(result: DemoResult) -> str:
    lines = ["", "=== summary"]
    for label, rid in result.releases.items():
        lines.append(f"release {label}: {rid}")
    for scenario in result.scenarios:
        lines.append(
            f"- {scenario.title}: {scenario.phase}"
            + (f" at stage {scenario.stage}" if scenario.stage else "")
            + (f" ({scenario.ended - scenario.started:.0f}s)" if scenario.ended else "")
        )
        for d in scenario.decisions:
            if d["decision"] != "Hold":
                lines.append(
                    f"    {d['time'][11:19]} {d['decision']:<9} "
                    f"{d.get('stage') or '-':<8} {d.get('message', '')[:150]}"
                )
        if scenario.plot:
            lines.append(f"    picture: {scenario.plot}")
    if result.eval_runs:
        lines.append("eval runs (kubectl get llmevalruns -n demo):")
        lines += [f"  {line}" for line in result.eval_runs.strip().splitlines()]
    loop = result.loop
    if loop is not None:
        lines.append(f"production feedback became eval data: {loop.report}")
        lines.append(f"  golden set: {loop.path}")
        for run in loop.runs:
            lines.append(
                f"  {run.run}: {run.label} {run.passed}/{run.total} cases passed, composite "
                f"{run.composite} -> {'passes' if run.passes else 'fails'}"
            )
    if result.traces_url:
        lines.append(
            f"traces: {result.traces_url} (Arize Phoenix, project demo; it stops with the demo)"
        )
    rec = result.record
    served = sum(rec.requests.values())
    lines.append(
        f"simulated users: {served} answers, "
        f"{sum(rec.feedback_accepted.values())} feedback accepted, "
        f"{rec.failed_requests} failed requests"
    )
    by_cohort: dict[str, set[str]] = {}
    for cohort, release in rec.requests:
        by_cohort.setdefault(cohort, set()).add(release)
    for cohort, releases in sorted(by_cohort.items()):
        names = sorted(k for k, v in result.releases.items() if v in releases)
        lines.append(f"  {cohort} were served by: {', '.join(names)}")
    lines.append(
        "result: "
        + (
            "OK, both rollouts ended as expected"
            if result.ok
            else "FAILED:\n  " + "\n  ".join(result.problems)
        )
    )
    return "\n".join(lines)

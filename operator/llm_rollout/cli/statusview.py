"""A readable view of an LLMDeployment's status for `llm-rollout status` (pure)."""

from __future__ import annotations

from typing import Any

from llm_rollout.api.status import LLMDeploymentStatus


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}"


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line.rstrip()]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return out


def render_status(obj: dict[str, Any], *, history: int = 8) -> str:
    meta = obj.get("metadata", {})
    status = LLMDeploymentStatus.model_validate(obj.get("status") or {})
    lines = [
        f"{meta.get('namespace')}/{meta.get('name')}   phase: {status.phase or 'Pending'}"
        f"   stage: {status.stage or '-'}   step: {status.step or '-'}",
        f"stable: {status.stable.id if status.stable else '-'}"
        f"   candidate: {status.candidate.id if status.candidate else '-'}"
        f"   exposed: {'yes' if status.exposed else 'no'}",
    ]
    if status.message:
        lines.append(f"message: {status.message}")
    if status.gates:
        lines += ["", "GATES"]
        rows = []
        for g in status.gates:
            interval = f"[{_num(g.interval[0])}, {_num(g.interval[1])}]" if g.interval else "-"
            rows.append(
                [
                    g.name,
                    g.kind.value,
                    _num(g.value),
                    interval,
                    "-" if g.samples is None else str(g.samples),
                    g.threshold or "-",
                    g.verdict.value,
                    g.message,
                ]
            )
        lines += _table(
            ["NAME", "KIND", "VALUE", "INTERVAL", "SAMPLES", "THRESHOLD", "VERDICT", "MESSAGE"],
            rows,
        )
    if (srm := status.sample_ratio) is not None:
        lines += ["", f"SAMPLE RATIO  {srm.verdict.value}: {srm.message or '-'}"]
    if status.evals:
        lines += ["", f"EVALS (stage {status.stage or '-'}; kubectl get llmevalruns)"]
        lines += _table(
            ["SUITE", "RUN", "PHASE", "MESSAGE"],
            [[e.suite, e.run, e.phase.value, e.message or e.reason] for e in status.evals],
        )
    if status.routing and status.routing.routes:
        lines += ["", "ROUTING (share of each cohort on the candidate)"]
        lines += _table(
            ["COHORT", "CANDIDATE %"],
            [[r.cohort, str(r.candidate_percent)] for r in status.routing.routes],
        )
    if status.conditions:
        lines += ["", "CONDITIONS"]
        lines += _table(
            ["TYPE", "STATUS", "REASON"],
            [[c.type.value, c.status.value, c.reason] for c in status.conditions],
        )
    if status.history:
        lines += ["", "RECENT DECISIONS"]
        rows = [
            [h.time.strftime("%H:%M:%S"), h.decision, h.stage or "-", h.reason, h.message]
            for h in status.history[-history:]
        ]
        lines += _table(["TIME", "DECISION", "STAGE", "REASON", "MESSAGE"], rows)
    return "\n".join(lines)

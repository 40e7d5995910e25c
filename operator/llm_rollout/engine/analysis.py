"""When gates are judged and what their verdicts do: the analysis cadence, the soak,
the precedence of rollback, errors and passes, and when to call again."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from llm_rollout.api.durations import format_duration
from llm_rollout.api.spec import LLMDeploymentSpec, OnMetricsUnavailable, Stage
from llm_rollout.api.status import (
    LLMDeploymentStatus,
    PauseReason,
    PauseState,
    Phase,
    Verdict,
)
from llm_rollout.engine.context import Context, Step, seconds_between, stage_of, step_elapsed
from llm_rollout.engine.evals import EvalAssessment, assess_evals
from llm_rollout.engine.gates import evaluate_stage
from llm_rollout.engine.plan import current_stage
from llm_rollout.engine.sample_ratio import check_sample_ratio
from llm_rollout.engine.transitions import advance, expose_if_ready, position_text, roll_back
from llm_rollout.engine.types import (
    AnalysisResult,
    Observation,
    ObservationError,
    ObservationErrorKind,
    Outcome,
)

# An analysis is due this share of an interval early, so a timer firing a little
# early does not skip a whole interval.
ANALYSIS_TOLERANCE = 0.02
# An analysis starting later than this after it was due says the operator is behind
# (condition AnalysisOnSchedule; the alert LLMRolloutOperatorLagging uses the same bound).
LATE_ANALYSIS_SECONDS = 30.0


def interval_reference(status: LLMDeploymentStatus) -> datetime | None:
    """What the next analysis is an interval after: the step's last analysis, or the
    step's (pause-shifted) start when there is none since."""
    start, last = status.step_start_time, status.last_analysis_time
    if start is None or last is None:
        return start
    return max(start, last)


def analysis_due(spec: LLMDeploymentSpec, status: LLMDeploymentStatus, now: datetime) -> bool:
    """Whether the next call would evaluate gates (so the caller should query metrics).

    Due one analysis interval after the step began or after the step's last analysis
    (never at the step's start, which has no evidence yet), and also right when the
    step's minDuration ends, so a step whose gates already pass advances then rather
    than up to an interval later. Looks may run up to ANALYSIS_TOLERANCE of an interval
    early (timer slack); confidence sequences stay valid at any number of looks.
    """
    start = status.step_start_time  # shifted by pauses, like minDuration
    last = status.last_analysis_time
    if last is not None and last > now:  # the clock went back: do not stall
        return True
    if start is None:
        return last is None
    began = status.evidence_start_time or start  # when the step really began
    if last is not None and last < began:
        last = None  # an analysis of an earlier step
    since = interval_reference(status)
    assert since is not None
    if seconds_between(since, now) >= spec.analysis.interval_seconds * (1 - ANALYSIS_TOLERANCE):
        return True
    stage = current_stage(spec, status)
    if stage is None or stage.min_seconds <= 0:
        return False
    soaked_at = start + timedelta(seconds=stage.min_seconds)
    return (last is None or last < soaked_at) and soaked_at <= now


def handle_progress(
    ctx: Context, s: LLMDeploymentStatus, observations: Mapping[str, Observation]
) -> Step:
    if s.phase is not Phase.PROGRESSING or s.candidate is None:
        return Step(Outcome.NOOP, "Idle", "no rollout in progress")
    stage = stage_of(ctx, s)
    candidate = s.candidate.id
    elapsed = step_elapsed(ctx, s)
    max_seconds = stage.max_seconds
    over_max = max_seconds is not None and elapsed > max_seconds
    max_text = f"maxDuration {stage.max_duration} of {position_text(ctx, s)} exceeded"
    if not s.exposed:
        if expose_if_ready(ctx, s):
            return Step(
                Outcome.ADVANCE,
                "ReleaseReady",
                f"release {candidate} ready: exposing {position_text(ctx, s)}",
            )
        if over_max:
            return roll_back(ctx, s, "ReleaseNotReady", f"{max_text} waiting for its pods")
        return Step(
            Outcome.HOLD, "WaitingForRelease", f"waiting for release {candidate} to become ready"
        )
    soaked = elapsed >= stage.min_seconds
    assessment = assess_evals(ctx.spec, s, stage, ctx.evals, name=ctx.name, now=ctx.now)
    if assessment is not None:
        ctx.assessment = assessment
        s.evals = assessment.statuses
    if not stage.gates and assessment is None:
        if soaked:
            return advance(ctx, s, "MinDurationElapsed", f"{position_text(ctx, s)} soaked")
        return Step(Outcome.NOOP, "Soaking", f"soaking {position_text(ctx, s)}")
    if ctx.skip_analysis or not analysis_due(ctx.spec, s, ctx.now):
        if over_max:
            return roll_back(ctx, s, "MaxDurationExceeded", max_text)
        return Step(Outcome.NOOP, "WaitingForAnalysis", "next analysis not due yet")
    return analyse(
        ctx,
        s,
        stage,
        observations,
        soaked=soaked,
        over_max=over_max,
        max_text=max_text,
        assessment=assessment,
    )


# Within this long after the stage's eval runs finished, an empty series is not yet a
# missing metric: their scores reach Prometheus with the next scrape of the operator.
EVAL_SCRAPE_GRACE_SECONDS = 60.0


def metrics_settled(ctx: Context, assessment: EvalAssessment | None) -> bool:
    if assessment is None:
        return True
    if not assessment.done:
        return False
    if assessment.settled_at is None:
        return True
    grace = max(2 * ctx.spec.analysis.interval_seconds, EVAL_SCRAPE_GRACE_SECONDS)
    return seconds_between(assessment.settled_at, ctx.now) >= grace


def missing_after_soak(
    stage: Stage, observations: Mapping[str, Observation]
) -> Mapping[str, Observation]:
    """No series at all for a gate's candidate metrics, still after minDuration: the
    metric is missing (not exported, not scraped, misspelt), not merely pending.

    Early in a step an empty answer is ordinary (no traffic yet) and only holds; past
    the soak it counts as an error, so errorLimit pauses the rollout instead of
    letting it hold until maxDuration.
    """
    patched = dict(observations)
    for gate in stage.gates:
        keys = [k for k in observations if k.startswith(f"{gate.name}/") and "/candidate/" in k]
        empty = [observations[k] for k in keys]
        if keys and all(
            isinstance(o, ObservationError) and o.kind == ObservationErrorKind.EMPTY for o in empty
        ):
            for key in keys:
                patched[key] = ObservationError(
                    ObservationErrorKind.MISSING,
                    "no series after minDuration: is the metric exported and scraped?",
                )
    return patched


def analyse(
    ctx: Context,
    s: LLMDeploymentStatus,
    stage: Stage,
    observations: Mapping[str, Observation],
    *,
    soaked: bool,
    over_max: bool,
    max_text: str,
    assessment: EvalAssessment | None = None,
) -> Step:
    analysis = ctx.spec.analysis
    if soaked and metrics_settled(ctx, assessment):
        observations = missing_after_soak(stage, observations)
    results = evaluate_stage(ctx.spec, stage, observations, s.gates)
    s.gates = results
    s.sample_ratio = check_sample_ratio(ctx.spec, s, observations, ctx.now)
    s.last_analysis_time = ctx.now
    assert s.candidate is not None
    ctx.analysis = AnalysisResult(
        release=s.candidate.id,
        stage=stage.name,
        step_index=s.step_index,
        step_percent=stage.percents[s.step_index],
        gates=tuple(results),
        sample_ratio=s.sample_ratio,
        evals=tuple(s.evals),
        evidence_start=s.evidence_start_time,
    )
    errored = [r for r in results if r.verdict is Verdict.ERROR]
    ctx.metrics_broken = bool(errored)
    eval_errors = assessment.error_text() if assessment is not None else ""
    evals_pending = assessment.pending_text() if assessment is not None else ""
    srm = s.sample_ratio
    mismatch = srm.message if srm is not None and srm.verdict is Verdict.ERROR else ""
    s.consecutive_errors = s.consecutive_errors + 1 if errored or eval_errors or mismatch else 0

    def summary(rs: list[str]) -> str:
        return "; ".join(rs)

    if failed := [r for r in results if r.consecutive_failures >= analysis.failure_limit]:
        why = summary(
            [
                f"gate {r.name} failed {r.consecutive_failures} analyses ({r.message})"
                for r in failed
            ]
        )
        return roll_back(ctx, s, "GateFailed", why)
    if over_max:
        # Past maxDuration without a pass inside it: a pass now comes too late.
        return roll_back(ctx, s, "MaxDurationExceeded", max_text)
    if errored or eval_errors or mismatch:
        why = summary([f"gate {r.name}: {r.message}" for r in errored])
        if errored:
            ctx.notes.append(why)
        why = summary([w for w in (why, eval_errors, mismatch) if w])
        # Failed or timed-out eval runs, and a traffic split the routing does not
        # explain, go through the same error policy as broken metrics: the evidence
        # cannot be trusted, so the rollout must not move on it.
        reason, what = ("MetricsUnavailable", "metrics unavailable")
        if not errored:
            reason, what = (
                ("EvalFailed", "eval failed")
                if eval_errors
                else ("SampleRatioMismatch", "sample ratio mismatch")
            )
        if s.consecutive_errors >= analysis.error_limit:
            limit = f"{what} for {s.consecutive_errors} analyses ({why})"
            if analysis.on_metrics_unavailable is OnMetricsUnavailable.ROLLBACK:
                return roll_back(ctx, s, reason, limit)
            s.phase = Phase.PAUSED
            s.pause = PauseState(since=ctx.now, reason=PauseReason.METRICS_UNAVAILABLE)
            return Step(Outcome.PAUSE, reason, f"paused: {limit}")
        return Step(
            Outcome.HOLD,
            reason,
            f"holding: {what} ({s.consecutive_errors}/{analysis.error_limit}): {why}",
        )
    if all(r.verdict is Verdict.PASS for r in results):
        if evals_pending:
            return Step(
                Outcome.HOLD, "WaitingForEvals", f"holding: waiting for eval suites {evals_pending}"
            )
        if soaked:
            return advance(ctx, s, "GatesPassed", f"all gates pass at {position_text(ctx, s)}")
        left = format_duration(max(stage.min_seconds - step_elapsed(ctx, s), 0))
        return Step(Outcome.HOLD, "MinDuration", f"all gates pass; {left} of minDuration left")
    if failing := [r for r in results if r.verdict is Verdict.FAIL]:
        why = summary(
            [
                f"gate {r.name} failing ({r.consecutive_failures}/{analysis.failure_limit}): "
                f"{r.message}"
                for r in failing
            ]
        )
        return Step(Outcome.HOLD, "GateFailing", f"holding: {why}")
    pending = [r for r in results if r.verdict is not Verdict.PASS]
    why = summary([f"gate {r.name}: {r.message}" for r in pending])
    if evals_pending:
        return Step(
            Outcome.HOLD,
            "WaitingForEvals",
            f"holding: waiting for eval suites {evals_pending}; {why}",
        )
    return Step(Outcome.HOLD, "Inconclusive", f"holding, inconclusive: {why}")


def requeue_after(ctx: Context, s: LLMDeploymentStatus) -> float | None:
    """Seconds until time alone changes something (None: only a change will)."""
    if s.phase is not Phase.PROGRESSING:
        return None
    interval = ctx.spec.analysis.interval_seconds
    if not s.exposed:
        return interval  # poll for readiness as well as being told
    stage = stage_of(ctx, s)
    elapsed = step_elapsed(ctx, s)
    waits = []
    if elapsed < stage.min_seconds:
        waits.append(stage.min_seconds - elapsed)
    if stage.max_seconds is not None and elapsed <= stage.max_seconds:
        waits.append(stage.max_seconds - elapsed + 1e-3)
    if stage.gates or ctx.spec.suites_at(stage.name):
        since = interval_reference(s)
        waits.append(0.0 if since is None else interval - seconds_between(since, ctx.now))
    return max(min(waits), 0.0) if waits else None

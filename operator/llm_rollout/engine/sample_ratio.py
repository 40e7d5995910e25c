"""The sample-ratio check: is the candidate getting the share of users the step promises?

At a partial step (0 < percent < 100) of the current stage's own cohorts, every unit
the router places (a user, or a request without a user id: router/assignments.py)
lands on the candidate with probability percent/100 (engine.plan plans the counts). The check
tests that with the
Dirichlet-multinomial sequential test of Lindon & Malek (2022), valid at every look,
at a fixed, strict level: a false alarm holds a healthy rollout, so it must be rare.
"""

from __future__ import annotations

import math
from datetime import datetime

from llm_rollout.api.spec import LLMDeploymentSpec
from llm_rollout.api.status import LLMDeploymentStatus, SampleRatioCheck, Verdict
from llm_rollout.engine.plan import sample_ratio_key, sample_ratio_share, sample_ratio_since
from llm_rollout.engine.sequential import log_split_evidence
from llm_rollout.engine.types import ObservationError, Observations, Role

SAMPLE_RATIO_CONFIDENCE = 0.999
# Prior Dirichlet(K * expected shares): weight of about K units, so the test looks for
# departures visible in a few hundred units (Lindon & Malek's code defaults to 10,000,
# for experiments with millions).
PRIOR_UNITS = 100.0


def check_sample_ratio(
    spec: LLMDeploymentSpec,
    status: LLMDeploymentStatus,
    observations: Observations,
    now: datetime,
) -> SampleRatioCheck | None:
    """The check's verdict at this analysis (None: no check at this step)."""
    expected = sample_ratio_share(spec, status)
    since = sample_ratio_since(spec, status)
    if expected is None or since is None:
        return None
    if now <= since:
        return SampleRatioCheck(
            verdict=Verdict.INCONCLUSIVE,
            expected=expected,
            message=f"counts the users placed from {since.isoformat()} on (two analysis "
            "intervals into the step, once the routing has switched)",
        )
    units: list[float] = []
    for role in (Role.CANDIDATE, Role.STABLE):
        obs = observations.get(sample_ratio_key(role))
        if isinstance(obs, ObservationError) and not obs.no_data:
            # Broken metrics are the gates' business (they query the same Prometheus).
            return SampleRatioCheck(
                verdict=Verdict.INCONCLUSIVE,
                expected=expected,
                message=f"assignment counts unavailable: {obs.kind}: {obs.message}",
            )
        value = float(obs) if isinstance(obs, int | float) and math.isfinite(obs) else 0.0
        units.append(max(value, 0.0))
    cand, stab = units
    total = cand + stab
    check = SampleRatioCheck(
        verdict=Verdict.INCONCLUSIVE,
        expected=expected,
        observed=cand / total if total else None,
        candidate=round(cand),
        stable=round(stab),
    )
    if total <= 0:
        return check.model_copy(update={"message": "no assignments counted yet"})
    shares = (expected, 1 - expected)
    evidence = log_split_evidence(units, shares, [PRIOR_UNITS * p for p in shares])
    split = (
        f"candidate got {cand / total:.1%} of {total:.0f} users placed in this step "
        f"({cand:.0f} candidate, {stab:.0f} stable), the routing promises {expected:.0%}"
    )
    if evidence >= math.log(1 / (1 - SAMPLE_RATIO_CONFIDENCE)):
        return check.model_copy(
            update={"verdict": Verdict.ERROR, "message": f"sample ratio mismatch: {split}"}
        )
    return check.model_copy(update={"verdict": Verdict.PASS, "message": split})

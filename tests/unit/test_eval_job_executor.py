"""The Job executor notices an eval Job whose pod cannot be created (a forbidden pod)
and says why, in the run's status, instead of waiting for the suite's timeout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from llm_rollout.evals.executor import POD_CREATE_GRACE, JobExecutor
from llm_rollout.evals.settings import EvalSettings
from llm_rollout.kube.errors import Forbidden

RUN = {"metadata": {"namespace": "team", "name": "assistant-r2-experts-golden-1", "uid": "u1"}}
FORBIDDEN = (
    'pods "assistant-r2-experts-golden-1-x" is forbidden: error looking up service account '
    'team/llm-rollout-eval: serviceaccount "llm-rollout-eval" not found'
)


class JobAndEvents:
    """The two reads the executor makes: the Job, and the Job's Events."""

    def __init__(self, job_status: dict[str, Any], age: float, events: list[dict[str, Any]]):
        created = datetime.now(UTC) - timedelta(seconds=age)
        self.job = {
            "metadata": {
                "namespace": "team",
                "name": "assistant-r2-experts-golden-1",
                "creationTimestamp": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
            "status": job_status,
        }
        self.events = events
        self.paths: list[tuple[str, list[tuple[str, str]] | None]] = []
        self.forbid_events = False

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> Any:
        assert (api_version, kind, namespace) == ("batch/v1", "Job", "team")
        return self.job

    async def get_path(self, path: str, *, query: list[tuple[str, str]] | None = None) -> Any:
        self.paths.append((path, query))
        if self.forbid_events:
            raise Forbidden(403, "Forbidden", "events is forbidden")
        return {"items": self.events}


def _event(message: str, reason: str = "FailedCreate", when: str = "2026-12-02T06:00:00Z"):
    return {"reason": reason, "message": message, "lastTimestamp": when}


async def test_a_job_that_cannot_create_its_pod_is_lost_with_the_reason() -> None:
    kube = JobAndEvents(
        {}, POD_CREATE_GRACE + 5, [_event("old"), _event(FORBIDDEN, when="2026-12-02T06:01:00Z")]
    )
    why = await JobExecutor(kube, EvalSettings()).lost(RUN)  # type: ignore[arg-type]
    assert why == f"Job assistant-r2-experts-golden-1 cannot create its pod: {FORBIDDEN}"
    path, query = kube.paths[0]
    assert path == "/api/v1/namespaces/team/events"
    assert query == [
        (
            "fieldSelector",
            "involvedObject.kind=Job,involvedObject.name=assistant-r2-experts-golden-1",
        )
    ]


async def test_a_young_job_a_running_job_or_other_events_are_not_lost() -> None:
    young = JobAndEvents({}, POD_CREATE_GRACE - 5, [_event(FORBIDDEN)])
    running = JobAndEvents({"active": 1}, 300, [_event(FORBIDDEN)])
    created = JobAndEvents({}, 300, [_event("Created pod: x", reason="SuccessfulCreate")])
    for kube in (young, running, created):
        assert await JobExecutor(kube, EvalSettings()).lost(RUN) is None  # type: ignore[arg-type]
    assert young.paths == [] and running.paths == []  # no Events read when not needed


async def test_unreadable_events_leave_the_run_to_its_timeout() -> None:
    kube = JobAndEvents({}, 300, [_event(FORBIDDEN)])
    kube.forbid_events = True
    assert await JobExecutor(kube, EvalSettings()).lost(RUN) is None  # type: ignore[arg-type]

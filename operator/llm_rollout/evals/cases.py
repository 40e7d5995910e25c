"""Run a suite's cases against releases: answers, checks, judges (network, no Kubernetes).

Every request (to a release or a judge) waits for one of `suite.concurrency` slots;
the chat client retries transient errors. A release that gives no answer makes the
case an `error`; a judge that gives no usable score makes that score invalid. No
single case can fail the run here: whether the results can be trusted is decided
afterwards (`aggregate.run_problem`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from llm_rollout.api.spec import EvalSuite, Judge
from llm_rollout.evals.aggregate import CaseOutcome
from llm_rollout.evals.client import CallError, ChatClient, judge_chat_url, release_chat_url
from llm_rollout.evals.dataset import Case
from llm_rollout.evals.judge import InvalidScore, JudgeScore, judge_messages, parse_judge_output
from llm_rollout.heuristics import parse_checks, run_checks


@dataclass(frozen=True)
class Target:
    """A release to evaluate and where it answers."""

    release: str
    url: str  # base URL; the runner POSTs to <url>/v1/chat/completions


async def evaluate(
    suite: EvalSuite,
    cases: Sequence[Case],
    targets: Sequence[Target],
    *,
    client: ChatClient,
    model: str,
    api_keys: Mapping[str, str | None] | None = None,
    progress: Callable[[int, int], None] | None = None,
    trace_headers: Callable[[Target, Case], Mapping[str, str]] | None = None,
) -> dict[str, list[CaseOutcome]]:
    """Outcomes per release, in case order. `api_keys` maps judge name -> key;
    `trace_headers` gives the headers (W3C trace context) of a case's request to a
    release, so the application's own spans join the case's trace."""
    checks = parse_checks(suite.checks)
    keys = api_keys or {}
    slots = asyncio.Semaphore(suite.concurrency)
    total = len(cases) * len(targets)
    done = 0

    async def score(judge: Judge, case: Case, answer: str) -> JudgeScore | InvalidScore:
        try:
            async with slots:
                completion = await client.complete(
                    judge_chat_url(judge.endpoint),
                    model=judge.model,
                    messages=judge_messages(judge, case, answer),
                    api_key=keys.get(judge.name),
                    extra={"temperature": 0},
                )
        except CallError as err:
            return InvalidScore(err.kind, err.detail)
        return parse_judge_output(completion.content, judge.scale)

    async def one(case: Case, target: Target) -> CaseOutcome:
        nonlocal done
        outcome = CaseOutcome(case=case, release=target.release, started=time.time())
        headers = trace_headers(target, case) if trace_headers is not None else None
        try:
            async with slots:
                completion = await client.complete(
                    release_chat_url(target.url),
                    model=model,
                    messages=list(case.messages),
                    headers=headers,
                )
        except CallError as err:
            outcome.error = err
        else:
            outcome.answer, outcome.seconds = completion.content, completion.seconds
            outcome.finish_reason = completion.finish_reason
            outcome.checks = run_checks(
                checks, output=completion.content, input_text=case.input_text
            )
            scores = await asyncio.gather(
                *(score(j, case, completion.content) for j in suite.judges)
            )
            outcome.scores = {j.name: s for j, s in zip(suite.judges, scores, strict=True)}
        outcome.finished = time.time()
        done += 1
        if progress is not None:
            progress(done, total)
        return outcome

    results = await asyncio.gather(*(one(c, t) for t in targets for c in cases))
    by_release: dict[str, list[CaseOutcome]] = {t.release: [] for t in targets}
    for outcome in results:
        by_release[outcome.release].append(outcome)
    return by_release

"""Batched analysis: the queries of every rollout analysed at the same time, against
one metrics provider, asked as one grouped query per counter (metrics/batch.py).

Rollouts analysed at the same `at` (the controller rounds analysis times up to a
tick) join one batch; the batch is sent shortly after `at`, when the rollouts whose
analyses were due in that tick have planned theirs. Each count query is then answered
from the grouped answers and its step's baseline, exactly as its own query would be;
where that cannot be proven, and for queries that are not preset counts (user
PromQL, latency, eval scores), the rollout's own query is sent. So queries per tick
grow with the number of distinct counters, not with the number of rollouts.

With batching off, every query is sent as written: the same answers (the integration
tests compare both), one query per rollout and part.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from llm_rollout.engine.types import MetricQuery
from llm_rollout.engine.types import ObservationErrorKind as Kind
from llm_rollout.metrics.batch import (
    Answer,
    CountSince,
    Part,
    Rows,
    fan_out,
    grouped_queries,
    rows,
)
from llm_rollout.metrics.providers.base import MetricQueryError, MetricsProvider
from llm_rollout.metrics.providers.prometheus import NO_SERIES

log = logging.getLogger("llm_rollout.metrics.batching")

# A batch is sent this long after its time, so that every rollout due in that tick has
# joined it (they wake at `at` and plan in microseconds; API reads come before).
SETTLE_SECONDS = 0.05
# A step's baseline (its counters when the step began) is fixed once Prometheus has
# ingested every scrape up to then: cached from this long after the step began.
BASELINE_SETTLED_SECONDS = 30.0
BASELINE_CACHE_SIZE = 200_000

Result = float | MetricQueryError
Grouped = float | Answer | MetricQueryError  # a count's share of its batch's answers
# What is counted per query sent: grouped (one per counter and tick), baseline (once
# per step and count), single (a rollout's own query).
QueryCounter = Callable[[str], None]


@dataclass
class _Batch:
    items: list[tuple[CountSince, asyncio.Future[Grouped]]] = field(default_factory=list)


class AnalysisBatcher:
    """Answers analyses' queries against one provider, batching count queries."""

    def __init__(
        self,
        provider: MetricsProvider,
        *,
        batching: bool = True,
        count_query: QueryCounter | None = None,
        settle: float = SETTLE_SECONDS,
    ) -> None:
        self.provider = provider
        self.batching = batching
        self._count = count_query or (lambda _form: None)
        self._settle = settle
        self._open: dict[float, _Batch] = {}
        self._baselines: OrderedDict[str, float] = OrderedDict()
        self._flushes: set[asyncio.Task[None]] = set()

    async def observe(self, queries: Sequence[MetricQuery], *, at: datetime) -> list[Result]:
        """Each query's value at `at`, or its classified error, in order. Returns no
        sooner than `at`: a query about a moment is asked once that moment has passed,
        so batched, unbatched and repeated answers agree."""
        wait = at.timestamp() - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        # By position: keys are unique within one rollout's plan, not across rollouts.
        batched = [i for i, q in enumerate(queries) if self.batching and q.count is not None]
        direct = sorted(set(range(len(queries))) - set(batched))
        direct_answers, batched_answers = await asyncio.gather(
            self._direct([queries[i].promql for i in direct], at),
            asyncio.gather(*(self._batched(queries[i], at) for i in batched)),
        )
        results: dict[int, Result] = dict(zip(direct, direct_answers, strict=True))
        results.update(zip(batched, batched_answers, strict=True))
        return [results[i] for i in range(len(queries))]

    async def _direct(self, promqls: list[str], at: datetime) -> list[Result]:
        for _ in promqls:
            self._count("single")
        return await self.provider.query_many(promqls, at=at) if promqls else []

    async def _batched(self, query: MetricQuery, at: datetime) -> Result:
        count = query.count
        assert count is not None
        grouped = await self._join(count, at)
        if isinstance(grouped, MetricQueryError):
            return grouped
        if grouped is Answer.EMPTY:
            return MetricQueryError(Kind.EMPTY, NO_SERIES)
        if grouped is Answer.OWN_QUERY:
            return await self._single(query.promql, at)
        baseline = await self._baseline(count, at)
        if isinstance(baseline, MetricQueryError):
            return baseline
        return grouped - baseline

    async def _single(self, promql: str, at: datetime) -> Result:
        [answer] = await self._direct([promql], at)
        return answer

    async def _baseline(self, count: CountSince, at: datetime) -> Result:
        cached = self._baselines.get(count.baseline)
        if cached is not None:
            self._baselines.move_to_end(count.baseline)
            return cached
        self._count("baseline")
        [value] = await self.provider.query_many([count.baseline], at=at)
        if isinstance(value, MetricQueryError):
            return value
        if at.timestamp() - count.start >= BASELINE_SETTLED_SECONDS:
            self._baselines[count.baseline] = value
            while len(self._baselines) > BASELINE_CACHE_SIZE:
                self._baselines.popitem(last=False)
        return value

    async def _join(self, count: CountSince, at: datetime) -> Grouped:
        """Join the open batch for `at` (opening one if needed) and wait for its answer."""
        moment = at.timestamp()
        batch = self._open.get(moment)
        loop = asyncio.get_running_loop()
        if batch is None:
            batch = self._open[moment] = _Batch()
            delay = max(moment + self._settle - time.time(), self._settle)
            loop.call_later(delay, self._start_flush, moment, batch)
        future: asyncio.Future[Grouped] = loop.create_future()
        batch.items.append((count, future))
        return await future

    def _start_flush(self, moment: float, batch: _Batch) -> None:
        if self._open.get(moment) is batch:
            del self._open[moment]  # later arrivals for the same time open a new batch
        task = asyncio.get_running_loop().create_task(self._flush(moment, batch))
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _flush(self, moment: float, batch: _Batch) -> None:
        at = datetime.fromtimestamp(moment, UTC)
        log.debug("batch at %s: %d count queries", at.isoformat(), len(batch.items))
        by_key: dict[tuple[str, str], list[tuple[CountSince, asyncio.Future[Grouped]]]] = {}
        for count, future in batch.items:
            by_key.setdefault(count.batch_key, []).append((count, future))
        await asyncio.gather(*(self._answer_key(items, moment, at) for items in by_key.values()))

    async def _answer_key(
        self,
        items: list[tuple[CountSince, asyncio.Future[Grouped]]],
        moment: float,
        at: datetime,
    ) -> None:
        queries = grouped_queries([count for count, _ in items]).by_part()
        answers: dict[Part, Rows] = {}
        failure: MetricQueryError | None = None

        async def ask(part: Part, promql: str) -> None:
            nonlocal failure
            self._count("grouped")
            try:
                answers[part] = rows(await self.provider.query_vector(promql, at=at))
            except MetricQueryError as err:
                failure = failure or err

        try:
            await asyncio.gather(*(ask(part, promql) for part, promql in queries.items()))
        except Exception as err:  # never leave an analysis waiting on a lost answer
            failure = MetricQueryError(Kind.UNREACHABLE, f"{type(err).__name__}: {err}")
        for count, future in items:
            if future.done():
                continue
            future.set_result(failure if failure else fan_out(count, moment, answers))

    async def aclose(self) -> None:
        for task in list(self._flushes):
            task.cancel()

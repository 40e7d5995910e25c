"""`POST /feedback`: the request model, ratings, duplicate suppression, the log record and
the endpoint."""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, model_validator

from llm_rollout.api.routing_table import ReleaseInfo
from llm_rollout.router.http import json_error, read_bounded
from llm_rollout.router.metrics import RouterMetrics
from llm_rollout.router.state import RouterState
from llm_rollout.router.tokens import MAX_TOKEN_CHARS, TokenClaims, TokenError, TokenSigner
from llm_rollout.router.tracing import RouterTracing

feedback_log = logging.getLogger("llm_rollout.feedback")

MAX_FEEDBACK_BYTES = 16 * 1024
DEFAULT_DEDUPE_CAPACITY = 100_000

Score = Annotated[StrictInt, Field(ge=1, le=5)]
CriterionName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]


class FeedbackRequest(BaseModel):
    """One rating of one answer; exactly one of `thumbs` or `score`."""

    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1, max_length=MAX_TOKEN_CHARS)
    thumbs: Literal["up", "down"] | None = None
    score: Score | None = None
    source: Literal["user", "expert"] = "user"
    criteria: dict[CriterionName, Score] = Field(default_factory=dict, max_length=10)
    comment: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _one_rating(self) -> FeedbackRequest:
        if (self.thumbs is None) == (self.score is None):
            raise ValueError("give exactly one of thumbs or score")
        return self

    @property
    def rating(self) -> str:
        """positive (up, 4-5), neutral (3) or negative (down, 1-2)."""
        if self.thumbs is not None:
            return "positive" if self.thumbs == "up" else "negative"
        assert self.score is not None
        return "positive" if self.score >= 4 else "neutral" if self.score == 3 else "negative"


def error_field(loc: tuple[int | str, ...]) -> str:
    """Dotted field path of a pydantic error location ('' for the whole body)."""
    return ".".join(str(p) for p in loc if p != "[key]")


class SeenSet:
    """Bounded memory of accepted (request id, source) pairs, for 409 on duplicates.

    Entries are dropped when their token expires (a replay would then be
    rejected as expired anyway) or, beyond `capacity`, oldest first: in that
    case a duplicate of a forgotten entry is accepted again. The set is per
    router replica; replicas do not share it.
    """

    def __init__(self, capacity: int = DEFAULT_DEDUPE_CAPACITY) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[tuple[str, str], float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, key: tuple[str, str], expires: float, now: float) -> bool:
        """Remember `key`; False if it was already there (a duplicate)."""
        while self._entries:
            oldest_key, oldest_exp = next(iter(self._entries.items()))
            if oldest_exp > now:
                break
            del self._entries[oldest_key]
        if key in self._entries:
            return False
        self._entries[key] = expires
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
        return True


def release_record(release: ReleaseInfo | None, release_id: str) -> dict[str, str]:
    if release is None or release.id != release_id:
        return {"id": release_id}
    return release.model_dump(mode="json", by_alias=True, exclude_none=True)


def log_record(
    claims: TokenClaims, fb: FeedbackRequest, release: ReleaseInfo | None, now: float
) -> dict[str, Any]:
    """The one structured log line written per accepted feedback."""
    return {
        "event": "feedback",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "requestId": claims.rid,
        "namespace": claims.ns,
        "deployment": claims.dep,
        "release": release_record(release, claims.rel),
        "cohort": claims.coh,
        "userHash": claims.uh,
        "source": fb.source,
        "rating": fb.rating,
        "thumbs": fb.thumbs,
        "score": fb.score,
        "criteria": fb.criteria,
        "comment": fb.comment,
        # The answer's trace (when it was traced): open it in the trace backend.
        "traceId": claims.trc[:32] or None,
        "spanId": claims.trc[32:] or None,
    }


class FeedbackEndpoint:
    """Verifies a feedback token, refuses duplicates, counts the rating and logs it."""

    def __init__(
        self,
        state: RouterState,
        signer: TokenSigner,
        metrics: RouterMetrics,
        seen: SeenSet,
        clock: Callable[[], float],
        tracing: RouterTracing | None = None,
    ) -> None:
        self.state = state
        self.tracing = tracing
        self.signer = signer
        self.metrics = metrics
        self.seen = seen
        self.clock = clock

    def _reject(self, status: int, reason: str, error: str, **extra: Any) -> web.Response:
        self.metrics.feedback_rejected.labels(reason).inc()
        return json_error(status, error, **extra)

    async def handle(self, request: web.Request) -> web.Response:
        now = self.clock()
        if request.content_type != "application/json":
            return self._reject(
                415, "unsupported_media_type", "Content-Type must be application/json"
            )
        raw = await read_bounded(request, MAX_FEEDBACK_BYTES)
        if raw is None:
            return self._reject(413, "too_large", f"feedback over {MAX_FEEDBACK_BYTES} bytes")
        try:
            data = json.loads(raw)
        except ValueError:
            return self._reject(400, "invalid", "body is not valid JSON", field="")
        try:
            fb = FeedbackRequest.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            return self._reject(400, "invalid", err["msg"], field=error_field(err["loc"]))
        try:
            claims = self.signer.verify(fb.token, now=now)
        except TokenError as exc:
            return self._reject(401, exc.reason, str(exc), field="token")
        seen_key = (f"{claims.ns}/{claims.dep}/{claims.rid}", fb.source)
        if not self.seen.add(seen_key, claims.exp, now):
            return self._reject(
                409, "duplicate", f"feedback from {fb.source} for this request already recorded"
            )
        labels = (claims.ns, claims.dep, claims.rel, claims.coh)
        m = self.metrics
        m.feedback.labels(*labels, fb.source, fb.rating).inc()
        if fb.score is not None:
            m.feedback_score.labels(*labels, fb.source, "overall").observe(fb.score)
        for name, score in fb.criteria.items():
            m.feedback_score.labels(*labels, fb.source, m.criterion(name)).observe(score)
        release = self.state.release(claims.ns, claims.dep, claims.rel)
        if self.tracing is not None:
            served = self.state.get(claims.ns, claims.dep)
            self.tracing.feedback(
                claims,
                source=fb.source,
                rating=fb.rating,
                thumbs=fb.thumbs,
                score=fb.score,
                criteria=fb.criteria,
                comment=fb.comment,
                redactions=served.redactions if served is not None else (),
            )
        feedback_log.info(json.dumps(log_record(claims, fb, release, now), ensure_ascii=False))
        return web.json_response({"status": "accepted", "requestId": claims.rid}, status=202)

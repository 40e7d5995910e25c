"""spec.evals: offline eval suites (datasets, checks, LLM judges)."""

from __future__ import annotations

from pydantic import ConfigDict, Field, model_validator
from pydantic.config import JsonDict

from llm_rollout.api.camel import CamelModel
from llm_rollout.api.durations import parse_duration
from llm_rollout.api.spec.analysis import SecretKeyRef
from llm_rollout.api.spec.common import (
    MAX_CHECKS,
    MAX_JUDGES,
    MAX_RUBRIC_LENGTH,
    MAX_STAGES,
    RESERVED_CRITERIA,
    Duration,
    Name,
    _cel,
    _require_unique,
    _unique_names_cel,
    _validations,
)
from llm_rollout.api.spec.release import ConfigMapKeyRef
from llm_rollout.heuristics.checks import CheckSpec


class EvalDataset(CamelModel):
    """Where a suite's cases come from: JSON Lines in a ConfigMap key.

    One case per line: `{"id": "c1", "messages": [{"role": "user", "content": "..."}],
    "reference": "optional reference answer", "tags": ["optional"]}`.
    """

    config_map_ref: ConfigMapKeyRef = Field(
        description="ConfigMap key (in the LLMDeployment's namespace) holding the cases."
    )


_SCALE_RULES: list[JsonDict] = [_cel("self.min < self.max", "scale min must be < max")]


class JudgeScale(CamelModel):
    """The judge's score scale (inclusive)."""

    model_config = ConfigDict(json_schema_extra=_validations(*_SCALE_RULES))

    min_value: int = Field(default=1, alias="min", ge=0, le=1000, description="Worst score.")
    max_value: int = Field(default=5, alias="max", ge=1, le=1000, description="Best score.")

    @model_validator(mode="after")
    def _ordered(self) -> JudgeScale:
        if self.min_value >= self.max_value:
            raise ValueError("scale min must be < max")
        return self

    def normalise(self, score: float) -> float:
        """A score on this scale as 0..1."""
        return (score - self.min_value) / (self.max_value - self.min_value)


class Judge(CamelModel):
    """An LLM asked to score each answer against a rubric (LLM-as-judge).

    Any OpenAI-compatible chat endpoint. The judge is told to answer with strict JSON
    `{"score": <number>, "reason": "..."}`; anything else (or a score outside the
    scale, or an endpoint error) is an invalid score, counted and never a pass.
    """

    name: Name = Field(description="Judge name: the criterion its scores are reported as.")
    endpoint: str = Field(
        max_length=2048,
        pattern=r"^https?://",
        description="Base URL of an OpenAI-compatible API, e.g. http://judge.evals:8000/v1 "
        "(the runner POSTs to <endpoint>/chat/completions).",
    )
    model: str = Field(min_length=1, max_length=253, description="Model name sent to the judge.")
    api_key_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret key holding the API key (sent as a Bearer token)."
    )
    rubric: str = Field(
        min_length=1,
        max_length=MAX_RUBRIC_LENGTH,
        description="What a good answer is, and what each score means.",
    )
    scale: JudgeScale = Field(default_factory=JudgeScale, description="Score scale.")
    weight: float = Field(
        default=1.0, ge=0, le=1000, description="Weight in the suite's composite score (0: none)."
    )


_EVAL_RULES: list[JsonDict] = [
    _cel(
        "(has(self.checks) && size(self.checks) > 0) || "
        "(has(self.judges) && size(self.judges) > 0)",
        "an eval suite needs checks or judges",
    ),
    _cel(
        "!has(self.judges) || !has(self.checks) || "
        "self.judges.all(j, !self.checks.exists(c, c.name == j.name))",
        "judge and check names must differ (each is a criterion)",
    ),
    _cel(
        "(!has(self.judges) || self.judges.all(j, j.name != 'composite')) && "
        "(!has(self.checks) || self.checks.all(c, c.name != 'composite'))",
        "'composite' is reserved for the weighted score",
    ),
]


class EvalSuite(CamelModel):
    """An offline evaluation run against the candidate when a stage starts.

    Each case's input messages are sent to the release's Service; the answer goes
    through the heuristic `checks` and is scored by each `judge`. Results are an
    LLMEvalRun object and the `llm_eval_score` metric (0..1 per criterion and the
    weighted `composite`), which gates read with the `eval-score` preset. The stage
    does not advance before its suites finished; a failed or timed-out run is a
    gate Error.
    """

    model_config = ConfigDict(json_schema_extra=_validations(*_EVAL_RULES))

    name: Name = Field(description="Suite name (the `suite` label of llm_eval_score).")
    dataset: EvalDataset = Field(description="The cases.")
    sample: int = Field(
        default=0,
        ge=0,
        le=100_000,
        description="Cases per run: a fixed, deterministic subset of this size; 0: all.",
    )
    checks: list[CheckSpec] = Field(
        default_factory=list,
        max_length=MAX_CHECKS,
        description="Heuristic checks of each answer (glossary, brand names, tone...); "
        "each is a criterion scored by its pass rate.",
        json_schema_extra=_validations(_unique_names_cel("check")),
    )
    judges: list[Judge] = Field(
        default_factory=list,
        max_length=MAX_JUDGES,
        description="LLM judges scoring each answer.",
        json_schema_extra=_validations(_unique_names_cel("judge")),
    )
    stages: list[Name] = Field(
        min_length=1,
        max_length=MAX_STAGES,
        description="Stages at whose start the suite runs; they wait for it.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    compare_stable: bool = Field(
        default=False,
        description="Also run the cases against the stable release (for Compare gates).",
    )
    timeout: Duration = Field(
        default="15m",
        description="A run not finished this long after it was created fails (gate Error).",
    )
    request_timeout: Duration = Field(
        default="60s", description="Timeout of one request to the release or a judge."
    )
    concurrency: int = Field(
        default=4, ge=1, le=64, description="Requests in flight at once (release and judges)."
    )
    pass_threshold: float = Field(
        default=0.75,
        ge=0,
        le=1,
        description="A judge score passes when (score - min) / (max - min) is at least this "
        "(0.75 on 1..5: 4 or better). A case passes when every check and judge does.",
    )
    check_weight: float = Field(
        default=1.0, ge=0, le=1000, description="Weight of each check in the composite score."
    )
    max_invalid_ratio: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="The run fails when more than this share of cases got no answer, or of "
        "any judge's scores are invalid: its scores would not be trustworthy.",
    )

    @model_validator(mode="after")
    def _check(self) -> EvalSuite:
        if not self.checks and not self.judges:
            raise ValueError(f"eval suite {self.name}: an eval suite needs checks or judges")
        _require_unique([c.name for c in self.checks], f"eval suite {self.name}: check")
        _require_unique([j.name for j in self.judges], f"eval suite {self.name}: judge")
        _require_unique(list(self.stages), f"eval suite {self.name}: stage")
        if both := sorted({c.name for c in self.checks} & {j.name for j in self.judges}):
            raise ValueError(
                f"eval suite {self.name}: judge and check names must differ (each is a "
                f"criterion): {', '.join(both)}"
            )
        if reserved := [n for n in self.criteria() if n in RESERVED_CRITERIA]:
            raise ValueError(
                f"eval suite {self.name}: {', '.join(reserved)} is reserved for the weighted score"
            )
        return self

    def criteria(self) -> list[str]:
        """Criterion names: the checks', then the judges'."""
        return [c.name for c in self.checks] + [j.name for j in self.judges]

    @property
    def timeout_seconds(self) -> float:
        return parse_duration(self.timeout)

    @property
    def request_timeout_seconds(self) -> float:
        return parse_duration(self.request_timeout)

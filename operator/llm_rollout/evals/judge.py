"""LLM-as-judge: the prompt and the parsing of the judge's answer (pure).

The judge gets the rubric, the scale, the question, the reference answer (if the
case has one) and the answer, in labelled sections, and is told to reply with
nothing but `{"score": <number>, "reason": "<one sentence>"}`. Parsing is strict
about the score and lenient about wrapping: a fenced ```json block or one JSON
object amid prose is accepted; anything else, a score that is not a number, or a
score outside the scale is an `InvalidScore` — counted, shown, never a pass.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from llm_rollout.api.spec import Judge, JudgeScale
from llm_rollout.evals.dataset import Case

# The sections of the judge's user message (the simulated judge reads them too).
RUBRIC = "[Rubric]"
SCALE = "[Scale]"
QUESTION = "[Question]"
REFERENCE = "[Reference answer]"
ANSWER = "[Answer]"
SECTIONS = (RUBRIC, SCALE, QUESTION, REFERENCE, ANSWER)
NO_REFERENCE = "(none)"
MAX_ANSWER_CHARS = 32_000
MAX_OUTPUT_CHARS = 64_000  # judge output looked at


def scale_text(scale: JudgeScale) -> str:
    return f"An integer from {scale.min_value} (worst) to {scale.max_value} (best)."


def system_prompt(scale: JudgeScale) -> str:
    return (
        "You are a strict, impartial evaluator of answers given by an AI assistant. "
        "Judge the answer only against the rubric. Reply with a single JSON object and "
        "nothing else, exactly of the form "
        f'{{"score": <integer from {scale.min_value} to {scale.max_value}>, '
        '"reason": "<one short sentence>"}.'
    )


def render_question(case: Case) -> str:
    """The conversation the answer replies to: the content of a lone user message, else
    every message as `role: content`."""
    if len(case.messages) == 1:
        return case.messages[0]["content"]
    return "\n".join(f"{m['role']}: {m['content']}" for m in case.messages)


def judge_messages(judge: Judge, case: Case, answer: str) -> list[dict[str, str]]:
    if len(answer) > MAX_ANSWER_CHARS:
        answer = answer[:MAX_ANSWER_CHARS] + " [...truncated]"
    user = "\n\n".join(
        [
            f"{RUBRIC}\n{judge.rubric.strip()}",
            f"{SCALE}\n{scale_text(judge.scale)}",
            f"{QUESTION}\n{render_question(case)}",
            f"{REFERENCE}\n{case.reference if case.reference is not None else NO_REFERENCE}",
            f"{ANSWER}\n{answer}",
        ]
    )
    return [
        {"role": "system", "content": system_prompt(judge.scale)},
        {"role": "user", "content": user},
    ]


def split_sections(text: str) -> dict[str, str]:
    """The labelled sections of a judge prompt (for the simulated judge and tests)."""
    pattern = "|".join(re.escape(s) for s in SECTIONS)
    parts = re.split(rf"^({pattern})[ \t]*$", text, flags=re.MULTILINE)
    sections: dict[str, str] = {}
    for label, body in zip(parts[1::2], parts[2::2], strict=True):
        sections.setdefault(label, body.strip("\n"))
    return sections


@dataclass(frozen=True)
class JudgeScore:
    score: float
    reason: str = ""


@dataclass(frozen=True)
class InvalidScore:
    """Why a judge gave no usable score. `kind` is one of unreachable, timeout,
    http_<status>, bad_response (not an OpenAI answer), malformed (no JSON score),
    out_of_scale."""

    kind: str
    detail: str = ""


_FENCED = re.compile(r"```[a-zA-Z0-9_-]*[ \t]*\n?(.*?)```", re.DOTALL)
_NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?$")


def _objects(text: str) -> list[dict[str, Any]]:
    """The JSON objects in `text`: all of it, a fenced block, or objects within prose."""
    stripped = text.strip()
    try:
        whole = json.loads(stripped)
    except ValueError:
        pass
    else:
        return [whole] if isinstance(whole, dict) else []
    fenced = [m.group(1).strip() for m in _FENCED.finditer(stripped)]
    found: list[dict[str, Any]] = []
    for block in fenced:
        try:
            value = json.loads(block)
        except ValueError:
            continue
        if isinstance(value, dict):
            found.append(value)
    if found:
        return found
    decoder = json.JSONDecoder()
    index = stripped.find("{")
    while index != -1:
        try:
            value, end = decoder.raw_decode(stripped, index)
        except ValueError:
            index = stripped.find("{", index + 1)
            continue
        if isinstance(value, dict):
            found.append(value)
        index = stripped.find("{", end)
    return found


def _score_value(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str) and _NUMBER.match(value.strip()):
        number = float(value.strip())
    else:
        return None
    return number if math.isfinite(number) else None


def _clip(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_judge_output(text: str, scale: JudgeScale) -> JudgeScore | InvalidScore:
    """The judge's score, or why there is none. Never raises."""
    text = text[:MAX_OUTPUT_CHARS]
    scored = [o for o in _objects(text) if "score" in o]
    if not scored:
        return InvalidScore("malformed", f"no JSON object with a score in {_clip(text)!r}")
    values = {_score_value(o["score"]) for o in scored}
    if len(scored) > 1 and len(values) > 1:
        return InvalidScore("malformed", f"several different scores in {_clip(text)!r}")
    obj = scored[0]
    score = _score_value(obj["score"])
    if score is None:
        return InvalidScore("malformed", f"score is not a number: {obj['score']!r}")
    if not scale.min_value <= score <= scale.max_value:
        return InvalidScore(
            "out_of_scale", f"score {score:g} outside {scale.min_value}..{scale.max_value}"
        )
    reason = obj.get("reason")
    return JudgeScore(score, reason if isinstance(reason, str) else "")

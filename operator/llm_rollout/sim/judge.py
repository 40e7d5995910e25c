"""A simulated LLM judge: OpenAI-compatible, deterministic, answering strict JSON.

    python -m llm_rollout.sim.judge --listen 127.0.0.1:8010
    python -m llm_rollout.sim.judge --listen 127.0.0.1:8011 --behavior garbage
    python -m llm_rollout.sim.judge --listen 127.0.0.1:8012 --status 401

It reads the sections of the eval runner's judge prompt (`[Rubric]`, `[Scale]`,
`[Question]`, `[Reference answer]`, `[Answer]`, see llm_rollout.evals.judge) and
replies `{"score": N, "reason": "..."}` on the prompt's scale:

- a rubric that mentions terminology, a glossary or brand names is scored on
  them: the best score, minus 2 for each brand name of the question missing from
  the answer and each glossary term (`llm_rollout.sim.toylang`) not translated as
  the glossary says;
- any other rubric is scored for accuracy: the word overlap (F1) of the answer
  with the reference answer (without one, with the toy translator's own
  translation), mapped onto the scale.

For the bad-input tests: `--behavior garbage` (prose, no JSON), `fenced` (the JSON
in a ```json block, which is valid), `out-of-scale` (a score above the scale);
`--status CODE` answers every request with that HTTP error; `--sleep-ms N` waits
before answering; `--api-key KEY` requires `Authorization: Bearer KEY` (else 401).
A request can ask for one of these itself with a model name like
`sim-judge+garbage`, `sim-judge+status-401` or `sim-judge+sleep-3000`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

from aiohttp import web

from llm_rollout.evals.judge import (
    ANSWER,
    NO_REFERENCE,
    QUESTION,
    REFERENCE,
    RUBRIC,
    SCALE,
    split_sections,
)
from llm_rollout.sim import openai
from llm_rollout.sim.toylang import BRANDS, GLOSSARY, source_text, translate

BEHAVIORS = ("normal", "garbage", "fenced", "out-of-scale")
_TERMINOLOGY = ("terminolog", "glossary", "brand")
_WORD = re.compile(r"[\wÀ-ÿ]+")


@dataclass(frozen=True)
class Behavior:
    kind: str = "normal"
    status: int | None = None
    sleep_ms: float = 0.0


def behavior_from_model(model: str, default: Behavior) -> Behavior:
    """`name+garbage`, `name+status-401`, `name+sleep-3000` override the default."""
    behavior = default
    for part in model.split("+")[1:]:
        if part in BEHAVIORS:
            behavior = replace(behavior, kind=part)
        elif m := re.fullmatch(r"status-(\d{3})", part):
            behavior = replace(behavior, status=int(m.group(1)))
        elif m := re.fullmatch(r"sleep-(\d+)", part):
            behavior = replace(behavior, sleep_ms=float(m.group(1)))
    return behavior


def _scale(text: str) -> tuple[int, int]:
    numbers = [int(n) for n in re.findall(r"\d+", text)]
    return (numbers[0], numbers[1]) if len(numbers) >= 2 and numbers[0] < numbers[1] else (1, 5)


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def _f1(answer: str, reference: str) -> float:
    got, want = Counter(_words(answer)), Counter(_words(reference))
    common = sum((got & want).values())
    if not common:
        return 0.0
    precision, recall = common / sum(got.values()), common / sum(want.values())
    return 2 * precision * recall / (precision + recall)


def score(prompt: str) -> tuple[int, str, tuple[int, int]]:
    """(score, reason, scale) for a judge prompt."""
    sections = split_sections(prompt)
    low, high = _scale(sections.get(SCALE, ""))
    if ANSWER not in sections or QUESTION not in sections:
        return low, "the prompt has no [Question] or [Answer] section", (low, high)
    question = source_text(sections[QUESTION])
    answer = sections[ANSWER]
    if any(k in sections.get(RUBRIC, "").lower() for k in _TERMINOLOGY):
        missing = [f"brand {b!r}" for b in BRANDS if b in question and b not in answer]
        missing += [
            f"{src!r} -> {dst!r}"
            for src, dst in GLOSSARY.items()
            if re.search(rf"(?<!\w){re.escape(src)}(?!\w)", question, re.IGNORECASE)
            and dst.lower() not in answer.lower()
        ]
        value = max(low, high - 2 * len(missing))
        reason = "terminology kept" if not missing else "not kept: " + ", ".join(missing)
        return value, reason, (low, high)
    reference = sections.get(REFERENCE, NO_REFERENCE).strip()
    if not reference or reference == NO_REFERENCE:
        reference = translate(question)
    overlap = _f1(answer, reference)
    return (
        low + round(overlap * (high - low)),
        f"word overlap with the reference {overlap:.2f}",
        (low, high),
    )


class Judge:
    def __init__(self, default: Behavior, api_key: str | None = None) -> None:
        self.default = default
        self.api_key = api_key

    async def chat(self, request: web.Request) -> web.StreamResponse:
        if self.api_key and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return openai.error(401, "invalid API key", "authentication_error")
        try:
            body = await openai.chat_request(request)
        except openai.BadRequest as err:
            return openai.error(400, str(err))
        model = str(body.get("model") or "sim-judge")
        behavior = behavior_from_model(model, self.default)
        if behavior.sleep_ms:
            await asyncio.sleep(behavior.sleep_ms / 1000)
        if behavior.status is not None:
            return openai.error(behavior.status, f"simulated HTTP {behavior.status}")
        messages = body["messages"]
        value, reason, (_low, high) = score(openai.last_user_text(messages))
        if behavior.kind == "garbage":
            content = "Sure! I would say this answer is pretty good overall, nice work."
        elif behavior.kind == "out-of-scale":
            content = json.dumps({"score": high + 5, "reason": reason})
        else:
            content = json.dumps({"score": value, "reason": reason}, ensure_ascii=False)
            if behavior.kind == "fenced":
                content = f"Here is my verdict:\n```json\n{content}\n```"
        return openai.completion(model, messages, content)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/chat/completions", self.chat)
        app.router.add_get("/healthz", openai.healthz)
        return app


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m llm_rollout.sim.judge",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    openai.add_listen_argument(parser, "127.0.0.1:8010")
    parser.add_argument("--behavior", choices=BEHAVIORS, default="normal")
    parser.add_argument("--status", type=int, default=None, help="answer with this HTTP error")
    parser.add_argument("--sleep-ms", type=float, default=0.0, help="wait before answering")
    parser.add_argument("--api-key", default=None, help="require this Bearer token")
    args = parser.parse_args(argv)
    judge = Judge(Behavior(args.behavior, args.status, args.sleep_ms), api_key=args.api_key)
    return openai.serve(judge.app, args.listen, "judge")


if __name__ == "__main__":
    sys.exit(main())

"""A simulated release of an LLM application: an OpenAI-compatible translation assistant.

    python -m llm_rollout.sim.model_server --listen 127.0.0.1:8001 --profile good
    python -m llm_rollout.sim.model_server --listen 127.0.0.1:8002 --profile regressed

`POST /v1/chat/completions` (JSON or, with `"stream": true`, server-sent events;
OpenAI `usage`, also in the stream with `stream_options.include_usage`),
`GET /v1/models`, `GET /healthz`. It translates the last user message from English
into a pseudo-German (`llm_rollout.sim.toylang`): the `good` profile keeps brand
names such as "Acme Cloud" verbatim and uses the glossary's terms; the `regressed`
profile, for a fixed share of inputs (by hash of the text, `--regression-share`),
translates brand names, uses wrong words for glossary terms and leaves some words
in English. Deterministic: the same input gets the same answer. Used by the
integration tests and `make demo`; see docs/evals.md.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from aiohttp import web

from llm_rollout.sim import openai
from llm_rollout.sim.toylang import affected, translate

PROFILES = ("good", "regressed")


class ModelServer:
    def __init__(
        self,
        profile: str = "good",
        *,
        model: str = "acme-translate",
        latency_ms: float = 0.0,
        regression_share: float = 0.5,
    ) -> None:
        if profile not in PROFILES:
            raise ValueError(f"profile must be one of {', '.join(PROFILES)}")
        self.profile = profile
        self.model = model
        self.latency = latency_ms / 1000
        self.regression_share = regression_share

    def answer(self, text: str) -> str:
        """The reply to a user message."""
        regressed = self.profile == "regressed" and affected(text, self.regression_share)
        return translate(text, regressed=regressed)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await openai.chat_request(request)
        except openai.BadRequest as err:
            return openai.error(400, str(err))
        messages = body["messages"]
        content = self.answer(openai.last_user_text(messages))
        model = str(body.get("model") or self.model)
        if body.get("stream"):
            options = body.get("stream_options") or {}
            words = max(len(content.split(" ")), 1)
            return await openai.stream(
                request,
                model,
                messages,
                content,
                include_usage=bool(options.get("include_usage")),
                delay=self.latency / words,
            )
        if self.latency:
            await asyncio.sleep(self.latency)
        return openai.completion(model, messages, content)

    async def models(self, _: web.Request) -> web.Response:
        return web.json_response(
            {
                "object": "list",
                "data": [{"id": self.model, "object": "model", "owned_by": f"sim-{self.profile}"}],
            }
        )

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/healthz", openai.healthz)
        return app


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m llm_rollout.sim.model_server",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    openai.add_listen_argument(parser, "127.0.0.1:8001")
    parser.add_argument("--profile", choices=PROFILES, default="good")
    parser.add_argument("--model", default="acme-translate", help="model name it reports")
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="time to answer (streams spread it over the words)",
    )
    parser.add_argument(
        "--regression-share",
        type=float,
        default=0.5,
        help="regressed profile: share of inputs it gets wrong (0..1)",
    )
    args = parser.parse_args(argv)
    server = ModelServer(
        args.profile,
        model=args.model,
        latency_ms=args.latency_ms,
        regression_share=args.regression_share,
    )
    return openai.serve(server.app, args.listen, f"model server ({args.profile})")


if __name__ == "__main__":
    sys.exit(main())

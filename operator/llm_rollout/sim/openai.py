"""Small pieces of an OpenAI-compatible chat server (aiohttp), shared by the simulated
model server and judge: request parsing, JSON answers with `usage`, SSE streaming,
OpenAI-style errors, and a `--listen` runner."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import logging
import signal
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web


class BadRequest(Exception):
    pass


def error(status: int, message: str, kind: str = "invalid_request_error") -> web.Response:
    return web.json_response(
        {"error": {"message": message, "type": kind, "code": status}}, status=status
    )


async def chat_request(request: web.Request) -> dict[str, Any]:
    """The JSON body of a chat-completions request, checked for messages."""
    try:
        body = await request.json()
    except ValueError:
        raise BadRequest("the body is not JSON") from None
    messages = body.get("messages") if isinstance(body, dict) else None
    if (
        not isinstance(messages, list)
        or not messages
        or not all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages)
    ):
        raise BadRequest("'messages' must be a non-empty list of {role, content}")
    return dict(body)


def last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return str(message["content"])
    return str(messages[-1]["content"])


def count_tokens(text: str) -> int:
    """A stand-in tokenizer: words and punctuation marks."""
    return len(text.split()) + sum(text.count(p) for p in ".,!?;:")


def _completion_id(model: str, content: str) -> str:
    return "chatcmpl-" + hashlib.sha256(f"{model}\n{content}".encode()).hexdigest()[:24]


def usage(messages: list[dict[str, Any]], content: str) -> dict[str, int]:
    prompt = sum(count_tokens(str(m.get("content", ""))) for m in messages)
    completion = count_tokens(content)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def completion(model: str, messages: list[dict[str, Any]], content: str) -> web.Response:
    return web.json_response(
        {
            "id": _completion_id(model, content),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": usage(messages, content),
        }
    )


async def stream(
    request: web.Request,
    model: str,
    messages: list[dict[str, Any]],
    content: str,
    *,
    include_usage: bool,
    delay: float = 0.0,
) -> web.StreamResponse:
    """Server-sent events as OpenAI streams them: a role chunk, one chunk per word, a
    finish chunk, the usage chunk if asked for, then `data: [DONE]`."""
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    base = {
        "id": _completion_id(model, content),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }

    async def send(choices: list[dict[str, Any]], **extra: Any) -> None:
        data = json.dumps({**base, "choices": choices, **extra}, ensure_ascii=False)
        await response.write(f"data: {data}\n\n".encode())

    await send([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
    words = content.split(" ")
    for i, word in enumerate(words):
        if delay:
            await asyncio.sleep(delay)
        piece = word if i == 0 else " " + word
        await send([{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
    await send([{"index": 0, "delta": {}, "finish_reason": "stop"}])
    if include_usage:
        await send([], usage=usage(messages, content))
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def add_listen_argument(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument(
        "--listen", default=default, metavar="HOST:PORT", help=f"where to serve (default {default})"
    )


def serve(make_app: Callable[[], web.Application], listen: str, what: str) -> int:
    """Serve until SIGTERM / SIGINT."""
    host, _sep, port = listen.rpartition(":")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    async def main() -> None:
        runner = web.AppRunner(make_app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host or "127.0.0.1", int(port)).start()
        logging.info("%s listening on http://%s:%s", what, host or "127.0.0.1", port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(main())
    return 0

"""The benchmark's backend: a minimal OpenAI-compatible aiohttp server (JSON answers with
usage, SSE streams whose first event carries the monotonic time it was sent)."""

from __future__ import annotations

import asyncio
import json
import time

from routerbench.settings import CHAT


def serve_backend(port: int, first_chunk_delay: float, chunks: int) -> None:
    """A model server: prebuilt JSON answers; SSE streams whose first event says when it
    was sent (`t_sent`, time.monotonic_ns()), after `first_chunk_delay` seconds."""
    from aiohttp import web

    answer = json.dumps(
        {
            "id": "b1",
            "object": "chat.completion",
            "model": "bench",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "word " * 100},
                }
            ],
            "usage": {"prompt_tokens": 50, "completion_tokens": 100, "total_tokens": 150},
        }
    ).encode()
    delta = b'data: {"choices":[{"index":0,"delta":{"content":"word "}}]}\n\n'
    rest_of_first = b',"choices":[{"index":0,"delta":{"content":"word "}}]}\n\n'
    usage = (
        b'data: {"choices":[],"usage":{"prompt_tokens":50,"completion_tokens":%d,'
        b'"total_tokens":%d}}\n\ndata: [DONE]\n\n' % (chunks, 50 + chunks)
    )

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if b'"stream": true' not in body:
            return web.Response(body=answer, content_type="application/json")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await asyncio.sleep(first_chunk_delay)
        await resp.write(b'data: {"t_sent":' + str(time.monotonic_ns()).encode() + rest_of_first)
        for _ in range(chunks - 1):
            await resp.write(delta)
        await resp.write(usage)
        await resp.write_eof()
        return resp

    async def health(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post(CHAT, chat)
    app.router.add_get("/health", health)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, handle_signals=True)

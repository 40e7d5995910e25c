"""Assistant text and usage from JSON and SSE bodies (pure)."""

from __future__ import annotations

import gzip
import json
import zlib

from llm_rollout.router.extract import (
    Usage,
    decode_body,
    extract_input,
    extract_output,
    extract_usage_from_tail,
)


def sse(*events: object) -> bytes:
    return b"".join(f"data: {json.dumps(e)}\n\n".encode() for e in events) + b"data: [DONE]\n\n"


def test_chat_completion_json() -> None:
    body = json.dumps(
        {
            "choices": [{"message": {"role": "assistant", "content": "Hi!"}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2},
        }
    ).encode()
    assert extract_output(body, "application/json") == ("Hi!", Usage(3, 2))


def test_completions_and_content_parts() -> None:
    assert extract_output(b'{"choices":[{"text":"abc"}]}', "application/json") == ("abc", None)
    body = {
        "choices": [
            {"message": {"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}}
        ]
    }
    assert extract_output(json.dumps(body).encode(), "application/json")[0] == "ab"


def test_responses_api() -> None:
    body = {
        "output": [{"type": "message", "content": [{"type": "output_text", "text": "yo"}]}],
        "usage": {"input_tokens": 4, "output_tokens": 1},
    }
    assert extract_output(json.dumps(body).encode(), "application/json") == ("yo", Usage(4, 1))
    stream = sse(
        {"type": "response.output_text.delta", "delta": "y"},
        {"type": "response.output_text.delta", "delta": "o"},
        {
            "type": "response.completed",
            "response": {"usage": {"input_tokens": 4, "output_tokens": 1}},
        },
    )
    assert extract_output(stream, "text/event-stream") == ("yo", Usage(4, 1))


def test_sse_deltas_and_usage_chunk() -> None:
    body = sse(
        {"choices": [{"delta": {"role": "assistant"}}]},
        {"choices": [{"delta": {"content": "Hel"}}]},
        {"choices": [{"delta": {"content": "lo"}}]},
        {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2}},
    )
    body += b": keep-alive comment\n\ndata: not json\n\n"
    assert extract_output(body, "text/event-stream; charset=utf-8") == ("Hello", Usage(9, 2))


def test_crlf_sse_and_garbage() -> None:
    body = b'data: {"choices":[{"delta":{"content":"a"}}]}\r\n\r\ndata:{"choices":[]}\r\n'
    assert extract_output(body, "text/event-stream")[0] == "a"
    assert extract_output(b"\xff\xfe not json", "application/json") == (None, None)
    assert extract_output(b"[1, 2]", "application/json") == (None, None)
    bad_usage = b'{"choices": [], "usage": {"prompt_tokens": -1, "completion_tokens": true}}'
    assert extract_output(bad_usage, "application/json") == ("", Usage(0, 0))


def test_non_completions_have_no_text() -> None:
    models = b'{"object": "list", "data": [{"id": "m"}]}'
    assert extract_output(models, "application/json") == (None, None)
    assert extract_output(b'data: {"x": 1}\n\n', "text/event-stream") == (None, None)
    assert extract_output(b'{"choices": [{"message": {"content": ""}}]}', "") == ("", None)


def test_usage_from_tail() -> None:
    body = sse(
        *({"choices": [{"delta": {"content": "x" * 50}}]} for _ in range(100)),
        {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 100}},
    )
    assert extract_usage_from_tail(body[-500:], "text/event-stream") == Usage(1, 100)
    assert extract_usage_from_tail(body[-500:], "application/json") is None


def test_decode_body() -> None:
    assert decode_body(gzip.compress(b"hello"), "gzip") == b"hello"
    assert decode_body(zlib.compress(b"hello"), "deflate") == b"hello"
    assert decode_body(b"hello", "") == b"hello"
    assert decode_body(b"hello", "br") is None
    assert decode_body(b"not gzip", "gzip") is None
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024))
    assert len(decode_body(bomb, "gzip") or b"") == 4 * 1024 * 1024


def test_extract_input() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "You are X"},
            {"role": "user", "content": "Translate ACME"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": "please"}]},
        ]
    }
    assert extract_input(json.dumps(body).encode()) == "Translate ACME\nplease"
    assert extract_input(b'{"prompt": "p"}') == "p"
    assert extract_input(b'{"input": [{"role": "user", "content": "i"}]}') == "i"
    assert extract_input(b"nope") == "" and extract_input(b"[]") == ""

"""Assistant text and token usage out of OpenAI-style bodies (JSON or SSE). Pure, total."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

MAX_DECODED = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int
    output_tokens: int


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def usage_of(obj: object) -> Usage | None:
    """`usage` of a chat/completions object or of a Responses API object/event."""
    if not isinstance(obj, dict):
        return None
    usage = obj.get("usage")
    if not isinstance(usage, dict) and isinstance(obj.get("response"), dict):
        usage = obj["response"].get("usage")
    if not isinstance(usage, dict):
        return None
    inp = _int(usage.get("prompt_tokens", usage.get("input_tokens")))
    out = _int(usage.get("completion_tokens", usage.get("output_tokens")))
    return Usage(inp, out)


def _content_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return "".join(
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def is_completion(obj: object) -> bool:
    """Whether a JSON object / SSE event is (part of) a completion, not other API output."""
    return isinstance(obj, dict) and (
        isinstance(obj.get("choices"), list)
        or isinstance(obj.get("output"), list)
        or str(obj.get("type", "")).startswith("response.")
    )


def text_of(obj: object) -> str:
    """Assistant text of one JSON response or one SSE event."""
    if not isinstance(obj, dict):
        return ""
    parts: list[str] = []
    choices = obj.get("choices")
    if isinstance(choices, list):
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            for key in ("message", "delta"):
                if isinstance(choice.get(key), dict):
                    parts.append(_content_text(choice[key].get("content")))
            if isinstance(choice.get("text"), str):
                parts.append(choice["text"])
    # Responses API: streamed deltas, or a whole response's output items.
    if obj.get("type") == "response.output_text.delta" and isinstance(obj.get("delta"), str):
        parts.append(obj["delta"])
    output = obj.get("output")
    if isinstance(output, list):
        for item in output:
            if isinstance(item, dict) and item.get("type") == "message":
                parts.append(_content_text(item.get("content")))
    return "".join(parts)


def sse_events(body: str) -> Iterator[Any]:
    """JSON payloads of the `data:` lines of an SSE body (`[DONE]` and junk skipped)."""
    for line in body.splitlines():
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if not data or data == "[DONE]":
            continue
        try:
            yield json.loads(data)
        except ValueError:
            continue


def decode_body(body: bytes, content_encoding: str) -> bytes | None:
    """Undo gzip/deflate; None for encodings we do not handle."""
    enc = content_encoding.strip().lower()
    if enc in ("", "identity"):
        return body
    if enc not in ("gzip", "x-gzip", "deflate"):
        return None
    try:  # bounded: a small compressed body must not expand without limit
        return zlib.decompressobj(47 if enc != "deflate" else 15).decompress(body, MAX_DECODED)
    except zlib.error:
        return None


def is_sse(content_type: str) -> bool:
    return content_type.split(";")[0].strip().lower() == "text/event-stream"


def _objects(body: bytes, content_type: str) -> list[Any] | None:
    """The JSON objects of a body: each SSE event, or the one JSON document (None: junk)."""
    text = body.decode("utf-8", "replace")
    if is_sse(content_type):
        return list(sse_events(text))
    try:
        return [json.loads(text)]
    except ValueError:
        return None


def _output_of(objects: list[Any] | None, sse: bool) -> tuple[str | None, Usage | None]:
    if objects is None:
        return None, None
    if not sse:
        obj = objects[0]
        return (text_of(obj) if is_completion(obj) else None), usage_of(obj)
    parts: list[str] = []
    usage: Usage | None = None
    completion = False
    for event in objects:
        completion = completion or is_completion(event)
        parts.append(text_of(event))
        usage = usage_of(event) or usage
    return ("".join(parts) if completion else None), usage


def extract_output(body: bytes, content_type: str) -> tuple[str | None, Usage | None]:
    """Assistant text (None: the body is no completion) and usage of a complete body."""
    return _output_of(_objects(body, content_type), is_sse(content_type))


def extract_usage_from_tail(tail: bytes, content_type: str) -> Usage | None:
    """Usage from the last bytes of a long SSE stream (its first, partial line dropped)."""
    if not is_sse(content_type):
        return None
    text = tail.decode("utf-8", "replace").split("\n", 1)[-1]
    usage: Usage | None = None
    for event in sse_events(text):
        usage = usage_of(event) or usage
    return usage


def _request_object(body: bytes) -> dict[str, Any] | None:
    try:
        obj = json.loads(body)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def extract_input(body: bytes) -> str:
    """The user's text in an OpenAI-style request: user messages, prompt, or input."""
    return _input_of(_request_object(body))


def _input_of(obj: dict[str, Any] | None) -> str:
    if obj is None:
        return ""
    parts: list[str] = []
    messages = obj.get("messages")
    if isinstance(messages, list):
        parts += [
            _content_text(m.get("content"))
            for m in messages
            if isinstance(m, dict) and m.get("role") == "user"
        ]
    for key in ("prompt", "input"):
        value = obj.get(key)
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, list):
            parts += [v for v in value if isinstance(v, str)]
            parts += [
                _content_text(v.get("content"))
                for v in value
                if isinstance(v, dict) and v.get("role", "user") == "user"
            ]
    return "\n".join(p for p in parts if p)


@dataclass(frozen=True, slots=True)
class RequestMeta:
    """What a trace records of an OpenAI-style request."""

    model: str = ""
    messages: tuple[Any, ...] = ()  # chat messages as sent, or the prompt as one user turn


def request_meta(body: bytes) -> RequestMeta:
    return _request_meta_of(_request_object(body))


def analyse_input(body: bytes) -> tuple[str, RequestMeta]:
    """`extract_input` and `request_meta` of one request body, parsed once."""
    obj = _request_object(body)
    return _input_of(obj), _request_meta_of(obj)


def _request_meta_of(obj: dict[str, Any] | None) -> RequestMeta:
    if obj is None:
        return RequestMeta()
    model = obj.get("model")
    messages = obj.get("messages")
    if not isinstance(messages, list):
        messages = obj.get("input")
    if isinstance(messages, str) or isinstance(obj.get("prompt"), str):
        messages = [{"role": "user", "content": messages or obj.get("prompt")}]
    return RequestMeta(
        model=model if isinstance(model, str) else "",
        messages=tuple(messages) if isinstance(messages, list) else (),
    )


@dataclass(frozen=True, slots=True)
class ResponseMeta:
    """Id, model and finish reasons of a completion (JSON or the events of an SSE body)."""

    id: str = ""
    model: str = ""
    finish_reasons: tuple[str, ...] = ()


def _meta_of(obj: object, meta: ResponseMeta) -> ResponseMeta:
    if not isinstance(obj, dict):
        return meta
    response = obj.get("response")
    inner: dict[str, Any] = response if isinstance(response, dict) else obj
    rid, model = inner.get("id"), inner.get("model")
    reasons = list(meta.finish_reasons)
    for choice in obj.get("choices") or ():
        reason = choice.get("finish_reason") if isinstance(choice, dict) else None
        if isinstance(reason, str) and reason:
            reasons.append(reason)
    # Responses API objects and events carry a status; chat completions do not.
    status = (
        inner.get("status") if str(obj.get("type") or "response").startswith("response") else None
    )
    if isinstance(status, str) and status not in ("in_progress", "queued") and not reasons:
        reasons.append(status)  # Responses API: completed, incomplete, failed
    return ResponseMeta(
        id=rid if isinstance(rid, str) and rid else meta.id,
        model=model if isinstance(model, str) and model else meta.model,
        finish_reasons=tuple(reasons),
    )


def _response_meta_of(objects: list[Any] | None) -> ResponseMeta:
    meta = ResponseMeta()
    for obj in objects or ():
        meta = _meta_of(obj, meta)
    return meta


def response_meta(body: bytes, content_type: str) -> ResponseMeta:
    return _response_meta_of(_objects(body, content_type))


def analyse_output(body: bytes, content_type: str) -> tuple[str | None, Usage | None, ResponseMeta]:
    """`extract_output` and `response_meta` of one body, parsed once."""
    objects = _objects(body, content_type)
    text, usage = _output_of(objects, is_sse(content_type))
    return text, usage, _response_meta_of(objects)

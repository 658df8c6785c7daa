from __future__ import annotations

import json

import pytest

from suite.llm_usage import (
    detect_llm_api,
    estimate_tokens,
    parse_llm_request,
    parse_llm_response,
    summarise_llm_call,
)


def sse(*events: object, done: bool = False, named: bool = False) -> bytes:
    out = b""
    for e in events:
        if named and isinstance(e, dict):
            out += f"event: {e.get('type')}\n".encode()
        out += b"data: " + json.dumps(e).encode() + b"\n\n"
    return out + (b"data: [DONE]\n\n" if done else b"")


CHAT_USAGE = {
    "prompt_tokens": 20,
    "completion_tokens": 7,
    "total_tokens": 27,
    "prompt_tokens_details": {"cached_tokens": 8},
}


@pytest.mark.parametrize(
    ("method", "path", "family", "api"),
    [
        ("POST", "/v1/chat/completions", "openai", "chat"),
        ("POST", "/openai/v1/chat/completions?x=1", "openai", "chat"),
        ("POST", "/v1/responses", "openai", "responses"),
        ("POST", "/v1/embeddings", "openai", "embeddings"),
        ("POST", "/v1/messages", "anthropic", "messages"),
        ("POST", "/v1/messages", "openai", None),
        ("GET", "/v1/chat/completions", "openai", None),
        ("POST", "/claims/1", "openai", None),
    ],
)
def test_detect_llm_api(method: str, path: str, family: str, api: str | None) -> None:
    assert detect_llm_api(method, path, family) == api


def test_chat_plain() -> None:
    body = json.dumps(
        {
            "model": "gpt-4o-2024-08-06",
            "choices": [{"finish_reason": "stop", "message": {"content": "hi"}}],
            "usage": CHAT_USAGE,
        }
    ).encode()
    r = parse_llm_response("chat", body, streamed=False)
    assert (r.served_model, r.prompt_tokens, r.completion_tokens, r.cached_prompt_tokens) == (
        "gpt-4o-2024-08-06",
        20,
        7,
        8,
    )
    assert (r.finish_reason, r.usage_source) == ("stop", "provider")


def test_chat_stream_with_and_without_include_usage() -> None:
    chunks = [
        {"model": "m-1", "choices": [{"delta": {"role": "assistant", "content": ""}}]},
        {"model": "m-1", "choices": [{"delta": {"content": "Hello there"}}]},
        {"model": "m-1", "choices": [{"delta": {}, "finish_reason": "length"}]},
    ]
    with_usage = sse(*chunks, {"model": "m-1", "choices": [], "usage": CHAT_USAGE}, done=True)
    r = parse_llm_response("chat", with_usage, streamed=True)
    assert (r.prompt_tokens, r.completion_tokens, r.usage_source, r.finish_reason) == (
        20,
        7,
        "provider",
        "length",
    )
    assert with_usage[r.first_content_offset :].startswith(
        b'data: {"model": "m-1", "choices": [{"delta": {"content": "Hello'
    )
    without = parse_llm_response("chat", sse(*chunks, done=True), streamed=True)
    req = parse_llm_request(
        "chat",
        json.dumps(
            {"model": "m", "stream": True, "messages": [{"role": "user", "content": "x" * 40}]}
        ).encode(),
    )
    merged = summarise_llm_call(req, without)
    assert merged.usage_source == "estimated"
    assert (merged.prompt_tokens, merged.completion_tokens) == (
        10,
        estimate_tokens(len("Hello there")),
    )
    assert (merged.requested_model, merged.served_model) == ("m", "m-1")


def test_responses_plain_and_streamed() -> None:
    response = {
        "model": "gpt-4o-mini-2024-07-18",
        "status": "completed",
        "output": [{"content": [{"type": "output_text", "text": "ok"}]}],
        "usage": {
            "input_tokens": 11,
            "output_tokens": 3,
            "total_tokens": 14,
            "input_tokens_details": {"cached_tokens": 0},
        },
    }
    r = parse_llm_response("responses", json.dumps(response).encode(), streamed=False)
    assert (r.prompt_tokens, r.completion_tokens, r.cached_prompt_tokens, r.finish_reason) == (
        11,
        3,
        0,
        "completed",
    )
    stream = sse(
        {
            "type": "response.created",
            "response": {**response, "status": "in_progress", "usage": None},
        },
        {"type": "response.output_text.delta", "delta": "ok"},
        {"type": "response.completed", "response": response},
        named=True,
    )
    s = parse_llm_response("responses", stream, streamed=True)
    assert (s.prompt_tokens, s.completion_tokens, s.usage_source, s.served_model) == (
        11,
        3,
        "provider",
        "gpt-4o-mini-2024-07-18",
    )
    assert s.first_content_offset is not None


def test_embeddings() -> None:
    body = json.dumps(
        {
            "object": "list",
            "model": "text-embedding-3-small",
            "data": [],
            "usage": {"prompt_tokens": 5, "total_tokens": 5},
        }
    ).encode()
    r = parse_llm_response("embeddings", body, streamed=False)
    assert (r.prompt_tokens, r.completion_tokens, r.usage_source) == (5, 0, "provider")


def test_anthropic_plain_and_streamed() -> None:
    usage = {
        "input_tokens": 30,
        "output_tokens": 9,
        "cache_read_input_tokens": 12,
        "cache_creation_input_tokens": 0,
    }
    plain = {
        "type": "message",
        "model": "claude-3-5-sonnet-20241022",
        "stop_reason": "end_turn",
        "content": [{"type": "text", "text": "Hi"}],
        "usage": usage,
    }
    r = parse_llm_response("messages", json.dumps(plain).encode(), streamed=False)
    assert (r.prompt_tokens, r.completion_tokens, r.cached_prompt_tokens, r.finish_reason) == (
        30,
        9,
        12,
        "end_turn",
    )
    stream = sse(
        {
            "type": "message_start",
            "message": {
                "model": "claude-3-5-sonnet-20241022",
                "usage": {"input_tokens": 30, "output_tokens": 1, "cache_read_input_tokens": 12},
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 9},
        },
        {"type": "message_stop"},
        named=True,
    )
    s = parse_llm_response("messages", stream, streamed=True)
    assert (s.prompt_tokens, s.completion_tokens, s.cached_prompt_tokens, s.usage_source) == (
        30,
        9,
        12,
        "provider",
    )


def test_truncated_anthropic_stream_keeps_the_reported_prompt_and_estimates_the_rest() -> None:
    stream = sse(
        {
            "type": "message_start",
            "message": {"model": "claude-x", "usage": {"input_tokens": 30, "output_tokens": 1}},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "Hello world"},
        },
        named=True,
    )[:-30]
    r = summarise_llm_call(
        parse_llm_request("messages", b"{}"), parse_llm_response("messages", stream, streamed=True)
    )
    assert r.prompt_tokens == 30
    assert r.usage_source == "estimated"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\x00\x01\x02\xff" * 100,
        b'{"usage": "weird"}',
        b"[1,2,3]",
        b'{"choices": [null, 3]}',
        b"data: {broken\n\ndata: [DONE]\n\n",
        json.dumps({"usage": {"prompt_tokens": True}}).encode(),
    ],
)
@pytest.mark.parametrize("api", ["chat", "responses", "embeddings", "messages"])
@pytest.mark.parametrize("streamed", [False, True])
def test_garbage_never_raises(body: bytes, api: str, streamed: bool) -> None:
    r = summarise_llm_call(
        parse_llm_request(api, body), parse_llm_response(api, body, streamed=streamed)
    )
    assert r.api == api
    assert r.usage_source in (None, "estimated")

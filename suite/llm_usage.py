"""Token usage, model and finish reason from LLM API calls (OpenAI Chat Completions,
Responses and Embeddings; Anthropic Messages; any OpenAI-compatible server), plain or
streamed. Pure and total: garbage in gives empty fields out, never an exception.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from suite.sse import iter_sse_events, json_or_none

MAX_PARSE_BYTES = 16 * 1024 * 1024
# OpenAI's rule of thumb (about four characters of English per token); used only when the
# provider reported no usage, and the row then says usage_source = 'estimated'.
CHARS_PER_TOKEN = 4


@dataclass
class LlmRequest:
    api: str
    model: str | None = None
    stream: bool = False
    include_usage: bool = False
    prompt_chars: int = 0


@dataclass
class LlmResult:
    api: str
    requested_model: str | None = None
    served_model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_prompt_tokens: int | None = None
    cache_creation_tokens: int | None = None
    finish_reason: str | None = None
    usage_source: str | None = None  # 'provider' | 'estimated' | None (nothing to go on)
    first_content_offset: int | None = None  # streams: where the first content arrived
    output_chars: int = 0


def detect_llm_api(method: str, path: str, api_family: str) -> str | None:
    """'chat' | 'responses' | 'embeddings' | 'messages' for an LLM API call, else None."""
    if method != "POST":
        return None
    bare = path.split("?", 1)[0].rstrip("/")
    if api_family == "anthropic":
        return "messages" if bare.endswith("/messages") else None
    if bare.endswith("/chat/completions"):
        return "chat"
    if bare.endswith("/responses"):
        return "responses"
    if bare.endswith("/embeddings"):
        return "embeddings"
    return None


def estimate_tokens(chars: int) -> int:
    return math.ceil(chars / CHARS_PER_TOKEN) if chars > 0 else 0


def _text_chars(content: Any) -> int:
    """Characters of text in a message content (a string, or a list of parts/blocks)."""
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        total = 0
        for part in content:
            if isinstance(part, str):
                total += len(part)
            elif isinstance(part, dict):
                for key in ("text", "input_text", "content"):
                    value = part.get(key)
                    if isinstance(value, str):
                        total += len(value)
                    elif isinstance(value, list):
                        total += _text_chars(value)
        return total
    return 0


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _get(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def parse_llm_request(api: str, body: bytes | None) -> LlmRequest:
    req = LlmRequest(api)
    obj = json_or_none(body)
    if not isinstance(obj, dict):
        return req
    model = obj.get("model")
    req.model = model if isinstance(model, str) else None
    req.stream = obj.get("stream") is True
    req.include_usage = _get(obj, "stream_options", "include_usage") is True
    chars = 0
    if api in ("chat", "messages"):
        for message in obj.get("messages") or []:
            if isinstance(message, dict):
                chars += _text_chars(message.get("content"))
        chars += _text_chars(obj.get("system"))
    elif api == "responses":
        inp = obj.get("input")
        if isinstance(inp, str):
            chars += len(inp)
        elif isinstance(inp, list):
            for item in inp:
                chars += (
                    _text_chars(item.get("content"))
                    if isinstance(item, dict)
                    else _text_chars([item])
                )
        chars += _text_chars(obj.get("instructions"))
    elif api == "embeddings":
        inp = obj.get("input")
        chars += (
            len(inp)
            if isinstance(inp, str)
            else sum(len(x) for x in inp or [] if isinstance(x, str))
        )
    req.prompt_chars = chars
    return req


# -- responses -------------------------------------------------------------------------
def _apply_openai_usage(result: LlmResult, usage: Any) -> None:
    if not isinstance(usage, dict):
        return
    prompt = _int(usage.get("prompt_tokens", usage.get("input_tokens")))
    completion = _int(usage.get("completion_tokens", usage.get("output_tokens")))
    if prompt is None and completion is None:
        return
    result.prompt_tokens = prompt
    result.completion_tokens = completion if completion is not None else 0
    cached = _get(usage, "prompt_tokens_details", "cached_tokens")
    if cached is None:
        cached = _get(usage, "input_tokens_details", "cached_tokens")
    result.cached_prompt_tokens = _int(cached)
    result.usage_source = "provider"


def _apply_anthropic_usage(result: LlmResult, usage: Any, *, final: bool) -> None:
    if not isinstance(usage, dict):
        return
    if _int(usage.get("input_tokens")) is not None:
        result.prompt_tokens = usage["input_tokens"]
    if _int(usage.get("output_tokens")) is not None:
        result.completion_tokens = usage["output_tokens"]
    for key, attr in (("cache_read_input_tokens", "cached_prompt_tokens"),
                      ("cache_creation_input_tokens", "cache_creation_tokens")):  # fmt: skip
        if _int(usage.get(key)) is not None:
            setattr(result, attr, usage[key])
    if final and result.prompt_tokens is not None and result.completion_tokens is not None:
        result.usage_source = "provider"


def parse_llm_response(api: str, body: bytes | None, *, streamed: bool) -> LlmResult:
    """Usage, served model and finish reason from a response body (JSON or SSE)."""
    result = LlmResult(api)
    if not body or len(body) > MAX_PARSE_BYTES:
        return result
    if streamed:
        _parse_stream(api, body, result)
        return result
    obj = json_or_none(body)
    if not isinstance(obj, dict):
        return result
    model = obj.get("model")
    result.served_model = model if isinstance(model, str) else None
    if api == "messages":
        _apply_anthropic_usage(result, obj.get("usage"), final=True)
        result.finish_reason = (
            obj.get("stop_reason") if isinstance(obj.get("stop_reason"), str) else None
        )
        result.output_chars = _text_chars(obj.get("content"))
    elif api == "responses":
        _apply_openai_usage(result, obj.get("usage"))
        result.finish_reason = _responses_finish(obj)
        result.output_chars = sum(
            _text_chars(o.get("content")) for o in obj.get("output") or [] if isinstance(o, dict)
        )
    else:
        _apply_openai_usage(result, obj.get("usage"))
        choices = obj.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            fr = choices[0].get("finish_reason")
            result.finish_reason = fr if isinstance(fr, str) else None
            result.output_chars = _text_chars(_get(choices[0], "message", "content"))
    return result


def _responses_finish(response: Any) -> str | None:
    reason = _get(response, "incomplete_details", "reason")
    if isinstance(reason, str):
        return reason
    status = _get(response, "status")
    return status if isinstance(status, str) else None


def _parse_stream(api: str, body: bytes, result: LlmResult) -> None:
    for ev in iter_sse_events(body):
        if ev.data == "[DONE]":
            continue
        obj = json_or_none(ev.data)
        if not isinstance(obj, dict):
            continue
        text = ""
        if api == "messages":
            kind = obj.get("type")
            if kind == "message_start":
                msg = obj.get("message")
                model = _get(msg, "model")
                result.served_model = model if isinstance(model, str) else result.served_model
                _apply_anthropic_usage(result, _get(msg, "usage"), final=False)
            elif kind == "content_block_delta":
                delta = obj.get("delta") or {}
                text = (
                    (delta.get("text") or delta.get("partial_json") or delta.get("thinking") or "")
                    if isinstance(delta, dict)
                    else ""
                )
            elif kind == "message_delta":
                reason = _get(obj, "delta", "stop_reason")
                result.finish_reason = reason if isinstance(reason, str) else result.finish_reason
                _apply_anthropic_usage(result, obj.get("usage"), final=True)
        elif api == "responses":
            kind = obj.get("type")
            if kind in (
                "response.output_text.delta",
                "response.function_call_arguments.delta",
                "response.refusal.delta",
            ):
                delta_text = obj.get("delta")
                text = delta_text if isinstance(delta_text, str) else ""
            response = obj.get("response")
            if isinstance(response, dict):
                model = response.get("model")
                result.served_model = model if isinstance(model, str) else result.served_model
                if kind in ("response.completed", "response.incomplete", "response.failed"):
                    _apply_openai_usage(result, response.get("usage"))
                    result.finish_reason = _responses_finish(response)
        else:
            model = obj.get("model")
            if isinstance(model, str):
                result.served_model = model
            for choice in obj.get("choices") or []:
                if not isinstance(choice, dict):
                    continue
                delta = choice.get("delta") or {}
                if isinstance(delta, dict):
                    content = delta.get("content")
                    text += content if isinstance(content, str) else ""
                    for call in delta.get("tool_calls") or []:
                        args = _get(call, "function", "arguments")
                        text += args if isinstance(args, str) else ""
                if isinstance(choice.get("finish_reason"), str):
                    result.finish_reason = choice["finish_reason"]
            if obj.get("usage"):
                _apply_openai_usage(result, obj.get("usage"))
        if text:
            result.output_chars += len(text)
            if result.first_content_offset is None:
                result.first_content_offset = ev.offset


def summarise_llm_call(request: LlmRequest, response: LlmResult) -> LlmResult:
    """Merge request and response; estimate what the provider did not report."""
    response.requested_model = request.model
    if response.served_model is None:
        response.served_model = request.model
    if response.usage_source == "provider":
        return response
    if response.prompt_tokens is None and request.prompt_chars:
        response.prompt_tokens = estimate_tokens(request.prompt_chars)
    if response.completion_tokens is None and (
        response.output_chars or response.prompt_tokens is not None
    ):
        response.completion_tokens = estimate_tokens(response.output_chars)
    if response.prompt_tokens is not None or response.completion_tokens is not None:
        response.usage_source = "estimated"
    return response

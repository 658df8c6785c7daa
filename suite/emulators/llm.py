"""An emulated LLM provider for tests, benchmarks and the demo: ONE HTTP/1.1 server that
speaks the OpenAI API and the Anthropic Messages API closely enough for the official
`openai` and `anthropic` SDKs. Loopback use only; it is never a real service and its
answers are filler words.

Start it with `python -m suite.emulators.llm --port 0` (prints
`llm emulator listening on http://HOST:PORT`), or in-process with `start_in_thread()`.
Clients: `openai.OpenAI(base_url=URL + "/v1", api_key="x")`,
`anthropic.Anthropic(base_url=URL, api_key="x")`. Paths are matched on their ending, so
a prefix such as /openai/v1/chat/completions works too.

  POST .../chat/completions      OpenAI chat (plain, or `stream: true` as SSE ending with
                                 `data: [DONE]`; usage is streamed only with
                                 `stream_options: {"include_usage": true}`, as a last chunk
                                 with empty `choices`)
  POST .../responses             OpenAI Responses (plain and streamed: response.created ...
                                 response.completed, or response.incomplete when
                                 max_output_tokens cut the answer)
  POST .../embeddings            OpenAI embeddings (float or base64)
  GET  .../models                OpenAI model list (Anthropic's if `anthropic-version` is sent)
  POST .../messages              Anthropic Messages (plain and streamed)
  POST .../messages/count_tokens Anthropic token counting

Usage rule (deterministic; `count_input_tokens` and `answer_length` compute it):
  * a text's tokens = its number of whitespace-separated words;
  * a content part that is not text (image, file, audio) = 85 tokens;
  * input tokens = sum over messages of (content tokens + 4) + 3. The system prompt
    (chat `system`/`developer` message, Responses `instructions`, Anthropic `system`)
    is a message; a Responses `input` string is one user message;
  * embeddings: input tokens = words of each input (or the length of a token-id list),
    no overhead;
  * the answer has N = 8 + (sha256(prompt) mod 57) words (8..64), or `max_tokens` /
    `max_completion_tokens` / `max_output_tokens` when that is smaller (then
    finish_reason "length", stop_reason "max_tokens", Responses status "incomplete");
    output tokens = N, and a stream sends one word per delta;
  * cache: the second and later requests with the same served model and the same
    prompt report half the input (input // 2) as cached. OpenAI counts cached tokens
    inside prompt_tokens/input_tokens (prompt_tokens_details.cached_tokens,
    input_tokens_details.cached_tokens); Anthropic, like the real API, reports
    `input_tokens` WITHOUT them and the cached part as `cache_read_input_tokens`.

Served models differ from aliases as the real APIs do (gpt-4o-mini -> gpt-4o-mini-2024-07-18,
claude-3-5-sonnet-latest -> claude-3-5-sonnet-20241022, ...); unknown names are served as
requested.

Faults and timing (CLI flag for the process; the request header wins):
  --latency-ms / x-emulator-latency-ms                 delay before the first byte
  --token-interval-ms / x-emulator-token-interval-ms   delay before each streamed word but
                                                       the first
  --error-rate P        this fraction of requests gets a 500 (exactly: the 1/P-th, 2/P-th, ...)
  --rate-limit-rpm N    more than N requests in 60 s: 429 with Retry-After
  x-emulator-status: 400|401|404|429|500|503|...       that status with the provider's error body
  x-emulator-truncate: 1    stop half-way through the answer (no final usage events, no
                            [DONE], no terminating chunk) and close the connection
  GET .../_emulator/fault?status=S&latency_ms=D   from now on answer every API request
                            with status S (the provider's error body; 429 with Retry-After)
                            and/or after D ms: one provider of several failing, for
                            fallback tests; `/_emulator/fault` alone restores the CLI
                            settings. Answers the fault now in force.
  GET .../_emulator/stats   {"requests": N}: API requests received so far (faults included)
Every answer carries x-emulator-authorization-sha256 / x-emulator-x-api-key-sha256: the
sha256 of that request header's value when it was sent (which key a gateway forwarded,
without the key appearing anywhere).
Error bodies: OpenAI {"error": {"message", "type", "param", "code"}};
Anthropic {"type": "error", "error": {"type", "message"}}.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import math
import random
import secrets
import signal
import struct
import sys
import threading
import time
import traceback
import urllib.parse
from collections import deque
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

MESSAGE_OVERHEAD = 4
REPLY_PRIMING = 3
NON_TEXT_PART_TOKENS = 85
MIN_ANSWER_WORDS, MAX_ANSWER_WORDS = 8, 64
CACHE_FRACTION = 0.5

SERVED_MODELS = {
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
    "claude-3-5-sonnet-latest": "claude-3-5-sonnet-20241022",
    "claude-3-5-haiku-latest": "claude-3-5-haiku-20241022",
    "claude-3-7-sonnet-latest": "claude-3-7-sonnet-20250219",
    "claude-haiku-4-5": "claude-haiku-4-5-20251001",
    "claude-sonnet-4-5": "claude-sonnet-4-5-20250929",
    "claude-opus-4-5": "claude-opus-4-5-20251101",
}
OPENAI_MODELS = [
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-4.1",
    "gpt-4.1-mini",
    "text-embedding-3-small",
    "text-embedding-3-large",
]
ANTHROPIC_MODELS = [
    "claude-sonnet-4-5-20250929",
    "claude-haiku-4-5-20251001",
    "claude-3-5-sonnet-20241022",
    "claude-3-5-haiku-20241022",
]
VOCAB = (
    "policy claim premium deductible coverage insured vehicle property damage liability "
    "adjuster estimate repair invoice payment approved pending review customer broker "
    "renewal quote risk exposure incident report settlement reserve limit excess "
    "endorsement schedule underwriting assessment the a of to and for with is will be"
).split()
MAX_HEADER_BYTES = 64 * 1024


# --- the usage rule -------------------------------------------------------------------


def _words(text: str) -> int:
    return len(text.split())


def _content_tokens(content: Any) -> int:
    if content is None:
        return 0
    if isinstance(content, str):
        return _words(content)
    if isinstance(content, list):
        return sum(_content_tokens(part) for part in content)
    if isinstance(content, dict):
        if isinstance(content.get("text"), str):
            return _words(content["text"])
        if "content" in content:  # tool results carry their own content
            return _content_tokens(content["content"])
        if isinstance(content.get("output"), str):  # Responses function_call_output
            return _words(content["output"])
        return NON_TEXT_PART_TOKENS
    return _words(str(content))


def count_input_tokens(messages: list[tuple[str, Any]]) -> int:
    """Input tokens of a prompt given as (role, content) pairs (see the module docstring)."""
    return sum(_content_tokens(c) + MESSAGE_OVERHEAD for _, c in messages) + REPLY_PRIMING


def _digest(messages: list[tuple[str, Any]]) -> str:
    canonical = json.dumps(messages, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def answer_length(messages: list[tuple[str, Any]]) -> int:
    """The natural answer length in words (before any max_tokens cut)."""
    span = MAX_ANSWER_WORDS - MIN_ANSWER_WORDS + 1
    return MIN_ANSWER_WORDS + int(_digest(messages)[:8], 16) % span


def answer_words(messages: list[tuple[str, Any]], n: int) -> list[str]:
    rnd = random.Random(int(_digest(messages)[8:24], 16))
    words = [rnd.choice(VOCAB) for _ in range(n)]
    if words:
        words[0] = words[0].capitalize()
        words[-1] += "."
    return words


def served_model(model: str) -> str:
    return SERVED_MODELS.get(model, model)


# --- HTTP plumbing ----------------------------------------------------------------------


class Request:
    def __init__(
        self, method: str, path: str, headers: dict[str, str], body: bytes, query: str = ""
    ):
        self.method, self.path, self.headers, self.body = method, path, headers, body
        self.query = query


class Abort(Exception):
    """Raised by a handler that closed the connection on purpose (truncation)."""


class HttpError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param = status, message, param


def _head(status: int, headers: list[tuple[str, str]]) -> bytes:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Overloaded" if status == 529 else "Status"
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{k}: {v}" for k, v in [*headers, ("Server", "aiops-llm-emulator/1")]]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    try:
        method, target, _ = lines[0].split(" ", 2)
    except ValueError:
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    body = b""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                break
            body += (await reader.readexactly(size + 2))[:-2]
    elif int(headers.get("content-length", "0") or 0):
        body = await reader.readexactly(int(headers["content-length"]))
    path, _, query = target.partition("?")
    return Request(method.upper(), path, headers, body, query)


class Reply:
    """Writes one response: a JSON body, or an SSE stream in chunked encoding."""

    def __init__(
        self, writer: asyncio.StreamWriter, provider: str, truncate: bool, body_sha256: str = ""
    ):
        self.writer, self.provider, self.truncate = writer, provider, truncate
        self.request_id = "req_" + secrets.token_hex(12)
        self.body_sha256 = body_sha256
        self.streaming = False
        # sha256 of each credential header received (authorization, x-api-key), so a test
        # can show which key a gateway forwarded without the key appearing anywhere.
        self.credential_headers: list[tuple[str, str]] = []

    def _id_headers(self) -> list[tuple[str, str]]:
        name = "request-id" if self.provider == "anthropic" else "x-request-id"
        # What arrived, so a test can show a proxy forwarded the body unchanged.
        return [
            (name, self.request_id),
            ("x-emulator-request-sha256", self.body_sha256),
            *self.credential_headers,
        ]

    async def json(
        self, status: int, obj: Any, headers: list[tuple[str, str]] | None = None
    ) -> None:
        body = json.dumps(obj).encode()
        head = _head(
            status,
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                *self._id_headers(),
                *(headers or []),
            ],
        )
        if self.truncate and status == 200:
            self.writer.write(head + body[: len(body) // 2])
            await self.writer.drain()
            raise Abort
        self.writer.write(head + body)
        await self.writer.drain()

    async def start_stream(self) -> None:
        self.streaming = True
        self.writer.write(
            _head(
                200,
                [
                    ("Content-Type", "text/event-stream; charset=utf-8"),
                    ("Transfer-Encoding", "chunked"),
                    ("Cache-Control", "no-cache"),
                    *self._id_headers(),
                ],
            )
        )
        await self.writer.drain()

    async def event(self, data: Any, event: str | None = None) -> None:
        text = data if isinstance(data, str) else json.dumps(data)
        frame = (f"event: {event}\n" if event else "") + f"data: {text}\n\n"
        raw = frame.encode()
        self.writer.write(f"{len(raw):x}\r\n".encode() + raw + b"\r\n")
        await self.writer.drain()

    async def end_stream(self) -> None:
        self.writer.write(b"0\r\n\r\n")
        await self.writer.drain()


# --- the emulator -----------------------------------------------------------------------


def _error_body(provider: str, status: int, message: str, param: str | None = None) -> Any:
    if provider == "anthropic":
        kind = {
            400: "invalid_request_error",
            401: "authentication_error",
            403: "permission_error",
            404: "not_found_error",
            413: "request_too_large",
            429: "rate_limit_error",
            503: "overloaded_error",
            529: "overloaded_error",
        }.get(status)
        kind = kind or ("api_error" if status >= 500 else "invalid_request_error")
        return {"type": "error", "error": {"type": kind, "message": message}}
    kind, code = {
        401: ("invalid_request_error", "invalid_api_key"),
        404: ("invalid_request_error", "unknown_url"),
        429: ("requests", "rate_limit_exceeded"),
    }.get(status, (None, None))
    kind = kind or ("server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def _default_message(status: int) -> str:
    if status == 429:
        return "Rate limit reached (emulated). Please try again in 1s."
    if status >= 500:
        return "The server had an error while processing your request (emulated)."
    return f"Emulated error {status} (x-emulator-status)."


def _number(value: str | None, default: float) -> float:
    try:
        return float(value) if value is not None else default
    except ValueError:
        return default


class Emulator:
    def __init__(
        self,
        latency_ms: float = 0,
        token_interval_ms: float = 0,
        error_rate: float = 0.0,
        rate_limit_rpm: int = 0,
    ):
        self.latency_ms, self.token_interval_ms = latency_ms, token_interval_ms
        self.error_rate, self.rate_limit_rpm = error_rate, rate_limit_rpm
        self.default_latency_ms = latency_ms
        self.forced_status: int | None = None  # set by /_emulator/fault
        self.requests = 0  # API requests received (not /_emulator/ ones)
        self._seen: set[str] = set()
        self._error_acc = 0.0
        self._window: deque[float] = deque()
        self.connections: set[asyncio.Task[Any]] = set()
        # (method, path ending) -> handler
        self.routes: dict[tuple[str, str], Callable[..., Any]] = {
            ("POST", "/messages/count_tokens"): self.count_tokens,
            ("POST", "/chat/completions"): self.chat,
            ("POST", "/embeddings"): self.embeddings,
            ("POST", "/responses"): self.responses,
            ("POST", "/messages"): self.messages,
            ("GET", "/models"): self.models,
        }

    # connection loop
    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.connections.add(task)
        try:
            while True:
                req = await _read_request(reader)
                if req is None:
                    return
                await self.dispatch(req, writer)
                if req.headers.get("connection", "").lower() == "close":
                    return
        except (Abort, ConnectionError, asyncio.IncompleteReadError, ValueError):
            return
        except asyncio.CancelledError:  # shutdown; returning quietly keeps 3.11's streams happy
            return
        finally:
            writer.close()
            if task is not None:
                self.connections.discard(task)

    async def dispatch(self, req: Request, writer: asyncio.StreamWriter) -> None:
        path, h = req.path.rstrip("/"), req.headers
        anthropic = path.endswith(("/messages", "/messages/count_tokens")) or (
            path.endswith("/models") and "anthropic-version" in h
        )
        provider = "anthropic" if anthropic else "openai"
        reply = Reply(
            writer,
            provider,
            h.get("x-emulator-truncate", "") in ("1", "true"),
            hashlib.sha256(req.body).hexdigest(),
        )
        reply.credential_headers = [
            (f"x-emulator-{name}-sha256", hashlib.sha256(h[name].encode()).hexdigest())
            for name in ("authorization", "x-api-key")
            if name in h
        ]
        if "/_emulator/" in path:
            return await reply.json(200, self._control(req.path, req.query))
        self.requests += 1
        latency = _number(h.get("x-emulator-latency-ms"), self.latency_ms)
        interval = _number(h.get("x-emulator-token-interval-ms"), self.token_interval_ms) / 1000
        if latency > 0:
            await asyncio.sleep(latency / 1000)
        handler = next(
            (f for (m, p), f in self.routes.items() if m == req.method and path.endswith(p)),
            None,
        )
        try:
            if handler is None:
                raise HttpError(404, f"Unknown request URL: {req.method} {req.path}.")
            forced = h.get("x-emulator-status", "")
            if not forced and self.forced_status is not None:
                forced = str(self.forced_status)
            if forced.isdigit() and int(forced) >= 400:
                status = int(forced)
                retry = [("Retry-After", "1")] if status == 429 else []
                body = _error_body(provider, status, _default_message(status))
                return await reply.json(status, body, retry)
            if limited := self._rate_limited():
                body = _error_body(provider, 429, limited[1])
                return await reply.json(429, body, [("Retry-After", str(limited[0]))])
            self._error_acc += self.error_rate
            if self._error_acc >= 1 - 1e-9:
                self._error_acc -= 1
                raise HttpError(500, _default_message(500))
            try:
                body = json.loads(req.body) if req.body else {}
            except ValueError:
                raise HttpError(400, "We could not parse the JSON body of your request.") from None
            if not isinstance(body, dict):
                raise HttpError(400, "The request body must be a JSON object.")
            await handler(body, reply, interval)
        except HttpError as e:
            await reply.json(e.status, _error_body(provider, e.status, e.message, e.param))
        except (Abort, ConnectionError):
            raise
        except Exception as e:  # an emulator bug: say so, like a provider's 500
            traceback.print_exc()
            if reply.streaming:
                raise Abort from e
            await reply.json(500, _error_body(provider, 500, f"emulator error: {e!r}"))

    def _control(self, path: str, query: str) -> dict[str, Any]:
        """/_emulator/fault (set or clear the fault in force) and /_emulator/stats."""
        if path.rstrip("/").endswith("/_emulator/fault"):
            params = dict(urllib.parse.parse_qsl(query))
            status = params.get("status", "")
            self.forced_status = int(status) if status.isdigit() and int(status) >= 400 else None
            self.latency_ms = _number(params.get("latency_ms"), self.default_latency_ms)
        return {
            "requests": self.requests,
            "status": self.forced_status,
            "latency_ms": self.latency_ms,
        }

    def _rate_limited(self) -> tuple[int, str] | None:
        if self.rate_limit_rpm <= 0:
            return None
        now = time.monotonic()
        while self._window and now - self._window[0] >= 60:
            self._window.popleft()
        if len(self._window) >= self.rate_limit_rpm:
            wait = max(1, math.ceil(60 - (now - self._window[0])))
            n = self.rate_limit_rpm
            return wait, (
                f"Rate limit reached for requests per min (RPM): Limit {n}, Used {n}, "
                f"Requested 1. Please try again in {wait}s. (emulated)"
            )
        self._window.append(now)
        return None

    # the answer shared by every generating endpoint
    def _answer(self, model: str, messages: list[tuple[str, Any]], limit: Any) -> dict[str, Any]:
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise HttpError(400, f"Invalid max tokens value {limit!r}: must be at least 1.")
        natural = answer_length(messages)
        n = natural if limit is None else min(natural, limit)
        tokens = count_input_tokens(messages)
        key = served_model(model) + "\n" + _digest(messages)
        cached = int(tokens * CACHE_FRACTION) if key in self._seen else 0
        self._seen.add(key)
        words = answer_words(messages, n)
        return {
            "model": served_model(model),
            "words": words,
            "input": tokens,
            "cached": cached,
            "output": n,
            "cut": n < natural,
        }

    @staticmethod
    async def _pace(i: int, interval: float) -> None:
        if i and interval > 0:
            await asyncio.sleep(interval)

    # --- OpenAI ---
    @staticmethod
    def _require_model(body: dict[str, Any]) -> str:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise HttpError(400, "you must provide a model parameter", "model")
        return model

    async def chat(self, body: dict[str, Any], reply: Reply, interval: float) -> None:
        model = self._require_model(body)
        msgs = body.get("messages")
        if not isinstance(msgs, list) or not msgs:
            raise HttpError(400, "[] is too short - 'messages'", "messages")
        messages = [(str(m.get("role", "")), m.get("content")) for m in msgs if isinstance(m, dict)]
        limit = body.get("max_completion_tokens", body.get("max_tokens"))
        a = self._answer(model, messages, limit)
        finish = "length" if a["cut"] else "stop"
        usage = {
            "prompt_tokens": a["input"],
            "completion_tokens": a["output"],
            "total_tokens": a["input"] + a["output"],
            "prompt_tokens_details": {"cached_tokens": a["cached"], "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }
        base = {
            "id": "chatcmpl-" + secrets.token_hex(12),
            "created": int(time.time()),
            "model": a["model"],
            "service_tier": "default",
            "system_fingerprint": "fp_emulator",
        }
        if not body.get("stream"):
            message: dict[str, Any] = {
                "role": "assistant",
                "content": " ".join(a["words"]),
                "refusal": None,
                "annotations": [],
            }
            choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
            return await reply.json(
                200, {**base, "object": "chat.completion", "choices": [choice], "usage": usage}
            )
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        base = {**base, "object": "chat.completion.chunk"}
        if include_usage:
            base["usage"] = None

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            c = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return {**base, "choices": [c]}

        await reply.start_stream()
        await reply.event(chunk({"role": "assistant", "content": "", "refusal": None}))
        for i, word in enumerate(a["words"]):
            self._check_truncate(reply, i, len(a["words"]))
            await self._pace(i, interval)
            await reply.event(chunk({"content": word if i == 0 else " " + word}))
        self._check_truncate(reply, len(a["words"]), len(a["words"]))
        await reply.event(chunk({}, finish))
        if include_usage:
            await reply.event({**base, "choices": [], "usage": usage})
        await reply.event("[DONE]")
        await reply.end_stream()

    @staticmethod
    def _check_truncate(reply: Reply, i: int, n: int) -> None:
        """Cut a truncated stream half-way (a one-word answer: after its word)."""
        if reply.truncate and i == max(1, n // 2):
            raise Abort

    async def responses(self, body: dict[str, Any], reply: Reply, interval: float) -> None:
        model = self._require_model(body)
        messages: list[tuple[str, Any]] = []
        if body.get("instructions"):
            messages.append(("system", body["instructions"]))
        inp = body.get("input")
        if isinstance(inp, str):
            messages.append(("user", inp))
        elif isinstance(inp, list):
            for item in inp:
                if not isinstance(item, dict):
                    item = {"role": "user", "content": item}
                role = item.get("role", item.get("type", "user"))
                messages.append((str(role), item.get("content", item)))
        else:
            raise HttpError(400, "Missing required parameter: 'input'.", "input")
        a = self._answer(model, messages, body.get("max_output_tokens"))
        text = " ".join(a["words"])
        status = "incomplete" if a["cut"] else "completed"
        msg_id = "msg_" + secrets.token_hex(16)
        part = {"type": "output_text", "annotations": [], "logprobs": [], "text": text}
        item = {
            "id": msg_id,
            "type": "message",
            "status": status,
            "content": [part],
            "role": "assistant",
        }
        usage = {
            "input_tokens": a["input"],
            "input_tokens_details": {"cached_tokens": a["cached"], "cache_write_tokens": 0},
            "output_tokens": a["output"],
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": a["input"] + a["output"],
        }
        resp = {
            "id": "resp_" + secrets.token_hex(24),
            "object": "response",
            "created_at": int(time.time()),
            "status": status,
            "background": False,
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if a["cut"] else None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "max_tool_calls": None,
            "model": a["model"],
            "output": [item],
            "parallel_tool_calls": True,
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": {"effort": None, "summary": None},
            "service_tier": "default",
            "store": body.get("store", True),
            "temperature": body.get("temperature", 1.0),
            "text": {"format": {"type": "text"}, "verbosity": "medium"},
            "tool_choice": "auto",
            "tools": [],
            "top_logprobs": 0,
            "top_p": body.get("top_p", 1.0),
            "truncation": "disabled",
            "usage": usage,
            "user": None,
            "metadata": body.get("metadata") or {},
        }
        if not body.get("stream"):
            return await reply.json(200, resp)
        seq = 0

        async def send(kind: str, **fields: Any) -> None:
            nonlocal seq
            await reply.event({"type": kind, "sequence_number": seq, **fields}, kind)
            seq += 1

        early = {
            **resp,
            "status": "in_progress",
            "output": [],
            "usage": None,
            "incomplete_details": None,
        }
        where = {"item_id": msg_id, "output_index": 0, "content_index": 0}
        await reply.start_stream()
        await send("response.created", response=early)
        await send("response.in_progress", response=early)
        await send(
            "response.output_item.added",
            output_index=0,
            item={**item, "status": "in_progress", "content": []},
        )
        await send("response.content_part.added", **where, part={**part, "text": ""})
        for i, word in enumerate(a["words"]):
            self._check_truncate(reply, i, len(a["words"]))
            await self._pace(i, interval)
            await send(
                "response.output_text.delta",
                **where,
                delta=word if i == 0 else " " + word,
                logprobs=[],
            )
        self._check_truncate(reply, len(a["words"]), len(a["words"]))
        await send("response.output_text.done", **where, text=text, logprobs=[])
        await send("response.content_part.done", **where, part=part)
        await send("response.output_item.done", output_index=0, item=item)
        await send("response.incomplete" if a["cut"] else "response.completed", response=resp)
        await reply.end_stream()

    async def embeddings(self, body: dict[str, Any], reply: Reply, interval: float) -> None:
        model = self._require_model(body)
        inp = body.get("input")
        if isinstance(inp, str) or (isinstance(inp, list) and inp and isinstance(inp[0], int)):
            inp = [inp]
        if not isinstance(inp, list) or not inp:
            raise HttpError(400, "'input' is a required property", "input")
        dims = body.get("dimensions") or (3072 if "large" in model else 1536)
        if not isinstance(dims, int) or dims < 1:
            raise HttpError(400, "'dimensions' must be a positive integer", "dimensions")
        data, tokens = [], 0
        for i, x in enumerate(inp):
            tokens += len(x) if isinstance(x, list) else _words(str(x))
            rnd = random.Random(hashlib.sha256(json.dumps(x).encode()).digest())
            vec = [rnd.gauss(0, 1) for _ in range(dims)]
            norm = math.sqrt(sum(v * v for v in vec)) or 1.0
            vec = [v / norm for v in vec]
            emb: Any = vec
            if body.get("encoding_format") == "base64":
                emb = base64.b64encode(struct.pack(f"<{dims}f", *vec)).decode()
            data.append({"object": "embedding", "index": i, "embedding": emb})
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        await reply.json(200, {"object": "list", "data": data, "model": model, "usage": usage})

    async def models(self, body: dict[str, Any], reply: Reply, interval: float) -> None:
        if reply.provider == "anthropic":
            data = [
                {"type": "model", "id": m, "display_name": m, "created_at": "2024-10-22T00:00:00Z"}
                for m in ANTHROPIC_MODELS
            ]
            return await reply.json(
                200,
                {
                    "data": data,
                    "has_more": False,
                    "first_id": data[0]["id"],
                    "last_id": data[-1]["id"],
                },
            )
        models: list[dict[str, Any]] = [
            {"id": m, "object": "model", "created": 1715367049, "owned_by": "system"}
            for m in OPENAI_MODELS
        ]
        await reply.json(200, {"object": "list", "data": models})

    # --- Anthropic ---
    @staticmethod
    def _anthropic_prompt(body: dict[str, Any]) -> list[tuple[str, Any]]:
        for field in ("model", "messages"):
            if field not in body:
                raise HttpError(400, f"{field}: Field required")
        msgs = body["messages"]
        if not isinstance(msgs, list):
            raise HttpError(400, "messages: Input should be a valid list")
        messages: list[tuple[str, Any]] = [("system", body["system"])] if body.get("system") else []
        return messages + [
            (str(m.get("role", "")), m.get("content")) for m in msgs if isinstance(m, dict)
        ]

    async def count_tokens(self, body: dict[str, Any], reply: Reply, interval: float) -> None:
        await reply.json(200, {"input_tokens": count_input_tokens(self._anthropic_prompt(body))})

    async def messages(self, body: dict[str, Any], reply: Reply, interval: float) -> None:
        messages = self._anthropic_prompt(body)
        if "max_tokens" not in body:
            raise HttpError(400, "max_tokens: Field required")
        a = self._answer(str(body["model"]), messages, body["max_tokens"])
        stop = "max_tokens" if a["cut"] else "end_turn"
        usage = {
            "input_tokens": a["input"] - a["cached"],
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": a["cached"],
            "output_tokens": a["output"],
            "service_tier": "standard",
        }
        msg = {
            "id": "msg_01" + secrets.token_hex(11),
            "type": "message",
            "role": "assistant",
            "model": a["model"],
            "content": [{"type": "text", "text": " ".join(a["words"])}],
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": usage,
        }
        if not body.get("stream"):
            return await reply.json(200, msg)

        async def send(kind: str, **fields: Any) -> None:
            await reply.event({"type": kind, **fields}, kind)

        await reply.start_stream()
        start = {**msg, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
        await send("message_start", message=start)
        await send("content_block_start", index=0, content_block={"type": "text", "text": ""})
        await send("ping")
        for i, word in enumerate(a["words"]):
            self._check_truncate(reply, i, len(a["words"]))
            await self._pace(i, interval)
            text = word if i == 0 else " " + word
            await send("content_block_delta", index=0, delta={"type": "text_delta", "text": text})
        self._check_truncate(reply, len(a["words"]), len(a["words"]))
        await send("content_block_stop", index=0)
        await send(
            "message_delta",
            delta={"stop_reason": stop, "stop_sequence": None},
            usage={"output_tokens": a["output"]},
        )
        await send("message_stop")
        await reply.end_stream()


# --- running it -------------------------------------------------------------------------


async def serve(
    emulator: Emulator,
    host: str = "127.0.0.1",
    port: int = 0,
    on_ready: Callable[[str], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until `stop` is set (or SIGINT/SIGTERM when running in the main thread)."""
    server = await asyncio.start_server(
        emulator.handle, host, port, limit=MAX_HEADER_BYTES, backlog=1024
    )
    bound = server.sockets[0].getsockname()
    if stop is None:
        stop = asyncio.Event()
    if threading.current_thread() is threading.main_thread():
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError):
                pass
    async with server:
        if on_ready is not None:
            shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
            on_ready(f"http://{shown}:{bound[1]}")
        await stop.wait()
        server.close()
        # idle keep-alive connections would otherwise outlive the server
        for task in list(emulator.connections):
            task.cancel()
        await asyncio.gather(*emulator.connections, return_exceptions=True)


def start_in_thread(
    host: str = "127.0.0.1", port: int = 0, **options: Any
) -> tuple[str, Callable[[], None]]:
    """Run an emulator (options as for `Emulator`) in a daemon thread; return (URL, stop)."""
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    ready = threading.Event()
    url: list[str] = []

    def on_ready(u: str) -> None:
        url.append(u)
        ready.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(serve(Emulator(**options), host, port, on_ready, stop))
        finally:
            ready.set()
            loop.close()

    thread = threading.Thread(target=run, name="llm-emulator", daemon=True)
    thread.start()
    ready.wait(10)
    if not url:
        raise RuntimeError("the LLM emulator did not start")

    def stop_it() -> None:
        if not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        thread.join(10)

    return url[0], stop_it


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m suite.emulators.llm",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9100, help="0 = any free port (printed)")
    p.add_argument("--latency-ms", type=float, default=0, help="delay before the first byte")
    p.add_argument("--token-interval-ms", type=float, default=0, help="delay between words")
    p.add_argument("--error-rate", type=float, default=0.0, help="fraction answered 500")
    p.add_argument("--rate-limit-rpm", type=int, default=0, help="requests/min; 0 = no limit")
    args = p.parse_args(argv)
    if not 0 <= args.error_rate <= 1:
        p.error("--error-rate must be between 0 and 1")
    emulator = Emulator(
        args.latency_ms, args.token_interval_ms, args.error_rate, args.rate_limit_rpm
    )
    asyncio.run(
        serve(
            emulator,
            args.host,
            args.port,
            lambda url: print(f"llm emulator listening on {url}", flush=True),
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

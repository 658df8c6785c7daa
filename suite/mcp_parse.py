"""MCP (Model Context Protocol) calls: JSON-RPC 2.0 method, tool, ids and errors, from
request and response bodies (plain JSON or server-sent events). Pure and total.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from suite.sse import StreamTee, iter_sse_events, json_or_none


@dataclass
class McpRequest:
    methods: list[str] = field(default_factory=list)
    tools: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    batch_size: int = 0


@dataclass
class McpResponse:
    error_code: int | None = None
    error_message: str | None = None
    tool_error: bool = False
    answered_ids: set[str] = field(default_factory=set)  # ids of responses seen


def _messages(obj: Any) -> list[dict[str, Any]]:
    if isinstance(obj, dict):
        return [obj]
    if isinstance(obj, list):
        return [m for m in obj if isinstance(m, dict)]
    return []


def parse_mcp_request(body: bytes | None) -> McpRequest:
    """Methods, tool names and ids of a JSON-RPC request body (single or batch)."""
    obj = json_or_none(body)
    msgs = _messages(obj)
    req = McpRequest(batch_size=len(msgs))
    for m in msgs:
        method = m.get("method")
        if isinstance(method, str):
            req.methods.append(method)
            if method == "tools/call":
                name = (
                    (m.get("params") or {}).get("name")
                    if isinstance(m.get("params"), dict)
                    else None
                )
                if isinstance(name, str):
                    req.tools.append(name)
        if "id" in m and m["id"] is not None and not isinstance(m["id"], dict | list):
            req.ids.append(str(m["id"]))
    return req


def parse_mcp_response(body: bytes | None, *, event_stream: bool) -> McpResponse:
    """The first JSON-RPC error (or tool error) in a response body."""
    out = McpResponse()
    if not body:
        return out
    if event_stream:
        payloads = [json_or_none(ev.data) for ev in iter_sse_events(body)]
    else:
        payloads = [json_or_none(body)]
    for payload in payloads:
        for m in _messages(payload):
            err = m.get("error")
            if isinstance(err, dict) and out.error_code is None:
                code = err.get("code")
                out.error_code = (
                    code if isinstance(code, int) and not isinstance(code, bool) else None
                )
                msg = err.get("message")
                out.error_message = msg[:500] if isinstance(msg, str) else None
            result = m.get("result")
            if isinstance(result, dict) and result.get("isError") is True:
                out.tool_error = True
            if ("result" in m or "error" in m) and m.get("id") is not None:
                out.answered_ids.add(str(m["id"]))
    return out


def _answer_of(m: dict[str, Any]) -> McpResponse:
    one = McpResponse()
    err = m.get("error")
    if isinstance(err, dict):
        code = err.get("code")
        one.error_code = code if isinstance(code, int) and not isinstance(code, bool) else None
        msg = err.get("message")
        one.error_message = msg[:500] if isinstance(msg, str) else None
    result = m.get("result")
    one.tool_error = isinstance(result, dict) and result.get("isError") is True
    return one


def session_of_endpoint(data: str) -> str | None:
    """The session id in an HTTP+SSE `endpoint` event (`/messages/?session_id=...`)."""
    query = parse_qs(urlsplit(data.strip()).query)
    values = query.get("sessionId") or query.get("session_id")
    return values[0] if values else None


class LegacySessionAnswers:
    """The answers on one HTTP+SSE (the older MCP transport) session stream, by request id.

    On that transport a call is a POST answered `202 Accepted`; its JSON-RPC result or
    error arrives later on the session's GET event stream. This index reads that stream's
    bounded copy incrementally (only bytes it has not parsed yet) so the POST's row can
    carry its own error. Thread-safe; keeps at most `max_answers` recent answers.
    """

    def __init__(self, tee: StreamTee, max_answers: int = 4096) -> None:
        self.tee = tee
        self.session: str | None = None
        self.answers: OrderedDict[str, McpResponse] = OrderedDict()
        self.max_answers = max_answers
        self._parsed = 0  # bytes of the stream parsed so far
        self._seen_size = 0
        self._lock = threading.Lock()

    def refresh(self) -> None:
        with self._lock:
            if self.tee.size == self._seen_size:
                return
            self._seen_size = self.tee.size
            if self.tee.dropped:
                # The middle of a long stream was dropped: read what is kept from the tail.
                data, base = self.tee.copy(), 0
                self._parsed = 0
            else:
                data, base = bytes(self.tee.head + self.tee.tail), self._parsed
            end = max(data.rfind(b"\n\n", base) + 2, data.rfind(b"\n\r\n", base) + 3)
            if end < 3:  # no complete event yet (a blank line ends an event)
                return
            for ev in iter_sse_events(data[base:end]):
                if ev.event == "endpoint" and self.session is None:
                    self.session = session_of_endpoint(ev.data)
                    continue
                for m in _messages(json_or_none(ev.data)):
                    if m.get("id") is None or not ("result" in m or "error" in m):
                        continue
                    self.answers[str(m["id"])] = _answer_of(m)
                    if len(self.answers) > self.max_answers:
                        self.answers.popitem(last=False)
            if not self.tee.dropped:
                self._parsed = end

    def answer(self, request_id: str) -> McpResponse | None:
        self.refresh()
        return self.answers.get(request_id)


def distinct_joined(values: list[str]) -> str | None:
    """'a' for [a], 'a,b' for a batch of a and b (order kept, repeats once)."""
    return ",".join(dict.fromkeys(values)) or None

"""MCP (Model Context Protocol) calls: JSON-RPC 2.0 method, tool, ids and errors, from
request and response bodies (plain JSON or server-sent events). Pure and total.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from suite.sse import iter_sse_events, json_or_none


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


def distinct_joined(values: list[str]) -> str | None:
    """'a' for [a], 'a,b' for a batch of a and b (order kept, repeats once)."""
    return ",".join(dict.fromkeys(values)) or None

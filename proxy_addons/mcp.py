"""Recognises MCP traffic (JSON-RPC 2.0 over streamable HTTP or the older HTTP+SSE
transport) and fills the mcp_* columns: method, tool, session, ids, errors.

Like the LLM addon it only keeps references in hooks; parsing runs in the spool writer.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from mitmproxy import http

from proxy_addons.capture import add_deferred
from proxy_addons.llm import META_TEE, is_event_stream, tee_event_stream
from suite.mcp_parse import distinct_joined, parse_mcp_request, parse_mcp_response
from suite.sse import StreamTee

META_MCP = "aiops_mcp"
MCP_PATH_SUFFIXES = ("/mcp", "/sse", "/messages")


def is_mcp_call(flow: http.HTTPFlow) -> bool:
    route = flow.metadata.get("aiops_route_cfg")
    if route is not None and route.mcp:
        return True
    if route is not None and route.llm_provider:
        return False
    return flow.request.path.split("?", 1)[0].rstrip("/").endswith(MCP_PATH_SUFFIXES)


def mcp_session_id(flow: http.HTTPFlow) -> str | None:
    sid = flow.request.headers.get("mcp-session-id")
    if not sid and flow.response is not None:
        sid = flow.response.headers.get("mcp-session-id")
    if not sid:
        query = parse_qs(urlsplit(flow.request.path).query)
        values = query.get("sessionId") or query.get("session_id")
        sid = values[0] if values else None
    return sid


def mcp_fields(
    request_body: bytes | None,
    response_body: bytes | None,
    event_stream: bool,
    session: str | None,
    *,
    client_left: bool = False,
    method: str = "POST",
) -> dict[str, Any]:
    req = parse_mcp_request(request_body)
    resp = parse_mcp_response(response_body, event_stream=event_stream)
    fields: dict[str, Any] = {}
    # MCP clients close a POST's event stream once its response has arrived, and close
    # their GET notification streams when done: that is the exchange ending, not a failure.
    if (
        client_left
        and event_stream
        and (method == "GET" or (req.ids and set(req.ids) <= resp.answered_ids))
    ):
        fields = {"error": None, "error_detail": None}
    return fields | {
        "kind": "mcp",
        "mcp_method": distinct_joined(req.methods),
        "mcp_tool": distinct_joined(req.tools),
        "mcp_request_id": req.ids[0] if req.ids else None,
        "mcp_batch_size": req.batch_size or None,
        "mcp_session_id": session,
        "jsonrpc_error_code": resp.error_code,
        "jsonrpc_error_message": resp.error_message,
        "mcp_tool_error": resp.tool_error,
    }


class McpCapture:
    def responseheaders(self, flow: http.HTTPFlow) -> None:
        if not is_mcp_call(flow):
            return
        flow.metadata[META_MCP] = True
        tee_event_stream(flow)

    def response(self, flow: http.HTTPFlow) -> None:
        self._defer(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._defer(flow)

    def _defer(self, flow: http.HTTPFlow) -> None:
        if not (flow.metadata.get(META_MCP) or is_mcp_call(flow)):
            return
        tee: StreamTee | None = flow.metadata.get(META_TEE)
        body = None if tee is not None or flow.response is None else flow.response.raw_content
        request_body = flow.request.raw_content
        event_stream = tee is not None or is_event_stream(flow)
        session = mcp_session_id(flow)
        client_left = flow.error is not None and "client disconnected" in flow.error.msg.lower()
        method = flow.request.method

        def finish() -> dict[str, Any]:
            response_body = tee.copy() if tee is not None else body
            return mcp_fields(
                request_body,
                response_body,
                event_stream,
                session,
                client_left=client_left,
                method=method,
            )

        add_deferred(flow, finish)


addons = [McpCapture()]

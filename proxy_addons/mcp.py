"""Recognises MCP traffic (JSON-RPC 2.0 over streamable HTTP or the older HTTP+SSE
transport) and fills the mcp_* columns: method, tool, session, ids, errors.

Like the LLM addon it only keeps references in hooks; parsing runs in the spool writer.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any
from urllib.parse import parse_qs, urlsplit

from mitmproxy import http

from proxy_addons.capture import add_deferred
from proxy_addons.llm import META_TEE, is_event_stream, tee_event_stream
from suite.mcp_parse import (
    LegacySessionAnswers,
    McpResponse,
    distinct_joined,
    parse_mcp_request,
    parse_mcp_response,
)
from suite.sse import StreamTee

META_MCP = "aiops_mcp"
META_LEGACY = "aiops_mcp_legacy_stream"
# Session streams of the older HTTP+SSE transport kept after they end, for calls whose
# rows are written just after (rows are finished by the spool writer, up to a flush later).
RECENTLY_ENDED_STREAMS = 64
LEGACY_ANSWER_WAIT = 0.25  # seconds after the 202 that a row may wait for its answer
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
    legacy_answer: McpResponse | None = None,
) -> dict[str, Any]:
    req = parse_mcp_request(request_body)
    resp = parse_mcp_response(response_body, event_stream=event_stream)
    fields: dict[str, Any] = {}
    if legacy_answer is not None:
        # Older HTTP+SSE transport: the call was answered on the session's event stream,
        # so a client that left before the 202 had its answer: not a failure either.
        resp.error_code, resp.error_message = legacy_answer.error_code, legacy_answer.error_message
        resp.tool_error = legacy_answer.tool_error
        if client_left:
            fields = {"error": None, "error_detail": None}
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
    def __init__(self) -> None:
        # Open and recently ended session streams of the older HTTP+SSE transport.
        self._legacy_open: dict[str, LegacySessionAnswers] = {}
        self._legacy_ended: deque[LegacySessionAnswers] = deque(maxlen=RECENTLY_ENDED_STREAMS)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        if not is_mcp_call(flow):
            return
        flow.metadata[META_MCP] = True
        tee_event_stream(flow)
        tee = flow.metadata.get(META_TEE)
        if tee is not None and flow.request.method == "GET":
            self._legacy_open[flow.id] = flow.metadata[META_LEGACY] = LegacySessionAnswers(tee)

    def _legacy_answer(
        self, session: str | None, request_id: str, accepted_at: float
    ) -> McpResponse | None:
        """Runs in the spool writer thread, off the event loop. The answer usually follows
        the 202 within milliseconds: a row finished sooner than that waits a little."""
        if not session:
            return None
        while True:
            for stream in [*self._legacy_open.values(), *self._legacy_ended]:
                stream.refresh()
                if stream.session == session:
                    found = stream.answers.get(request_id)
                    if found is not None or time.time() > accepted_at + LEGACY_ANSWER_WAIT:
                        return found
                    break
            else:
                return None
            time.sleep(0.01)

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
        if META_LEGACY in flow.metadata:
            self._legacy_open.pop(flow.id, None)
            self._legacy_ended.append(flow.metadata[META_LEGACY])
        # Older HTTP+SSE transport: a POST accepted with 202 is answered on the session
        # stream (the answer may even arrive before the 202, and the client leave first).
        accepted = method == "POST" and (flow.response is None or flow.response.status_code == 202)
        accepted_at = time.time()

        def finish() -> dict[str, Any]:
            response_body = tee.copy() if tee is not None else body
            legacy = None
            if accepted:
                ids = parse_mcp_request(request_body).ids
                legacy = self._legacy_answer(session, ids[0], accepted_at) if ids else None
            return mcp_fields(
                request_body,
                response_body,
                event_stream,
                session,
                client_left=client_left,
                method=method,
                legacy_answer=legacy,
            )

        add_deferred(flow, finish)


addons = [McpCapture()]

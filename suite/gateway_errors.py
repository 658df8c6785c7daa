"""JSON error bodies for answers the gateway makes itself (no route, bad gateway...).

Never does I/O; used by the router addon and by the gateway's error-page patch.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from mitmproxy import http
from mitmproxy.proxy.commands import StartHook

ERROR_CONTENT_TYPE = "application/json"


def gateway_error_body(status: int, error_type: str, message: str, **extra: object) -> bytes:
    payload: dict[str, object] = {"type": error_type, "status": status, "message": message}
    payload.update({k: v for k, v in extra.items() if v is not None})
    return json.dumps({"error": payload}).encode()


def gateway_error_response(
    status: int, error_type: str, message: str, **extra: object
) -> http.Response:
    return http.Response.make(
        status,
        gateway_error_body(status, error_type, message, **extra),
        {"Content-Type": ERROR_CONTENT_TYPE, "X-AIOps-Error": error_type},
    )


# --- mitmproxy's own error pages -------------------------------------------------------
# mitmproxy answers an unreachable or failing upstream with an HTML page and offers no
# hook to replace it. We wrap the two internal functions involved, once per process:
# the stream's protocol-error handler (which knows the flow, hence the route) and the
# HTTP/1 error-page renderer. If a future mitmproxy renames them, the gateway still
# works and records the error; only the body falls back to mitmproxy's page.

META_HEADERS_SENT = "aiops_headers_sent"
META_ERROR = "aiops_error"
META_ERROR_DETAIL = "aiops_error_detail"
META_ERROR_BODY = "aiops_error_body"
# [pool] A flow whose first try mitmproxy forwards natively but that an addon can still
# serve if that try fails (alias fallbacks, retries, timeouts: proxy_addons.pool).
META_TAKEOVER = "aiops_takeover"
META_TAKEN_OVER = "aiops_taken_over"
META_FAILURE_MESSAGE = "aiops_failure_message"  # what mitmproxy said about the failed try  # the addon put its own answer on the flow
# The answer was replaced at `responseheaders`: the failed try's body is read and dropped,
# these bytes go to the client instead.
META_REPLACED_BODY = "aiops_replaced_body"
_installed = False


@dataclass
class UpstreamFailedHook(StartHook):
    """The native try of a flow marked META_TAKEOVER failed (connect error, reset, cut by
    a timeout) before any byte reached the client. An addon may put an answer on the flow
    and set META_TAKEN_OVER: it is then sent instead of an error."""

    flow: http.HTTPFlow  # (mitmproxy's hook runner passes exactly one argument)
    name = "aiops_upstream_failed"


def classify_upstream_failure(flow: http.HTTPFlow, message: str) -> str:
    lowered = message.lower()
    if "timeout" in lowered or "timed out" in lowered:
        return "upstream_timeout"
    if "certificate" in lowered or "tls" in lowered or "ssl" in lowered:
        return "upstream_tls_error"
    if flow.server_conn.timestamp_tcp_setup is None:
        return "upstream_unreachable"
    return "upstream_reset"


def install_json_error_pages() -> bool:
    """Make gateway-generated error responses JSON naming the route; True if installed."""
    global _installed
    if _installed:
        return True
    try:
        from mitmproxy import version
        from mitmproxy.net.http import http1
        from mitmproxy.proxy.layers.http import HttpStream, SendHttp, _http1
        from mitmproxy.proxy.layers.http._events import (
            ResponseData,
            ResponseEndOfMessage,
            ResponseProtocolError,
        )
        from mitmproxy.proxy.layers.http._hooks import HttpResponseHeadersHook
    except ImportError:
        return False
    needed = (
        "handle_protocol_error", "send_response", "state_consume_response_body",
        "state_stream_response_body", "state_done",
    )  # fmt: skip
    if not all(hasattr(HttpStream, n) for n in needed) or not hasattr(
        _http1, "make_error_response"
    ):
        return False

    original_handle = HttpStream.handle_protocol_error
    original_consume = HttpStream.state_consume_response_body
    original_stream = HttpStream.state_stream_response_body

    def take_over(self, flow, event):
        """[pool] Let the addon serve a failed native try; True when it did."""
        if (
            not isinstance(event, ResponseProtocolError)
            or flow.metadata.get(META_TAKEOVER) is None
            or flow.metadata.get(META_HEADERS_SENT)
            or self.client_state != self.state_done
            or self.server_state == self.state_stream_response_body
        ):
            return False
        flow.metadata[META_FAILURE_MESSAGE] = event.message
        yield UpstreamFailedHook(flow)
        if not flow.metadata.pop(META_TAKEN_OVER, False) or flow.response is None:
            return False
        self.response_body_buf.clear()
        flow.response.timestamp_start = time.time()
        yield HttpResponseHeadersHook(flow)
        if (yield from self.check_killed(True)):
            return True
        yield from self.send_response()
        return True

    def state_consume_response_body(self, event):
        replaced = self.flow.metadata.get(META_REPLACED_BODY)
        if replaced is None:
            return (yield from original_consume(self, event))
        if isinstance(event, ResponseEndOfMessage):  # the failed try's body is dropped
            self.response_body_buf.clear()
            del self.flow.metadata[META_REPLACED_BODY]
            yield from self.send_response()
        return None

    def state_stream_response_body(self, event):
        replaced = self.flow.metadata.get(META_REPLACED_BODY)
        if replaced is None:
            return (yield from original_stream(self, event))
        if isinstance(event, ResponseEndOfMessage):
            del self.flow.metadata[META_REPLACED_BODY]
            stream = self.flow.response.stream
            chunks: list[bytes] = []
            for piece in (replaced, b""):
                out = stream(piece) if callable(stream) else piece
                chunks.extend([out] if isinstance(out, bytes) else list(out))
            for chunk in chunks:
                if chunk:
                    yield SendHttp(ResponseData(self.stream_id, chunk), self.context.client)
            yield from self.send_response(already_streamed=True)
        return None

    def handle_protocol_error(self, event):
        flow = getattr(self, "flow", None)
        if flow is not None and (yield from take_over(self, flow, event)):
            return None
        if (
            isinstance(event, ResponseProtocolError)
            and flow is not None
            and event.code >= 400
            and not flow.metadata.get(META_HEADERS_SENT)
        ):
            route = flow.metadata.get("aiops_route")
            upstream = flow.metadata.get("aiops_upstream")
            error_type = classify_upstream_failure(flow, event.message)
            where = f"route {route!r}" if route else "the gateway"
            body = gateway_error_body(
                event.code,
                error_type,
                f"{where}: upstream {upstream or '?'} failed: {event.message}",
                route=route,
                upstream=upstream,
            )
            flow.metadata[META_ERROR] = error_type
            flow.metadata[META_ERROR_DETAIL] = event.message
            flow.metadata[META_ERROR_BODY] = body
            event = ResponseProtocolError(event.stream_id, body.decode(), event.code)
        return (yield from original_handle(self, event))

    def make_error_response(status_code: int, message: str = "") -> bytes:
        if message.startswith('{"error"'):
            body = message.encode()
        else:
            body = gateway_error_body(status_code, "gateway_error", message)
        resp = http.Response.make(
            status_code,
            body,
            http.Headers(
                Server=version.MITMPROXY, Connection="close", Content_Type=ERROR_CONTENT_TYPE
            ),
        )
        return http1.assemble_response(resp)

    HttpStream.handle_protocol_error = handle_protocol_error  # type: ignore[method-assign]
    HttpStream.state_consume_response_body = state_consume_response_body  # type: ignore[method-assign]
    HttpStream.state_stream_response_body = state_stream_response_body  # type: ignore[method-assign]
    _http1.make_error_response = make_error_response
    _installed = True
    return True

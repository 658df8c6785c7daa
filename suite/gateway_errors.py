"""JSON error bodies for answers the gateway makes itself (no route, bad gateway...).

Never does I/O; used by the router addon and by the gateway's error-page patch.
"""

from __future__ import annotations

import json

from mitmproxy import http

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
_installed = False


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
        from mitmproxy.proxy.layers.http import HttpStream, _http1
        from mitmproxy.proxy.layers.http._events import ResponseProtocolError
    except ImportError:
        return False
    if not hasattr(HttpStream, "handle_protocol_error") or not hasattr(
        _http1, "make_error_response"
    ):
        return False

    original_handle = HttpStream.handle_protocol_error

    def handle_protocol_error(self, event):
        flow = getattr(self, "flow", None)
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
    _http1.make_error_response = make_error_response
    _installed = True
    return True

from __future__ import annotations

import json

from proxy_addons.mcp import mcp_fields

CALL = json.dumps(
    {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "get_policy"}}
).encode()
ANSWER = b'event: message\ndata: {"jsonrpc": "2.0", "id": 4, "result": {"content": []}}\n\n'


def test_client_closing_after_its_answer_is_not_an_error() -> None:
    f = mcp_fields(CALL, ANSWER, True, "s-1", client_left=True)
    assert f["error"] is None and f["mcp_tool"] == "get_policy" and f["mcp_session_id"] == "s-1"


def test_client_leaving_before_its_answer_stays_an_error() -> None:
    f = mcp_fields(CALL, b"", True, "s-1", client_left=True)
    assert "error" not in f  # capture's client_disconnected stands


def test_closing_a_notification_stream_is_its_normal_end() -> None:
    assert (
        mcp_fields(None, b": ping\n\n", True, "s-1", client_left=True, method="GET")["error"]
        is None
    )

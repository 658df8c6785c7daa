from __future__ import annotations

import json

from suite.mcp_parse import distinct_joined, parse_mcp_request, parse_mcp_response


def test_single_tool_call() -> None:
    r = parse_mcp_request(
        json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 7,
                "method": "tools/call",
                "params": {"name": "get_policy", "arguments": {}},
            }
        ).encode()
    )
    assert (r.methods, r.tools, r.ids, r.batch_size) == (["tools/call"], ["get_policy"], ["7"], 1)


def test_batch_and_notifications() -> None:
    body = json.dumps([
        {"jsonrpc": "2.0", "id": "a", "method": "tools/call", "params": {"name": "x"}},
        {"jsonrpc": "2.0", "id": "b", "method": "tools/call", "params": {"name": "y"}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
    ]).encode()  # fmt: skip
    r = parse_mcp_request(body)
    assert r.batch_size == 3 and r.ids == ["a", "b"]
    assert distinct_joined(r.methods) == "tools/call,notifications/initialized"
    assert distinct_joined(r.tools) == "x,y"


def test_errors_in_json_and_event_stream_responses() -> None:
    err = {"jsonrpc": "2.0", "id": 1, "error": {"code": -32601, "message": "Method not found"}}
    r = parse_mcp_response(json.dumps(err).encode(), event_stream=False)
    assert (r.error_code, r.error_message, r.tool_error) == (-32601, "Method not found", False)
    tool_err = {"jsonrpc": "2.0", "id": 2, "result": {"content": [], "isError": True}}
    s = parse_mcp_response(
        b"event: message\ndata: " + json.dumps(tool_err).encode() + b"\n\n", event_stream=True
    )
    assert s.tool_error and s.error_code is None


def test_garbage_is_harmless() -> None:
    for body in (b"", b"nope", b"\xff\x00", b"[1, 2]", b'{"method": 5}'):
        assert parse_mcp_request(body).methods == []
        assert parse_mcp_response(body, event_stream=True).error_code is None


def test_answered_ids_tell_a_complete_exchange() -> None:
    body = b'event: message\ndata: {"jsonrpc": "2.0", "id": 4, "result": {}}\n\n'
    assert parse_mcp_response(body, event_stream=True).answered_ids == {"4"}


def test_legacy_session_answers_read_the_stream_incrementally() -> None:
    from suite.mcp_parse import LegacySessionAnswers
    from suite.sse import StreamTee

    tee = StreamTee()
    index = LegacySessionAnswers(tee)
    tee(b"event: endpoint\r\ndata: /messages/?session_id=abc123\r\n\r\n")
    assert index.answer("1") is None
    assert index.session == "abc123"
    tee(b'event: message\r\ndata: {"jsonrpc":"2.0","id":1,"result":{"isError":true}}\r\n\r\n')
    tee(b'event: message\r\ndata: {"jsonrpc":"2.0","id":2,"error":{"code":-32602,')
    got = index.answer("1")
    assert got is not None and got.tool_error and got.error_code is None
    assert index.answer("2") is None  # its event has not ended yet
    tee(b'"message":"unknown resource"}}\r\n\r\n')
    got = index.answer("2")
    assert got is not None and (got.error_code, got.error_message) == (-32602, "unknown resource")
    assert not got.tool_error


def test_legacy_session_answers_survive_a_dropped_middle() -> None:
    from suite.mcp_parse import LegacySessionAnswers
    from suite.sse import StreamTee

    tee = StreamTee(limit=4096)
    index = LegacySessionAnswers(tee, max_answers=10)
    tee(b"event: endpoint\ndata: /messages/?sessionId=s1\n\n")
    for i in range(200):
        tee(f'data: {{"jsonrpc":"2.0","id":{i},"result":{{}}}}\n\n'.encode())
    assert tee.dropped
    assert index.answer("199") is not None
    assert index.session == "s1"
    assert len(index.answers) <= 10

"""MCP end to end: the official `mcp` client -> a real `aiops gateway` -> the MCP emulator,
over streamable HTTP and the older HTTP+SSE transport; rows carry method, tool, session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from mcp import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import write_config
from tests.integration.helpers import query_json, run_worker_once
from tests.procs import Proc, start_gateway

pytestmark = pytest.mark.integration


async def test_mcp_calls_through_the_gateway(tmp_path: Path, procs: list[Proc]) -> None:
    emu = Proc(
        [
            sys.executable,
            "-m",
            "suite.emulators.mcp_server",
            "--port",
            "0",
            "--root-path",
            "/legacy",
        ]
    )
    procs.append(emu)
    upstream = emu.wait_for(r"mcp emulator listening on (http://\S+)").group(1)
    home = tmp_path / "home"
    cfg = write_config(
        tmp_path / "gateway.toml",
        f"""
[[routes]]
name = "insurance-tools"
prefix = "/tools"
strip_prefix = true
upstreams = ["{upstream}"]
mcp = true

[[routes]]
name = "insurance-tools-legacy"
prefix = "/legacy"
strip_prefix = true
upstreams = ["{upstream}"]
""",
    )
    gw, base = start_gateway(home, cfg)
    procs.append(gw)

    async with streamable_http_client(f"{base}/tools/mcp") as (read, write, _):
        async with ClientSession(read, write) as s:
            await s.initialize()
            tools = await s.list_tools()
            assert {"get_policy", "get_claim_status", "file_claim", "quote_premium"} <= {
                t.name for t in tools.tools
            }
            ok = await s.call_tool("get_policy", {"policy_id": "POL-1001"})
            assert not ok.isError
            missing = await s.call_tool("get_claim_status", {"claim_id": "CLM-9999"})
            assert missing.isError
            with pytest.raises(Exception):  # noqa: B017 - the SDK raises its McpError
                await s.read_resource("policy://POL-0000/document")  # type: ignore[arg-type]

    async with sse_client(f"{base}/legacy/sse") as (read, write):
        async with ClientSession(read, write) as s:
            await s.initialize()
            quote = await s.call_tool("quote_premium", {"product": "auto", "driver_age": 40})
            assert not quote.isError
            # Answered on the session's event stream, not on the POST (202 Accepted).
            missing = await s.call_tool("get_claim_status", {"claim_id": "CLM-9999"})
            assert missing.isError
            with pytest.raises(Exception):  # noqa: B017 - the SDK raises its McpError
                await s.read_resource("policy://POL-0000/document")  # type: ignore[arg-type]

    assert gw.stop() == 0, gw.output
    run_worker_once(home)
    rows = query_json(home, "SELECT * FROM requests ORDER BY ts")
    assert all(r["kind"] == "mcp" for r in rows), [(r["path"], r["kind"]) for r in rows]
    # Streams the client closed once its answer had arrived are complete exchanges.
    assert all(r["error"] is None for r in rows if r["route"] == "insurance-tools"), [
        (r["path"], r["status"], r["error"], r["mcp_method"]) for r in rows if r["error"]
    ]

    streamable = [r for r in rows if r["route"] == "insurance-tools" and r["method"] == "POST"]
    methods = [r["mcp_method"] for r in streamable]
    assert methods[:3] == ["initialize", "notifications/initialized", "tools/list"]
    calls = [r for r in streamable if r["mcp_method"] == "tools/call"]
    assert [(c["mcp_tool"], c["mcp_tool_error"]) for c in calls] == [
        ("get_policy", False),
        ("get_claim_status", True),
    ]
    assert all(c["mcp_request_id"] is not None and c["mcp_batch_size"] == 1 for c in calls)
    read = next(r for r in streamable if r["mcp_method"] == "resources/read")
    assert read["jsonrpc_error_code"] is not None and read["jsonrpc_error_message"]
    sessions = {r["mcp_session_id"] for r in streamable if r["mcp_method"] != "initialize"}
    assert len(sessions) == 1 and None not in sessions  # one session, named on every call

    legacy = [r for r in rows if r["route"] == "insurance-tools-legacy"]
    posts = [r for r in legacy if r["method"] == "POST"]
    # (the SDK may also send tools/list by itself, to validate tool output schemas)
    assert [p["mcp_method"] for p in posts][:2] == ["initialize", "notifications/initialized"]
    legacy_calls = [p for p in posts if p["mcp_method"] == "tools/call"]
    assert [(c["mcp_tool"], c["mcp_tool_error"]) for c in legacy_calls] == [
        ("quote_premium", False),
        ("get_claim_status", True),
    ]
    assert all(p["mcp_session_id"] for p in posts)
    # Accepted (202); the answer travels on the stream, and the client may leave before
    # the 202 once it has it: the exchange is still complete.
    assert all(p["status"] in (202, None) and p["error"] is None for p in posts), [
        (p["mcp_method"], p["status"], p["error"]) for p in posts
    ]
    legacy_read = next(p for p in posts if p["mcp_method"] == "resources/read")
    assert legacy_read["jsonrpc_error_code"] == read["jsonrpc_error_code"]
    assert legacy_read["jsonrpc_error_message"] == read["jsonrpc_error_message"]
    stream = [r for r in legacy if r["method"] == "GET"]
    assert len(stream) == 1 and stream[0]["streamed"] is True and stream[0]["path"] == "/legacy/sse"
    assert stream[0]["error"] is None  # the client closing its SSE stream ends it normally

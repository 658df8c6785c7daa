"""The MCP emulator, run as a real process and driven with the official mcp client over
streamable HTTP and over the older HTTP+SSE transport."""

from __future__ import annotations

import importlib
import json
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from mcp import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from tests.procs import Proc

pytestmark = pytest.mark.timeout(60)

_exceptions = importlib.import_module("mcp.shared.exceptions")
MCPError: type[Exception] = getattr(_exceptions, "McpError", None) or _exceptions.MCPError


def field(obj: Any, name: str) -> Any:
    """mcp 1.x models use camelCase attributes (isError); 2.x snake_case (is_error)."""
    snake = "".join("_" + c.lower() if c.isupper() else c for c in name)
    return getattr(obj, snake) if hasattr(obj, snake) else getattr(obj, name)


def start_mcp(*flags: str) -> tuple[Proc, str]:
    p = Proc([sys.executable, "-m", "suite.emulators.mcp_server", "--port", "0", *flags])
    try:
        return p, p.wait_for(r"mcp emulator listening on (http://\S+)").group(1)
    except AssertionError:
        p.stop()
        raise


@pytest.fixture(scope="module")
def mcp_url() -> Iterator[str]:
    p, url = start_mcp()
    try:
        yield url
    finally:
        p.stop()


@asynccontextmanager
async def session(url: str) -> AsyncIterator[ClientSession]:
    async with streamable_http_client(url + "/mcp") as (read, write, _):
        async with ClientSession(read, write) as s:
            await s.initialize()
            yield s


def text_of(result: Any) -> str:
    return "".join(c.text for c in result.content if c.type == "text")


async def test_streamable_http_tools(mcp_url: str) -> None:
    async with streamable_http_client(mcp_url + "/mcp") as (read, write, _):
        async with ClientSession(read, write) as s:
            init = await s.initialize()
            assert field(init, "serverInfo").name == "insurance-emulator"
            tools = {t.name: t for t in (await s.list_tools()).tools}
            assert set(tools) == {"get_policy", "get_claim_status", "file_claim", "quote_premium"}
            schema = field(tools["file_claim"], "inputSchema")
            assert set(schema["required"]) == {"policy_id", "description", "amount"}

            ok = await s.call_tool("get_policy", {"policy_id": "POL-1001"})
            assert field(ok, "isError") is False
            assert field(ok, "structuredContent")["holder"] == "Ana Silva"
            assert json.loads(text_of(ok))["policy_id"] == "POL-1001"

            missing = await s.call_tool("get_policy", {"policy_id": "POL-9999"})
            assert field(missing, "isError") is True
            assert "Unknown policy id 'POL-9999'" in text_of(missing)

            quote = await s.call_tool("quote_premium", {"product": "home", "driver_age": 70})
            assert field(quote, "structuredContent")["annual_premium"] == 702.0
            bad = await s.call_tool("quote_premium", {"product": "boat", "driver_age": 30})
            assert field(bad, "isError") is True


async def test_filing_a_claim_and_the_tool_that_raises(mcp_url: str) -> None:
    async with session(mcp_url) as s:
        filed = await s.call_tool(
            "file_claim",
            {"policy_id": "POL-1002", "description": "Storm damage to roof", "amount": 2500},
        )
        claim_id = field(filed, "structuredContent")["claim_id"]
        assert claim_id.startswith("CLM-3")
        status = await s.call_tool("get_claim_status", {"claim_id": claim_id})
        assert field(status, "structuredContent")["status"] == "received"
        unknown = await s.call_tool("get_claim_status", {"claim_id": "CLM-0"})
        assert field(unknown, "isError") is True

        # an unexpected exception inside the tool reaches the client as a tool error
        boom = await s.call_tool(
            "file_claim", {"policy_id": "POL-1003", "description": "Lost luggage", "amount": 1e9}
        )
        assert field(boom, "isError") is True
        assert "claims backend rejected" in text_of(boom)


async def test_resource_and_prompt(mcp_url: str) -> None:
    async with session(mcp_url) as s:
        templates = field(await s.list_resource_templates(), "resourceTemplates")
        assert [field(t, "uriTemplate") for t in templates] == ["policy://{policy_id}/document"]
        assert [str(r.uri) for r in (await s.list_resources()).resources] == [
            "insurance://products"
        ]
        doc = await s.read_resource("policy://POL-1002/document")
        assert "Holder: Ben Okafor" in doc.contents[0].text
        with pytest.raises(MCPError, match="Unknown policy id"):  # a JSON-RPC error
            await s.read_resource("policy://POL-9999/document")

        assert [p.name for p in (await s.list_prompts()).prompts] == ["summarise_claim"]
        prompt = await s.get_prompt("summarise_claim", {"claim_id": "CLM-2001"})
        assert "Rear bumper" in prompt.messages[0].content.text
        with pytest.raises(MCPError, match="Unknown claim id"):
            await s.get_prompt("summarise_claim", {"claim_id": "CLM-0"})


async def test_sse_transport(mcp_url: str) -> None:
    async with sse_client(mcp_url + "/sse") as (read, write):
        async with ClientSession(read, write) as s:
            init = await s.initialize()
            assert field(init, "serverInfo").name == "insurance-emulator"
            assert len((await s.list_tools()).tools) == 4
            r = await s.call_tool("quote_premium", {"product": "auto", "driver_age": 22})
            assert field(r, "isError") is False
            assert field(r, "structuredContent")["annual_premium"] == 1248.0
            err = await s.call_tool("get_policy", {"policy_id": "nope"})
            assert field(err, "isError") is True


INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "curl", "version": "1"},
    },
}


def test_a_foreign_host_header_is_accepted(mcp_url: str) -> None:
    """As when a reverse proxy forwards with its own Host (and the browser's Origin)."""
    headers = {
        "Host": "gateway.example.com:8080",
        "Origin": "https://app.example.com",
        "Accept": "application/json, text/event-stream",
    }
    r = httpx.post(mcp_url + "/mcp", json=INIT, headers=headers)
    assert r.status_code == 200, r.text
    assert '"serverInfo"' in r.text
    with httpx.stream("GET", mcp_url + "/sse", headers=headers) as sse:
        assert sse.status_code == 200
        assert next(sse.iter_lines()) == "event: endpoint"


def test_stops_promptly_with_an_sse_client_attached() -> None:
    p, url = start_mcp()
    try:
        with httpx.stream("GET", url + "/sse", timeout=30) as sse:
            assert next(sse.iter_lines()) == "event: endpoint"
            t0 = time.monotonic()
            rc = p.stop(timeout=10)
    finally:
        p.stop()
    assert rc == 0, p.output
    assert time.monotonic() - t0 < 5


def test_json_response_and_root_path_flags(procs: list[Proc]) -> None:
    p, url = start_mcp("--json-response", "--root-path", "/legacy")
    procs.append(p)
    headers = {"Accept": "application/json, text/event-stream"}
    r = httpx.post(url + "/mcp", json=INIT, headers=headers)
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["result"]["serverInfo"]["name"] == "insurance-emulator"
    with httpx.stream("GET", url + "/sse") as sse:
        lines = sse.iter_lines()
        assert next(lines) == "event: endpoint"
        assert next(lines).startswith("data: /legacy/messages/?session_id=")

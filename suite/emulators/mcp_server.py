"""An emulated MCP server with insurance tools, for tests, benchmarks and the demo. It is
built with the official `mcp` SDK (1.x `FastMCP` or 2.x `MCPServer`); loopback use only,
never a real service, and its policies and claims are made up.

Start it with `python -m suite.emulators.mcp_server --port 0`; it prints
`mcp emulator listening on http://HOST:PORT` and serves, on that one port:

  /mcp                 streamable HTTP transport
  /sse + /messages/    the older HTTP+SSE transport (GET /sse, then POST to the endpoint
                       it announces)

DNS-rebinding (Host/Origin header) protection is off, so requests forwarded by a reverse
proxy with another Host header are accepted. `--json-response` answers streamable HTTP
POSTs with plain JSON instead of an SSE stream (both are allowed by the spec);
`--root-path /prefix` makes the SSE transport announce `/prefix/messages/...`, for a
gateway that strips that prefix before forwarding.

Tools:
  get_policy(policy_id)                          a policy (POL-1001 .. POL-1004)
  get_claim_status(claim_id)                     a claim (CLM-2001 .. CLM-2003, and filed ones)
  file_claim(policy_id, description, amount)     files a claim, returns its new id (CLM-3001, ...)
  quote_premium(product, driver_age)             product: auto, home or travel
An unknown id, product or an age under 17 is a tool error result (isError). file_claim with
an amount above the policy's coverage limit raises an unexpected exception inside the tool,
as a buggy tool would (the SDK turns it into an isError result naming the exception).
Resources: `insurance://products` and the template `policy://{policy_id}/document`; prompt:
`summarise_claim(claim_id)`. Reading an unknown policy's document or getting the prompt for
an unknown claim fails with a JSON-RPC error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import logging
import signal
import socket
import sys
from collections.abc import Iterator
from typing import Any

import uvicorn
from mcp.server.transport_security import TransportSecuritySettings


def _sdk() -> tuple[Any, Any, bool]:
    """(server class, ToolError, is_v2): mcp 2.x renamed FastMCP to MCPServer."""
    try:
        server = importlib.import_module("mcp.server.mcpserver")
        errors = importlib.import_module("mcp.server.mcpserver.exceptions")
        return server.MCPServer, errors.ToolError, True
    except ImportError:
        server = importlib.import_module("mcp.server.fastmcp")
        errors = importlib.import_module("mcp.server.fastmcp.exceptions")
        return server.FastMCP, errors.ToolError, False


ServerClass, ToolError, MCP_V2 = _sdk()
SECURITY = TransportSecuritySettings(enable_dns_rebinding_protection=False)

POLICIES: dict[str, dict[str, Any]] = {
    "POL-1001": {"product": "auto", "holder": "Ana Silva", "status": "active",
                 "annual_premium": 842.50, "deductible": 250, "coverage_limit": 50_000},
    "POL-1002": {"product": "home", "holder": "Ben Okafor", "status": "active",
                 "annual_premium": 612.00, "deductible": 500, "coverage_limit": 350_000},
    "POL-1003": {"product": "travel", "holder": "Chloe Martin", "status": "active",
                 "annual_premium": 89.90, "deductible": 100, "coverage_limit": 10_000},
    "POL-1004": {"product": "auto", "holder": "Dev Patel", "status": "lapsed",
                 "annual_premium": 1290.00, "deductible": 1000, "coverage_limit": 25_000},
}  # fmt: skip
CLAIMS: dict[str, dict[str, Any]] = {
    "CLM-2001": {"policy_id": "POL-1001", "status": "under_review", "amount": 1800.00,
                 "description": "Rear bumper damaged in a car park", "adjuster": "J. Moreau"},
    "CLM-2002": {"policy_id": "POL-1002", "status": "approved", "amount": 4250.00,
                 "description": "Water damage from a burst pipe", "adjuster": "K. Lindqvist"},
    "CLM-2003": {"policy_id": "POL-1003", "status": "rejected", "amount": 300.00,
                 "description": "Missed connection, not covered", "adjuster": "J. Moreau"},
}  # fmt: skip
BASE_PREMIUM = {"auto": 780.0, "home": 540.0, "travel": 75.0}


def _policy(policy_id: str) -> dict[str, Any]:
    if policy_id not in POLICIES:
        raise ToolError(f"Unknown policy id {policy_id!r}")
    return {"policy_id": policy_id, **POLICIES[policy_id]}


def build_server(json_response: bool = False) -> Any:
    """The MCP server object with the tools, resources and prompt registered."""
    options: dict[str, Any] = {"instructions": "Insurance policy and claims tools (emulated)."}
    if not MCP_V2:  # 1.x takes transport settings in the constructor, 2.x per app
        options.update(transport_security=SECURITY, json_response=json_response)
    mcp = ServerClass("insurance-emulator", log_level="WARNING", **options)
    claims = {k: dict(v) for k, v in CLAIMS.items()}  # filed claims live in the process
    next_claim = [3001]

    @mcp.tool()
    def get_policy(policy_id: str) -> dict[str, Any]:
        """Look up an insurance policy by id (e.g. POL-1001)."""
        return _policy(policy_id)

    @mcp.tool()
    def get_claim_status(claim_id: str) -> dict[str, Any]:
        """Current status of a claim by id (e.g. CLM-2001)."""
        if claim_id not in claims:
            raise ToolError(f"Unknown claim id {claim_id!r}")
        return {"claim_id": claim_id, **claims[claim_id]}

    @mcp.tool()
    def file_claim(policy_id: str, description: str, amount: float) -> dict[str, Any]:
        """File a new claim against a policy; returns the new claim id."""
        policy = _policy(policy_id)
        if amount > policy["coverage_limit"]:
            # deliberately an unexpected exception, not a ToolError: a buggy tool
            raise RuntimeError(f"claims backend rejected amount {amount} (over the limit)")
        claim_id = f"CLM-{next_claim[0]}"
        next_claim[0] += 1
        status = "received" if policy["status"] == "active" else "rejected"
        claims[claim_id] = {"policy_id": policy_id, "status": status, "amount": amount,
                            "description": description, "adjuster": None}  # fmt: skip
        return {"claim_id": claim_id, **claims[claim_id]}

    @mcp.tool()
    def quote_premium(product: str, driver_age: int) -> dict[str, Any]:
        """Quote an annual premium for a product (auto, home, travel) and driver age."""
        if product not in BASE_PREMIUM:
            raise ToolError(f"Unknown product {product!r}; expected auto, home or travel")
        if driver_age < 17:
            raise ToolError("driver_age must be at least 17")
        factor = 1.6 if driver_age < 25 else 1.0 if driver_age < 65 else 1.3
        premium = round(BASE_PREMIUM[product] * factor, 2)
        return {"product": product, "driver_age": driver_age, "annual_premium": premium,
                "currency": "EUR"}  # fmt: skip

    @mcp.resource("insurance://products", mime_type="application/json")
    def products() -> str:
        """The products that can be quoted, with their base premiums."""
        return json.dumps(BASE_PREMIUM)

    @mcp.resource("policy://{policy_id}/document", mime_type="text/markdown")
    def policy_document(policy_id: str) -> str:
        """The policy document (terms summary) of a policy."""
        if policy_id not in POLICIES:
            raise ValueError(f"Unknown policy id {policy_id!r}")
        p = POLICIES[policy_id]
        return (
            f"# Policy {policy_id}\n\nHolder: {p['holder']}\nProduct: {p['product']}\n"
            f"Status: {p['status']}\nAnnual premium: EUR {p['annual_premium']:.2f}\n"
            f"Deductible: EUR {p['deductible']}\nCoverage limit: EUR {p['coverage_limit']}\n"
        )

    @mcp.prompt()
    def summarise_claim(claim_id: str) -> str:
        """Ask a model to summarise a claim for the policyholder."""
        if claim_id not in claims:
            raise ValueError(f"Unknown claim id {claim_id!r}")
        claim = {"claim_id": claim_id, **claims[claim_id]}
        return (
            "Summarise this insurance claim for the policyholder in three sentences, "
            f"plainly and without jargon:\n{json.dumps(claim, indent=2)}"
        )

    return mcp


def build_app(json_response: bool = False) -> Any:
    """One Starlette app: streamable HTTP at /mcp plus the SSE transport at /sse."""
    mcp = build_server(json_response)
    if MCP_V2:
        app = mcp.streamable_http_app(transport_security=SECURITY, json_response=json_response)
        sse = mcp.sse_app(transport_security=SECURITY)
    else:
        app, sse = mcp.streamable_http_app(), mcp.sse_app()
    app.router.routes.extend(sse.routes)  # `app` keeps the session manager's lifespan
    return app


class _Uvicorn(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # ours (below) stop it cleanly; uvicorn's would re-raise the signal at exit


async def serve(
    host: str,
    port: int,
    log_level: str = "critical",
    json_response: bool = False,
    root_path: str = "",
) -> None:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    app = build_app(json_response)
    # the SDK logs a traceback for every deliberate error (prompt, resource, session end)
    logging.getLogger("mcp").setLevel(log_level.upper())
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=1,
        root_path=root_path,
    )
    server = _Uvicorn(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not task.done():
        await asyncio.sleep(0.01)
    if server.started:
        shown = f"[{host}]" if ":" in host else host
        print(f"mcp emulator listening on http://{shown}:{sock.getsockname()[1]}", flush=True)
    await task


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m suite.emulators.mcp_server",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9200, help="0 = any free port (printed)")
    p.add_argument(
        "--log-level",
        default="critical",
        choices=["debug", "info", "warning", "error", "critical"],
        help="of the mcp SDK's loggers (default critical: its tracebacks for the deliberate "
        "errors are noise)",
    )
    p.add_argument(
        "--json-response",
        action="store_true",
        help="answer streamable HTTP POSTs with application/json instead of an SSE stream",
    )
    p.add_argument(
        "--root-path",
        default="",
        help="a gateway prefix (e.g. /mcp-legacy) to put in the SSE transport's announced "
        "message endpoint, when a gateway strips that prefix before forwarding",
    )
    args = p.parse_args(argv)
    asyncio.run(serve(args.host, args.port, args.log_level, args.json_response, args.root_path))
    return 0


if __name__ == "__main__":
    sys.exit(main())

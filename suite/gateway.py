"""`aiops gateway`: a lean mitmproxy Master with only the addons a gateway needs.

mitmdump dispatches every hook through ~35 built-in addons; we load the proxy server,
protocol detection, TLS, error check and our own addons, which roughly doubles
throughput. The gateway never opens DuckDB: it only writes spool segments.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from mitmproxy import ctx, options
from mitmproxy.addons import errorcheck, next_layer, proxyserver, tlsconfig
from mitmproxy.master import Master

from proxy_addons.bodies import BodyCapture
from proxy_addons.cache import CacheHitCost, ResponseCache  # [llm-routing]
from proxy_addons.caller import CallerHeader
from proxy_addons.capture import Capture
from proxy_addons.chaos import ChaosDrills
from proxy_addons.headers import RouteHeaders
from proxy_addons.llm import LlmUsage
from proxy_addons.mcp import McpCapture
from proxy_addons.policy import Policy, PolicyUsage
from proxy_addons.pool import UpstreamPool  # [pool]
from proxy_addons.prompts import PromptAnswers, PromptRoutes  # [llm-routing]
from proxy_addons.reload import ConfigReload
from proxy_addons.router import Router
from suite.admin_server import AdminEndpoint  # [changes]
from suite.config import GatewayConfig
from suite.errors import ConfigError
from suite.home import Home
from suite.logs import setup_logging

log = logging.getLogger("aiops.gateway")
# The reverse-mode target is never used: the router picks the upstream for every request
# (and answers itself when no route matches), so this address is never connected to.
UNUSED_REVERSE_TARGET = "http://127.0.0.1:9"


class Banner:
    """Prints where the gateway listens once the servers are up (tests wait for it)."""

    def __init__(self, home: Home, mode: str, routes: int) -> None:
        self.home, self.mode, self.routes = home, mode, routes

    def running(self) -> None:
        ps = ctx.master.addons.get("proxyserver")
        addrs = ps.listen_addrs() if ps else []
        where = ", ".join(f"http://{a[0]}:{a[1]}" for a in addrs) or "?"
        print(
            f"aiops gateway listening on {where} ({self.mode} mode, {self.routes} routes)",
            flush=True,
        )
        print(f"  home: {self.home.root}", flush=True)
        ca = self.home.certs_dir / "mitmproxy-ca-cert.pem"
        if self.mode == "regular":
            print(f"  CA certificate for HTTPS_PROXY clients: {ca}", flush=True)


def build_master(
    config: GatewayConfig, home: Home, *, listen_host: str, listen_port: int, mode: str
) -> Master:
    opts = options.Options()
    master = Master(opts)
    router = Router()
    router.set_config(config)
    master.addons.add(
        proxyserver.Proxyserver(),
        next_layer.NextLayer(),
        tlsconfig.TlsConfig(),
        errorcheck.ErrorCheck(),
        # Order matters: LLM and MCP set their stream tee before capture wraps it and
        # leave their parsers before capture records; bodies need capture's request id.
        PromptRoutes(config),  # [llm-routing] must see /prompts/<name> before the router 404s it
        router,
        CallerHeader(),  # [catalog] x-aiops-caller header -> requests.caller
        # [keys] addons (auth, limits, budgets, provider keys)
        (policy := Policy()),
        # [ops] addons (chaos, header rules, deprecation)
        RouteHeaders(config),
        ChaosDrills(home),
        ConfigReload(config, home),
        # [llm-routing] addons (aliases, fallbacks, cache, prompt routes)
        ResponseCache(config),
        # [changes] addons (admin endpoint)
        AdminEndpoint(config, home, listen_host),
        # [pool] retries, timeouts, alias fallbacks: forwards last, after every refusal/cache hit
        UpstreamPool(config),
        LlmUsage(),
        CacheHitCost(),  # [llm-routing] after LlmUsage: a cache hit costs 0
        PromptAnswers(),  # [llm-routing] after LlmUsage kept the provider body: plain JSON
        PolicyUsage(policy),  # [keys] charges tokens and cost once LlmUsage knows them
        McpCapture(),
        Capture(),
        BodyCapture(),
        Banner(home, mode, len(config.routes)),
    )
    settings = config.gateway
    update: dict[str, object] = dict(
        listen_host=listen_host,
        listen_port=listen_port,
        mode=[f"reverse:{UNUSED_REVERSE_TARGET}" if mode == "reverse" else "regular"],
        confdir=str(home.certs_dir),
        connection_strategy="lazy",
        keep_host_header=True,
        stream_large_bodies="8m",
        aiops_home=str(home.root),
        aiops_flush_interval=float(settings.flush_interval_seconds),
        aiops_flush_rows=int(settings.flush_rows),
        aiops_max_backlog=int(settings.max_backlog_rows),
    )
    if settings.upstream_ca_file:
        update["ssl_verify_upstream_trusted_ca"] = settings.upstream_ca_file
    opts.update(**update)
    return master


async def _end_idle_connections(loop: asyncio.AbstractEventLoop) -> None:
    """After the master stopped (every record flushed), end the handlers of client
    connections still open (keep-alive) quietly: asyncio would otherwise log each
    cancelled handler as an error with a traceback at exit."""

    def quiet(loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
        if isinstance(context.get("exception"), asyncio.CancelledError):
            return
        loop.default_exception_handler(context)

    loop.set_exception_handler(quiet)
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)


def listen_with_reuse_port() -> None:
    """Let several gateway processes bind one address (SO_REUSEPORT): the kernel spreads
    new connections over them. mitmproxy binds through `asyncio.start_server` and offers
    no option for it, so this process's `start_server` asks for the flag by default."""
    original = asyncio.start_server

    async def start_server(*args: object, **kwargs: object) -> asyncio.Server:
        kwargs.setdefault("reuse_port", True)
        return await original(*args, **kwargs)  # type: ignore[arg-type]

    asyncio.start_server = start_server


def free_tcp_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def ensure_ca(home: Home) -> Path:
    """The gateway's CA in `<home>/certs` (created on first use, as mitmproxy would)."""
    from mitmproxy.certs import CertStore

    CertStore.from_store(home.certs_dir, "mitmproxy", 2048)
    return home.certs_dir / "mitmproxy-ca-cert.pem"


def run_gateway_processes(child_argv: Sequence[str], processes: int) -> int:
    """Run `processes` gateways (each its own mitmproxy loop, gateway id and spool writer,
    all sharing one home and spool) on one port; forward SIGINT/SIGTERM to them and
    wait until each has flushed and exited. Exit code: the worst of theirs."""
    # [ops] AIOPS_GATEWAY_INDEX: only process 0 records a config reload as a change.
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "suite.cli", *child_argv],
            env={**os.environ, "AIOPS_GATEWAY_INDEX": str(i)},
        )
        for i in range(processes)
    ]

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGHUP, forward)  # [ops] config reload reaches every process
    codes = []
    for child in children:
        while True:
            try:
                codes.append(child.wait())
                break
            except KeyboardInterrupt:  # pragma: no cover - the handler above runs instead
                forward(signal.SIGINT, None)
        if codes[-1] != 0:
            # One gateway failed (port taken, bad CA...): stop the others too.
            forward(signal.SIGTERM, None)
    return max(codes, key=abs)


def run_gateway(
    config: GatewayConfig,
    home: Home,
    *,
    listen_host: str,
    listen_port: int,
    mode: str,
    reuse_port: bool = False,
) -> int:
    """Run until SIGINT/SIGTERM; flushes every record before returning. Exit code."""
    home.ensure()
    if reuse_port:
        listen_with_reuse_port()
    # Per-connection chatter from mitmproxy is not useful at INFO in a gateway.
    setup_logging(
        home,
        "gateway",
        quiet=("mitmproxy.proxy.server", "mitmproxy.proxy", "hpack", "h2", "passlib"),
    )
    if config.gateway.upstream_ca_file and not Path(config.gateway.upstream_ca_file).is_file():
        raise ConfigError(f"{config.path}: gateway.upstream_ca_file: not a readable file")

    async def main() -> int:
        master = build_master(
            config, home, listen_host=listen_host, listen_port=listen_port, mode=mode
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, master.shutdown)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        # ErrorCheck exits non-zero by itself when start-up logged an error (port in use).
        await master.run()
        await _end_idle_connections(loop)
        return 0

    return asyncio.run(main())

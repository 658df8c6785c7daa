"""Upstream pools in the gateway: passive health (feeds the circuit breakers and latency
averages of suite.pool), per-upstream timeouts, retries of idempotent requests with
back-off, and LLM model aliases that fall back to the next target on 429, 5xx, connect
errors and timeouts.

mitmproxy cannot send a flow a second time through its own server connection, nor cut a
slow upstream mid-wait, so a flow that needs any of that ("managed": an alias call, a
route with a timeout, an idempotent request on a route with retries) is forwarded by this
addon itself from its async `request` hook with httpx (never blocking the event loop)
up to the status and headers of each try. The try that is served is parked, body unread,
in the loopback stream relay (proxy_addons.relay) and mitmproxy fetches it from there, so
an SSE answer still streams chunk by chunk. The fallback decision is made on the status,
before any byte reaches the client; a stream that breaks later is not retried. Every
other flow is forwarded by mitmproxy as before, and only its outcome is recorded here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import httpx
from mitmproxy import http
from mitmproxy.net.http import status_codes

from proxy_addons.llm import KNOWN_HOSTS, META_LLM
from proxy_addons.relay import RELAY_HEADER, StreamRelay
from proxy_addons.router import (
    META_ERROR,
    META_ROUTE_CFG,
    META_UPSTREAM,
    forwarded_path,
)
from suite.config import GatewayConfig, Route, Upstream
from suite.gateway_errors import gateway_error_response
from suite.llm_usage import detect_llm_api
from suite.pool import META_POOLS, Pools, no_healthy_upstream_response
from suite.pool_config import LlmAlias
from suite.provider_keys import CREDENTIAL_HEADERS, apply_provider_key

log = logging.getLogger("aiops.pool")
# httpx logs every request at INFO: one line per proxied call is noise (and costs time).
logging.getLogger("httpx").setLevel(logging.WARNING)

META_MANAGED = "aiops_pool_managed"  # this addon forwarded the flow itself
META_RELAYED = "aiops_pool_relayed"  # ...and its answer is streamed through the relay
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
RETRY_STATUSES = frozenset({502, 503, 504})
HOP_BY_HOP = frozenset(
    {
        "connection", "keep-alive", "proxy-connection", "proxy-authenticate",
        "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade",
        "host", "content-length",
    }
)  # fmt: skip
# A managed flow without a configured timeout still must not hang for ever.
DEFAULT_CONNECT_TIMEOUT_S = 10.0
# Answers up to this size with a Content-Length are read whole (as capture streams bigger).
STREAM_WHOLE_LIMIT = 1 << 20
DEFAULT_READ_TIMEOUT_S = 600.0
FAILURE_ANSWERS = {
    "timeout": (504, "upstream_timeout"),
    "connect_error": (502, "upstream_unreachable"),
    "reset": (502, "upstream_reset"),
    "error": (502, "upstream_error"),
}


@dataclass
class Target:
    """One place an attempt can go: a route, its upstream, and for an alias the model."""

    route: Route
    model: str | None = None

    def label(self, upstream: Upstream | None) -> str:
        if self.model is not None:
            return f"{self.route.name}:{self.model}"
        return f"{self.route.name}@{upstream.url if upstream else '?'}"


@dataclass
class AttemptResult:
    upstream: Upstream
    outcome: str  # 'ok', a status code, 'timeout', 'connect_error', 'reset', 'error'
    status: int | None = None
    response: httpx.Response | None = None  # open: its body is not read yet
    latency_s: float | None = None
    detail: str = ""
    timeout_s: float | None = None

    async def close(self) -> None:
        if self.response is not None:
            await self.response.aclose()


def needs_managed_forwarding(route: Route, method: str) -> bool:
    """A timeout to enforce, or a retry to make: mitmproxy alone can do neither."""
    if route.timeout_seconds is not None or any(u.timeout_seconds for u in route.upstreams):
        return True
    return route.retries is not None and route.retries.attempts > 0 and method in IDEMPOTENT_METHODS


def alias_of_request(
    aliases: dict[str, LlmAlias], body: bytes | None
) -> tuple[LlmAlias, dict[str, Any]] | None:
    """(alias, parsed JSON body) when the body's `model` names an alias."""
    if not aliases or not body or b'"model"' not in body:
        return None
    try:
        obj = json.loads(body)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    model = obj.get("model")
    alias = aliases.get(model) if isinstance(model, str) else None
    return (alias, obj) if alias is not None else None


def api_relative_path(route: Route, upstream: Upstream | None, forwarded: str) -> str:
    """The path after the route prefix, recovered from a path already forwarded to
    `upstream` by the router (its base path removed, the prefix put back if stripped)."""
    path = forwarded
    if upstream is not None and upstream.base_path and path.startswith(upstream.base_path):
        path = path[len(upstream.base_path) :] or "/"
    if not route.strip_prefix and route.prefix != "/" and path.startswith(route.prefix):
        path = path[len(route.prefix) :] or "/"
    return path if path.startswith("/") else "/" + path


def target_path(target: Route, upstream: Upstream, relative: str) -> str:
    """The path sent to `upstream` of `target` for an API path relative to a route prefix."""
    prefix = "" if target.prefix == "/" else target.prefix
    return forwarded_path(target, upstream, prefix + relative)


def outgoing_headers(
    client_headers: http.Headers, client_route: Route, target: Route, upstream: Upstream
) -> list[tuple[str, str]]:
    """Headers for an attempt: hop-by-hop ones dropped, Host set to the upstream, and the
    target route's provider key in place of the client's credential. A provider key meant
    for another route is never sent on: without its own key a target gets none."""
    headers = client_headers.copy()
    if target.provider_key:
        apply_provider_key(headers, target)
    elif target.name != client_route.name and client_route.provider_key:
        for name in CREDENTIAL_HEADERS:
            if name in headers:
                del headers[name]
    default_port = 443 if upstream.scheme == "https" else 80
    host = upstream.host if upstream.port == default_port else f"{upstream.host}:{upstream.port}"
    out = [(k, v) for k, v in headers.items(multi=True) if k.lower() not in HOP_BY_HOP]
    return [("host", host), *out]


def chain_text(entries: list[str]) -> str:
    return " > ".join(entries)


class UpstreamPool:
    """Records upstream outcomes, and forwards the flows that need retries, timeouts or
    alias fallbacks (see the module docstring)."""

    def __init__(self, config: GatewayConfig | None = None) -> None:
        self.config = GatewayConfig(path="")
        self.aliases: dict[str, LlmAlias] = {}
        self._client: httpx.AsyncClient | None = None
        self._verify: str | bool = True
        self._closing: asyncio.Task[None] | None = None
        self.relay = StreamRelay()
        if config is not None:
            self.set_config(config)

    def set_config(self, config: GatewayConfig) -> None:
        self.config = config
        self.aliases = {a.name: a for a in config.llm_aliases}
        verify: str | bool = config.gateway.upstream_ca_file or True
        if verify != self._verify and self._client is not None:
            old, self._client = self._client, None
            try:
                self._closing = asyncio.get_running_loop().create_task(old.aclose())
            except RuntimeError:  # no loop (tests): nothing is open on it
                pass
        self._verify = verify

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                verify=self._verify,
                trust_env=False,  # never through an HTTP(S)_PROXY of the gateway's own
                follow_redirects=False,
                limits=httpx.Limits(max_connections=1000, max_keepalive_connections=200),
            )
            self._client.headers.clear()  # send the client's headers, not httpx's defaults
        return self._client

    async def running(self) -> None:
        try:
            await self.relay.start()
        except OSError as e:  # answers are then relayed whole, which still works
            log.error("pool: cannot start the stream relay (%s); managed answers go whole", e)

    async def done(self) -> None:
        await self.relay.stop()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- passive health of flows mitmproxy forwarded itself --------------------------------
    def responseheaders(self, flow: http.HTTPFlow) -> None:
        if flow.metadata.get(META_MANAGED) or flow.response is None:
            return
        if flow.server_conn.timestamp_tcp_setup is None:
            return  # made by an addon (refusal, cache hit...): no upstream involved
        pools, route, url = self._pool_meta(flow)
        if pools is None or route is None or url is None:
            return
        sent = flow.request.timestamp_end or flow.request.timestamp_start
        latency = (flow.response.timestamp_start or time.time()) - sent
        self._record(pools, route, url, flow.response.status_code < 500, latency)

    def error(self, flow: http.HTTPFlow) -> None:
        if flow.metadata.get(META_MANAGED) or flow.response is not None:
            return
        message = (flow.error.msg if flow.error else "").lower()
        if "client" in message or "killed" in message:
            return  # the client went away: says nothing about the upstream
        pools, route, url = self._pool_meta(flow)
        if pools is not None and route is not None and url is not None:
            self._record(pools, route, url, False, None)

    @staticmethod
    def _pool_meta(flow: http.HTTPFlow) -> tuple[Pools | None, Route | None, str | None]:
        return (
            flow.metadata.get(META_POOLS),
            flow.metadata.get(META_ROUTE_CFG),
            flow.metadata.get(META_UPSTREAM),
        )

    @staticmethod
    def _record(pools: Pools, route: Route, url: str, ok: bool, latency: float | None) -> None:
        change = pools.get(route).record(url, ok, latency)
        if change == "opened":
            log.warning("pool: route %s: circuit OPEN for upstream %s", route.name, url)
        elif change == "closed":
            log.info("pool: route %s: circuit closed again for upstream %s", route.name, url)

    # -- managed forwarding ----------------------------------------------------------------
    def request(self, flow: http.HTTPFlow) -> Coroutine[Any, Any, None] | None:
        """Decide on the spot (no coroutine for the plain flows that mitmproxy forwards);
        a managed flow gets a coroutine, which mitmproxy awaits before going on."""
        if flow.response or flow.error:
            return None
        pools, route, url = self._pool_meta(flow)
        req = flow.request
        if pools is None or route is None or url is None or req.stream or "upgrade" in req.headers:
            return None
        first = next((u for u in route.upstreams if u.url == url), None)
        if first is None:
            return None
        found = alias_of_request(self.aliases, req.raw_content) if req.method == "POST" else None
        if found is not None:
            alias, body = found
            if detect_llm_api(req.method, req.path, alias.api_family) is not None:
                return self._serve_alias(flow, pools, route, first, alias, body)
        if needs_managed_forwarding(route, req.method):
            return self._serve_with_retries(flow, pools, route, first)
        return None

    async def _serve_with_retries(
        self, flow: http.HTTPFlow, pools: Pools, route: Route, first: Upstream
    ) -> None:
        flow.metadata[META_MANAGED] = True
        req = flow.request
        retries = route.retries
        extra = retries.attempts if retries is not None and req.method in IDEMPOTENT_METHODS else 0
        relative = api_relative_path(route, first, req.path)
        target = Target(route)
        chain: list[str] = []
        tried: list[str] = []
        upstream: Upstream | None = first
        result: AttemptResult | None = None
        for attempt in range(extra + 1):
            if upstream is None:
                break
            if result is not None:
                await result.close()
            if attempt > 0 and retries is not None and retries.backoff_ms > 0:
                delay = retries.backoff_ms / 1000 * 2 ** (attempt - 1)
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            path = target_path(route, upstream, relative)
            result = await self._attempt(
                flow, pools, route, target, upstream, path, req.raw_content
            )
            tried.append(upstream.url)
            chain.append(f"{target.label(upstream)}({result.outcome})")
            if result.status is not None and result.status not in RETRY_STATUSES:
                break
            upstream = pools.pick(route, exclude=tried) or pools.pick(route)
        fields = flow.metadata.setdefault("aiops_fields", {})
        fields["attempts"] = len(chain)
        if len(chain) > 1:
            fields["fallback_chain"] = chain_text(chain)
        if result is None:
            flow.metadata[META_ERROR] = "no_healthy_upstream"
            flow.response = no_healthy_upstream_response(route, pools)
            return
        await self._serve(flow, route, result, relative)

    async def _serve_alias(
        self,
        flow: http.HTTPFlow,
        pools: Pools,
        client_route: Route,
        first: Upstream,
        alias: LlmAlias,
        body: dict[str, Any],
    ) -> None:
        flow.metadata[META_MANAGED] = True
        fields = flow.metadata.setdefault("aiops_fields", {})
        fields["llm_alias"] = alias.name
        if client_route.llm_api_family != alias.api_family and (
            client_route.llm_api or client_route.llm_provider
        ):
            flow.metadata[META_ERROR] = "alias_wrong_format"
            flow.response = gateway_error_response(
                400,
                "alias_wrong_format",
                f"model alias {alias.name!r} speaks the {alias.api_family} API; route "
                f"{client_route.name!r} speaks {client_route.llm_api_family}: call the alias "
                "through a route of its format",
                alias=alias.name,
            )
            return
        routes = {r.name: r for r in self.config.routes}
        relative = api_relative_path(client_route, first, flow.request.path)
        chain: list[str] = []
        last: tuple[Route, AttemptResult, bytes] | None = None
        for i, t in enumerate(alias.targets):
            target_route = routes.get(t.route)
            if target_route is None:
                continue
            target = Target(target_route, t.model)
            if i == 0 and target_route.name == client_route.name:
                upstream: Upstream | None = first  # the router's pick for this request
            else:
                upstream = pools.pick(target_route)
            if upstream is None:
                chain.append(f"{target.label(None)}(circuit_open)")
                continue
            if last is not None:
                await last[1].close()
            payload = json.dumps({**body, "model": t.model}, separators=(",", ":")).encode()
            path = target_path(target_route, upstream, relative)
            result = await self._attempt(flow, pools, client_route, target, upstream, path, payload)
            chain.append(f"{target.label(upstream)}({result.outcome})")
            last = (target_route, result, payload)
            if result.status is not None and result.status != 429 and result.status < 500:
                break
        fields["attempts"] = sum(1 for c in chain if not c.endswith("(circuit_open)"))
        fields["fallback_chain"] = chain_text(chain)
        if last is None:
            flow.metadata[META_ERROR] = "no_healthy_upstream"
            flow.response = gateway_error_response(
                503,
                "no_healthy_upstream",
                f"model alias {alias.name!r}: every target's upstreams are failing "
                "(circuit open); retry later",
                alias=alias.name,
                fallback_chain=fields["fallback_chain"],
            )
            return
        target_route, result, payload = last
        flow.request.raw_content = payload
        if "content-length" in flow.request.headers:  # the model name changed its length
            flow.request.headers["content-length"] = str(len(payload))
        await self._serve(flow, target_route, result, relative)

    async def _attempt(
        self,
        flow: http.HTTPFlow,
        pools: Pools,
        client_route: Route,
        target: Target,
        upstream: Upstream,
        path: str,
        content: bytes | None,
    ) -> AttemptResult:
        """Send one try and wait for the answer's status and headers (not its body)."""
        route = target.route
        timeout_s = upstream.timeout_seconds or route.timeout_seconds
        timeout = (
            httpx.Timeout(timeout_s)
            if timeout_s is not None
            else httpx.Timeout(DEFAULT_READ_TIMEOUT_S, connect=DEFAULT_CONNECT_TIMEOUT_S)
        )
        origin = f"{upstream.scheme}://{upstream.host}:{upstream.port}"
        headers = outgoing_headers(flow.request.headers, client_route, route, upstream)
        client = self.client()
        started = time.monotonic()
        try:
            request = client.build_request(
                flow.request.method, origin + path, headers=headers, content=content or b"",
                timeout=timeout,
            )  # fmt: skip
            response = await client.send(request, stream=True)
        except httpx.TimeoutException as e:
            result = AttemptResult(
                upstream, "timeout", detail=f"no answer within {timeout_s}s ({type(e).__name__})"
            )
        except httpx.ConnectError as e:
            result = AttemptResult(upstream, "connect_error", detail=str(e) or type(e).__name__)
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as e:
            result = AttemptResult(upstream, "reset", detail=str(e) or type(e).__name__)
        except httpx.HTTPError as e:
            result = AttemptResult(upstream, "error", detail=f"{type(e).__name__}: {e}")
        else:
            status = response.status_code
            outcome = "ok" if status < 400 else str(status)
            result = AttemptResult(upstream, outcome, status, response, time.monotonic() - started)
        result.timeout_s = timeout_s
        ok = result.status is not None and result.status < 500
        self._record(pools, route, upstream.url, ok, result.latency_s)
        return result

    async def _serve(
        self, flow: http.HTTPFlow, route: Route, result: AttemptResult, relative: str
    ) -> None:
        """Serve the final try on the flow. The request is rewritten to where it was served
        so every later addon (LLM usage, capture) records the real target; the answer is
        streamed through the relay, or read whole when the relay is not running."""
        upstream = result.upstream
        req = flow.request
        req.scheme = upstream.scheme
        req.data.host = upstream.host
        req.data.port = upstream.port
        req.path = target_path(route, upstream, relative)
        flow.metadata[META_UPSTREAM] = upstream.url
        flow.metadata[META_ROUTE_CFG] = route  # LLM usage names the provider that served
        if flow.metadata.get(META_LLM) is not None or route.llm_provider or route.llm_api:
            family = route.llm_api_family
            api = detect_llm_api(req.method, req.path, family)
            if api is not None:
                provider = route.llm_provider or KNOWN_HOSTS.get(upstream.host) or route.name
                flow.metadata[META_LLM] = (provider, family, api)
        response = result.response
        if response is not None and self.relay.running and _streamable(req.method, response):
            assert self.relay.port is not None
            req.headers[RELAY_HEADER] = self.relay.park(response)
            req.scheme = "http"
            req.data.host = "127.0.0.1"
            req.data.port = self.relay.port
            flow.metadata[META_RELAYED] = True
            return
        body = b""
        if response is not None:
            try:
                body = b"".join([chunk async for chunk in response.aiter_raw()])
            except httpx.HTTPError as e:
                kind = "timeout" if isinstance(e, httpx.TimeoutException) else "reset"
                result = AttemptResult(
                    upstream, kind, detail=f"the answer broke off: {type(e).__name__} {e}"
                )
            finally:
                await response.aclose()
        if result.status is None or result.response is None:
            status, code = FAILURE_ANSWERS.get(result.outcome, (502, "upstream_error"))
            flow.metadata[META_ERROR] = code
            flow.metadata["aiops_error_detail"] = result.detail
            flow.response = gateway_error_response(
                status,
                code,
                f"route {route.name!r}: upstream {upstream.url} failed: {result.detail}",
                route=route.name,
                upstream=upstream.url,
                fallback_chain=flow.metadata.get("aiops_fields", {}).get("fallback_chain"),
            )
            return
        headers = http.Headers(
            [
                (k.encode("latin-1"), v.encode("latin-1"))
                for k, v in result.response.headers.multi_items()
                if k.lower() not in HOP_BY_HOP
            ]
        )
        headers["content-length"] = str(len(body))
        now = time.time()
        status_code = result.response.status_code
        reason = status_codes.RESPONSES.get(status_code, "").encode()
        flow.response = http.Response(
            b"HTTP/1.1", status_code, reason, headers, body, None, now, now
        )

    def response(self, flow: http.HTTPFlow) -> None:
        """An answer read whole goes out whole, but addons that set a stream function on it
        (the SSE tee of LLM usage, capture's byte counter) still get to see its bytes."""
        if not flow.metadata.get(META_MANAGED) or flow.metadata.get(META_RELAYED):
            return
        if flow.response is None:
            return
        stream = flow.response.stream
        if callable(stream) and flow.response.raw_content:
            stream(flow.response.raw_content)


def _streamable(method: str, response: httpx.Response) -> bool:
    """Answers worth streaming through the relay: server-sent events, and bodies of unknown
    or large size. A small JSON answer is cheaper read whole and put on the flow (and
    HEAD, 1xx, 204 and 304 answers have no body at all)."""
    status = response.status_code
    if method == "HEAD" or status < 200 or status in (204, 304):
        return False
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        return True
    length = response.headers.get("content-length")
    return length is None or not length.isdigit() or int(length) > STREAM_WHOLE_LIMIT


addons = [UpstreamPool()]

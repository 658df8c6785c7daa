"""Upstream pools in the gateway: passive health (feeds the circuit breakers and latency
averages of suite.pool), per-upstream timeouts, retries of idempotent requests with
back-off, and LLM model aliases that fall back to the next target on 429, 5xx, connect
errors and timeouts.

A flow that may need any of that ("managed": an alias call, a route with a timeout, an
idempotent request on a route with retries) has its FIRST try forwarded by mitmproxy
itself: the `request` hook only points it at the first target (host, path, the model in
the body, that target's provider key) and, for a timeout, arms a timer. Only when that
try fails does this addon take over and make the next tries with httpx:
- an answer with a failing status (alias: 429/5xx; retries: 502/503/504) is seen at
  `responseheaders`; the answer finally served replaces it there, whole (mitmproxy reads
  and drops the failed body: suite.gateway_errors patches its body states for that);
- a connect error or a reset before any byte reached the client, and a try cut by its
  timer (which closes the server connection), come through mitmproxy's protocol-error
  handling, which suite.gateway_errors turns into the `aiops_upstream_failed` hook.
An answer served after a failover is therefore sent whole, an SSE one included (the
events arrive at once when the backup has finished). A stream that breaks after bytes
reached the client is not retried.

Without those patches (an unknown mitmproxy; unit tests) every try of a managed flow is
made with httpx from the `request` hook, and the answer is streamed through the loopback
relay (proxy_addons.relay).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import random
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import httpx
from mitmproxy import ctx, http
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
from suite.gateway_errors import (
    META_FAILURE_MESSAGE,
    META_REPLACED_BODY,
    META_TAKEN_OVER,
    META_TAKEOVER,
    gateway_error_response,
    install_json_error_pages,
)
from suite.llm_usage import detect_llm_api
from suite.pool import META_POOLS, Pools, no_healthy_upstream_response
from suite.pool_config import LlmAlias
from suite.provider_keys import CREDENTIAL_HEADERS, apply_provider_key

log = logging.getLogger("aiops.pool")
# httpx logs every request at INFO: one line per proxied call is noise (and costs time).
logging.getLogger("httpx").setLevel(logging.WARNING)

META_MANAGED = "aiops_pool_managed"  # this addon forwarded the flow itself
META_RELAYED = "aiops_pool_relayed"  # ...and its answer is streamed through the relay
META_REPLACED = "aiops_pool_replaced"  # a failed native answer was replaced by a later try
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


@dataclass
class NativeTry:
    """A first try that mitmproxy forwards itself, and what the addon needs to go on with
    the next tries (httpx) when it fails."""

    pools: Pools
    client_route: Route
    target: Target
    upstream: Upstream
    relative: str  # the API path relative to the route prefix
    chain: list[str]
    alias: LlmAlias | None = None
    body: dict[str, Any] | None = None
    next_target: int = 0  # alias: index of the next target
    retries_left: int = 0
    client_headers: http.Headers | None = None  # before another target's key went in
    timeout_s: float | None = None
    timer: asyncio.TimerHandle | None = None
    timed_out: bool = False

    def label(self) -> str:
        return self.target.label(self.upstream)

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def failed(self, status: int) -> bool:
        if self.alias is not None:
            return status == 429 or status >= 500
        return status in RETRY_STATUSES

    def has_more(self, config: GatewayConfig) -> bool:
        if self.alias is not None:
            names = {r.name for r in config.routes}
            return any(t.route in names for t in self.alias.targets[self.next_target :])
        return self.retries_left > 0


def _server_connection(flow: http.HTTPFlow) -> tuple[Any, Any] | None:
    """(mitmproxy's connection handler, server connection) of a live flow, to close it."""
    try:
        server = ctx.master.addons.get("proxyserver")
        handler = server.connections.get(flow.client_conn.id)
    except AttributeError:
        return None
    if handler is None:
        return None
    transports = list(handler.transports)
    for conn in transports:
        if conn is flow.server_conn:
            return handler, conn
    address = (flow.request.host, flow.request.port)
    for conn in transports:  # still connecting: not on the flow yet
        if (
            conn is not handler.client
            and conn.address == address
            and conn.timestamp_tcp_setup is None
        ):
            return handler, conn
    return None


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
        self.routes: dict[str, Route] = {}
        self._client: httpx.AsyncClient | None = None
        self._verify: str | bool = True
        self._closing: asyncio.Task[None] | None = None
        self.relay = StreamRelay()
        self.native = False  # set in load(): mitmproxy's hooks are patched
        if config is not None:
            self.set_config(config)

    def set_config(self, config: GatewayConfig) -> None:
        self.config = config
        self.aliases = {a.name: a for a in config.llm_aliases}
        self.routes = {r.name: r for r in config.routes}
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
        if self.native:
            return  # the relay only serves the httpx-only path
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
    def load(self, loader: Any) -> None:
        # With mitmproxy's hooks patched (suite.gateway_errors) the first try of a managed
        # flow is forwarded natively and the addon only takes over when it fails.
        self.native = install_json_error_pages()

    # -- passive health of flows mitmproxy forwarded itself --------------------------------
    def responseheaders(self, flow: http.HTTPFlow) -> Coroutine[Any, Any, None] | None:
        if flow.metadata.get(META_MANAGED) or flow.response is None:
            return None
        if flow.server_conn.timestamp_tcp_setup is None:
            return None  # made by an addon (refusal, cache hit...): no upstream involved
        pools, route, url = self._pool_meta(flow)
        if pools is None or route is None or url is None:
            return None
        sent = flow.request.timestamp_end or flow.request.timestamp_start
        latency = (flow.response.timestamp_start or time.time()) - sent
        self._record(pools, route, url, flow.response.status_code < 500, latency)
        state: NativeTry | None = flow.metadata.get(META_TAKEOVER)
        if state is None or state.timed_out:
            return None  # (cut by its timeout: the takeover comes with the protocol error)
        state.cancel_timer()
        del flow.metadata[META_TAKEOVER]
        status = flow.response.status_code
        state.chain.append(f"{state.label()}({'ok' if status < 400 else status})")
        self._chain_fields(flow, state)
        if not state.failed(status) or not state.has_more(self.config):
            return None
        return self._replace_failed_answer(flow, state)

    def error(self, flow: http.HTTPFlow) -> None:
        state: NativeTry | None = flow.metadata.pop(META_TAKEOVER, None)
        if state is not None:
            state.cancel_timer()
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

    # -- managed flows ---------------------------------------------------------------------
    def request(self, flow: http.HTTPFlow) -> Coroutine[Any, Any, None] | None:
        """Decide on the spot. Natively (the gateway): point the first try at its target and
        let mitmproxy forward it. Without mitmproxy's patched hooks (never in the gateway):
        a coroutine forwarding every try with httpx, which mitmproxy awaits."""
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
                if self.native:
                    self._start_alias(flow, pools, route, first, alias, body)
                    return None
                return self._serve_alias(flow, pools, route, first, alias, body)
        if needs_managed_forwarding(route, req.method):
            if self.native:
                self._start_retries(flow, pools, route, first)
                return None
            return self._serve_with_retries(flow, pools, route, first)
        return None

    def _wrong_format(self, flow: http.HTTPFlow, client_route: Route, alias: LlmAlias) -> bool:
        if client_route.llm_api_family == alias.api_family or not (
            client_route.llm_api or client_route.llm_provider
        ):
            return False
        flow.metadata[META_ERROR] = "alias_wrong_format"
        flow.response = gateway_error_response(
            400,
            "alias_wrong_format",
            f"model alias {alias.name!r} speaks the {alias.api_family} API; route "
            f"{client_route.name!r} speaks {client_route.llm_api_family}: call the alias "
            "through a route of its format",
            alias=alias.name,
        )
        return True

    def _start_alias(
        self,
        flow: http.HTTPFlow,
        pools: Pools,
        client_route: Route,
        first: Upstream,
        alias: LlmAlias,
        body: dict[str, Any],
    ) -> None:
        """Point the flow at the alias's first available target (mitmproxy sends it)."""
        fields = flow.metadata.setdefault("aiops_fields", {})
        fields["llm_alias"] = alias.name
        if self._wrong_format(flow, client_route, alias):
            return
        routes = self.routes
        relative = api_relative_path(client_route, first, flow.request.path)
        chain: list[str] = []
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
            payload = json.dumps({**body, "model": t.model}, separators=(",", ":")).encode()
            state = NativeTry(
                pools, client_route, target, upstream, relative, chain,
                alias=alias, body=body, next_target=i + 1,
            )  # fmt: skip
            self._begin(flow, state, payload)
            return
        fields["attempts"] = 0
        fields["fallback_chain"] = chain_text(chain)
        flow.metadata[META_ERROR] = "no_healthy_upstream"
        flow.response = gateway_error_response(
            503,
            "no_healthy_upstream",
            f"model alias {alias.name!r}: every target's upstreams are failing "
            "(circuit open); retry later",
            alias=alias.name,
            fallback_chain=fields["fallback_chain"],
        )

    def _start_retries(
        self, flow: http.HTTPFlow, pools: Pools, route: Route, first: Upstream
    ) -> None:
        retries = route.retries
        method = flow.request.method
        extra = retries.attempts if retries is not None and method in IDEMPOTENT_METHODS else 0
        relative = api_relative_path(route, first, flow.request.path)
        state = NativeTry(pools, route, Target(route), first, relative, [], retries_left=extra)
        self._begin(flow, state, None)

    def _begin(self, flow: http.HTTPFlow, state: NativeTry, payload: bytes | None) -> None:
        route, upstream = state.target.route, state.upstream
        if route.name != state.client_route.name:
            state.client_headers = flow.request.headers.copy()  # before the key swap
        path = target_path(route, upstream, state.relative)
        self._point(flow, state.client_route, route, upstream, path, payload)
        flow.metadata[META_TAKEOVER] = state
        flow.metadata.setdefault("aiops_fields", {})["attempts"] = 1
        timeout = upstream.timeout_seconds or route.timeout_seconds
        if timeout:
            state.timeout_s = timeout
            state.timer = asyncio.get_running_loop().call_later(timeout, self._cut, flow)

    def _point(
        self,
        flow: http.HTTPFlow,
        client_route: Route,
        route: Route,
        upstream: Upstream,
        path: str,
        payload: bytes | None,
    ) -> None:
        """Rewrite the request to go to `upstream` of `route` (host, path, provider key,
        body), so mitmproxy sends it there and later addons record the real target."""
        req = flow.request
        data = req.data
        if (data.scheme, data.host, data.port) != (
            upstream.scheme.encode(),
            upstream.host,
            upstream.port,
        ):
            # (the router already pointed the flow at the first target in the common case:
            # header edits are what costs here)
            req.scheme = upstream.scheme
            data.host = upstream.host
            data.port = upstream.port
            default_port = 443 if upstream.scheme == "https" else 80
            req.host_header = (
                upstream.host
                if upstream.port == default_port
                else f"{upstream.host}:{upstream.port}"
            )
        if data.path != path.encode():
            req.path = path
        if route.name != client_route.name:
            headers = req.headers
            if route.provider_key:
                apply_provider_key(headers, route)
            elif client_route.provider_key:  # never another route's key
                for name in CREDENTIAL_HEADERS:
                    if name in headers:
                        del headers[name]
        if payload is not None:
            if data.content is not None and len(data.content) != len(payload):
                if "content-length" in req.headers:  # the model name changed its length
                    req.headers["content-length"] = str(len(payload))
            data.content = payload
        flow.metadata[META_UPSTREAM] = upstream.url
        flow.metadata[META_ROUTE_CFG] = route  # LLM usage names the provider that served
        if flow.metadata.get(META_LLM) is not None or route.llm_provider or route.llm_api:
            family = route.llm_api_family
            api = detect_llm_api(req.method, req.path, family)
            if api is not None:
                provider = route.llm_provider or KNOWN_HOSTS.get(upstream.host) or route.name
                flow.metadata[META_LLM] = (provider, family, api)

    def _cut(self, flow: http.HTTPFlow) -> None:
        """The native try's timeout fired before its answer's headers: close its server
        connection; mitmproxy then reports the failure and the addon takes over."""
        state: NativeTry | None = flow.metadata.get(META_TAKEOVER)
        if state is None or flow.response is not None or flow.error is not None:
            return
        state.timed_out = True
        found = _server_connection(flow)
        if found is None:
            log.warning("pool: cannot cut %s after %ss: connection not found", flow.request.url,
                        state.timeout_s)  # fmt: skip
            return
        handler, conn = found
        handler.close_connection(conn)

    @staticmethod
    def _chain_fields(flow: http.HTTPFlow, state: NativeTry) -> None:
        fields = flow.metadata.setdefault("aiops_fields", {})
        fields["attempts"] = sum(1 for c in state.chain if not c.endswith("(circuit_open)"))
        if state.alias is not None or len(state.chain) > 1:
            fields["fallback_chain"] = chain_text(state.chain)

    async def _go_on(
        self, flow: http.HTTPFlow, state: NativeTry
    ) -> tuple[Route, AttemptResult, bytes | None] | None:
        """The tries after a failed native one (httpx); the last (route, result, payload)."""
        last: tuple[Route, AttemptResult, bytes | None] | None = None
        chain = state.chain
        if state.alias is not None:
            routes = self.routes
            for t in state.alias.targets[state.next_target :]:
                target_route = routes.get(t.route)
                if target_route is None:
                    continue
                target = Target(target_route, t.model)
                upstream = state.pools.pick(target_route)
                if upstream is None:
                    chain.append(f"{target.label(None)}(circuit_open)")
                    continue
                if last is not None:
                    await last[1].close()
                payload = json.dumps(
                    {**(state.body or {}), "model": t.model}, separators=(",", ":")
                ).encode()
                path = target_path(target_route, upstream, state.relative)
                result = await self._attempt(
                    flow, state.pools, state.client_route, target, upstream, path, payload,
                    state.client_headers,
                )  # fmt: skip
                chain.append(f"{target.label(upstream)}({result.outcome})")
                last = (target_route, result, payload)
                if result.status is not None and result.status != 429 and result.status < 500:
                    break
            return last
        route = state.target.route
        retries = route.retries
        tried = [state.upstream.url]
        for attempt in range(1, state.retries_left + 1):
            upstream = state.pools.pick(route, exclude=tried) or state.pools.pick(route)
            if upstream is None:
                break
            if last is not None:
                await last[1].close()
            if retries is not None and retries.backoff_ms > 0:
                delay = retries.backoff_ms / 1000 * 2 ** (attempt - 1)
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            path = target_path(route, upstream, state.relative)
            result = await self._attempt(
                flow, state.pools, route, state.target, upstream, path, flow.request.raw_content
            )
            tried.append(upstream.url)
            chain.append(f"{state.target.label(upstream)}({result.outcome})")
            last = (route, result, None)
            if result.status is not None and result.status not in RETRY_STATUSES:
                break
        return last

    async def _replace_failed_answer(self, flow: http.HTTPFlow, state: NativeTry) -> None:
        """The native try answered 429/5xx (alias) or 502-504 (retries): go on with httpx
        and put the answer that is served in place of the failed one (whole; mitmproxy reads
        and drops the failed body, see suite.gateway_errors)."""
        flow.metadata[META_MANAGED] = True
        served = await self._go_on(flow, state)
        self._chain_fields(flow, state)
        if served is None:  # every further target's circuit is open: the answer stands
            del flow.metadata[META_MANAGED]
            return
        route, result, payload = served
        await self._serve(flow, route, result, state.relative, payload, relay=False)
        assert flow.response is not None
        flow.metadata[META_REPLACED_BODY] = flow.response.raw_content or b""
        flow.metadata[META_REPLACED] = True
        # Addons before this one saw the failed answer's headers: let them see the new ones.
        try:
            addons = list(ctx.master.addons.chain)
        except AttributeError:  # no master (unit tests)
            addons = []
        for addon in addons:
            if addon is self:
                break
            hook = getattr(addon, "responseheaders", None)
            if hook is not None:
                out = hook(flow)
                if inspect.isawaitable(out):
                    await out

    def aiops_upstream_failed(self, flow: http.HTTPFlow) -> Coroutine[Any, Any, None] | None:
        """suite.gateway_errors: the native try failed before any byte reached the client
        (connect error, reset, cut by its timeout)."""
        state: NativeTry | None = flow.metadata.pop(META_TAKEOVER, None)
        if state is None or flow.metadata.get(META_MANAGED):
            return None
        state.cancel_timer()
        message = str(flow.metadata.pop(META_FAILURE_MESSAGE, "") or "upstream failed")
        return self._take_over_failed_try(flow, state, message)

    async def _take_over_failed_try(
        self, flow: http.HTTPFlow, state: NativeTry, message: str
    ) -> None:
        if state.timed_out:
            outcome, detail = "timeout", f"no answer within {state.timeout_s}s"
        elif flow.server_conn.timestamp_tcp_setup is None:
            outcome, detail = "connect_error", message
        else:
            outcome, detail = "reset", message
        self._record(state.pools, state.target.route, state.upstream.url, False, None)
        state.chain.append(f"{state.label()}({outcome})")
        flow.metadata[META_MANAGED] = True
        served = await self._go_on(flow, state)
        self._chain_fields(flow, state)
        if served is None:
            failed = AttemptResult(state.upstream, outcome, detail=detail)
            served = (state.target.route, failed, None)
        route, result, payload = served
        await self._serve(flow, route, result, state.relative, payload, relay=False)
        flow.metadata[META_TAKEN_OVER] = True

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
        routes = self.routes
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
        await self._serve(flow, target_route, result, relative, payload)

    async def _attempt(
        self,
        flow: http.HTTPFlow,
        pools: Pools,
        client_route: Route,
        target: Target,
        upstream: Upstream,
        path: str,
        content: bytes | None,
        client_headers: http.Headers | None = None,
    ) -> AttemptResult:
        """Send one try and wait for the answer's status and headers (not its body).
        `client_headers`: the client's own headers when the flow's were already changed
        for another target (its provider key)."""
        route = target.route
        timeout_s = upstream.timeout_seconds or route.timeout_seconds
        timeout = (
            httpx.Timeout(timeout_s)
            if timeout_s is not None
            else httpx.Timeout(DEFAULT_READ_TIMEOUT_S, connect=DEFAULT_CONNECT_TIMEOUT_S)
        )
        origin = f"{upstream.scheme}://{upstream.host}:{upstream.port}"
        headers = outgoing_headers(
            client_headers if client_headers is not None else flow.request.headers,
            client_route,
            route,
            upstream,
        )
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
        self,
        flow: http.HTTPFlow,
        route: Route,
        result: AttemptResult,
        relative: str,
        payload: bytes | None = None,
        relay: bool = True,
    ) -> None:
        """Serve the final try on the flow. The request is rewritten to where it was served
        so every later addon (LLM usage, capture) records the real target; the answer is
        streamed through the relay (`relay`: only while mitmproxy has not sent the flow
        yet), or read whole."""
        upstream = result.upstream
        req = flow.request
        self._point(flow, route, route, upstream, target_path(route, upstream, relative), payload)
        response = result.response
        if (
            relay
            and response is not None
            and self.relay.running
            and _streamable(req.method, response)
        ):
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
        if flow.metadata.get(META_REPLACED):  # mitmproxy streamed it (suite.gateway_errors)
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

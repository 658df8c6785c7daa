"""Exact-match response cache for non-streamed LLM calls on routes with `[routes.cache]`.

A hit is answered by the gateway without contacting the upstream (`x-aiops-cache: hit`,
row `cache_hit = true`, tokens as served, cost 0: nothing was spent). Memory only, one
cache per route and gateway process; never does I/O.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from mitmproxy import ctx, exceptions, http

from proxy_addons.capture import META_DEFERRED, META_FIELDS, STREAM_THRESHOLD_BYTES
from proxy_addons.llm import is_event_stream, llm_call_info
from suite.config import GatewayConfig, Route, load_gateway_config
from suite.errors import ConfigError
from suite.response_cache import (
    CACHEABLE_APIS,
    KEY_HEADERS,
    UNSTORED_HEADERS,
    CachedResponse,
    LruTtlCache,
    cache_control_directives,
    cache_key,
    canonical_request_body,
    credential_fingerprint,
)

log = logging.getLogger("aiops.cache")

CACHE_HEADER = "x-aiops-cache"
META_CACHE_STATE = "aiops_cache"  # 'hit' | 'miss' | 'bypass'
META_CACHE_KEY = "aiops_cache_key"
# The route whose cache was asked: an alias call is served (and its flow re-labelled) by
# another route, but its answer belongs in the cache it was looked up in.
META_CACHE_ROUTE = "aiops_cache_route"
# Response headers the [ops] lifecycle rules put on every answer of a deprecated route.
LIFECYCLE_HEADERS = frozenset({"deprecation", "sunset", "link"})
META_CACHE_COLLECTOR = "aiops_cache_collector"


class _BodyCollector:
    """A response stream function for a big or chunked answer: passes every chunk on
    unchanged and keeps a copy up to `limit` bytes (beyond it the answer is not cached)."""

    __slots__ = ("chunks", "limit", "size", "overflow")

    def __init__(self, limit: int) -> None:
        self.chunks: list[bytes] = []
        self.limit, self.size, self.overflow = limit, 0, False

    def __call__(self, data: bytes) -> bytes:
        if not self.overflow and data:
            self.size += len(data)
            if self.size > self.limit:
                self.overflow, self.chunks = True, []
            else:
                self.chunks.append(data)
        return data

    def body(self) -> bytes | None:
        return None if self.overflow else b"".join(self.chunks)


def request_identity(flow: http.HTTPFlow) -> str | None:
    """Who is asking: the gateway key (id and tenant) when there is one, else a digest of
    the client's own credential, so two callers never share an answer."""
    fields = flow.metadata.get(META_FIELDS) or {}
    key_id, tenant = fields.get("api_key_id"), fields.get("tenant")
    if key_id or tenant:
        return f"key={key_id or ''};tenant={tenant or ''}"
    return credential_fingerprint(flow.request.headers.items(multi=True))


def cached_response(entry: CachedResponse, now: float) -> http.Response:
    headers = http.Headers([(k.encode(), v.encode()) for k, v in entry.headers])
    resp = http.Response.make(entry.status, b"", headers)
    # The stored body is the raw one (still content-encoded when the upstream encoded it).
    resp.raw_content = entry.body
    resp.headers["content-length"] = str(len(entry.body))
    resp.headers["age"] = str(max(0, int(now - entry.stored_at)))
    resp.headers[CACHE_HEADER] = "hit"
    return resp


class ResponseCache:
    """Looks answers up in `request` (after auth and limits have run) and stores 200s in
    `response`. Placed before LlmUsage so a hit is parsed like any other answer."""

    def __init__(self, config: GatewayConfig | None = None) -> None:
        self._routes: dict[str, Route] = {}
        self.caches: dict[str, LruTtlCache] = {}
        if config is not None:
            self.set_config(config)

    def configure(self, updated: set[str]) -> None:
        # Loaded alone (`mitmdump -s proxy_addons/router.py -s proxy_addons/cache.py`).
        path = getattr(ctx.options, "aiops_config", "")
        if "aiops_config" in updated and path:
            try:
                self.set_config(load_gateway_config(path))
            except ConfigError as e:
                raise exceptions.OptionsError(str(e)) from None

    def set_config(self, config: GatewayConfig) -> None:
        """Keep the entries of routes that did not change; a changed route starts empty
        (its upstreams or models may answer differently now)."""
        caches: dict[str, LruTtlCache] = {}
        routes: dict[str, Route] = {}
        for route in config.routes:
            if route.cache is None:
                continue
            old = self.caches.get(route.name)
            if old is not None and self._routes.get(route.name) == route:
                caches[route.name] = old
            else:
                caches[route.name] = LruTtlCache(route.cache)
            routes[route.name] = route
        self.caches, self._routes = caches, routes

    def done(self) -> None:
        for name, cache in self.caches.items():
            log.info("cache: route %s: %s", name, cache.stats())

    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error:
            return
        route: Route | None = flow.metadata.get("aiops_route_cfg")
        if route is None or (cache := self.caches.get(route.name)) is None:
            return
        info = llm_call_info(flow)
        if info is None or info[2] not in CACHEABLE_APIS:
            return
        fields: dict[str, Any] = flow.metadata.setdefault(META_FIELDS, {})
        fields["cache_hit"] = False
        req = flow.request
        directives = cache_control_directives(req.headers.get("cache-control"))
        if "no-cache" in req.headers.get("pragma", "").lower():
            directives.add("no-cache")
        canonical = canonical_request_body(req.get_content(strict=False))
        if isinstance(canonical, str) or "no-store" in directives:
            flow.metadata[META_CACHE_STATE] = "bypass"
            return
        key = cache_key(
            route=route.name,
            method=req.method,
            path=flow.metadata.get("aiops_client_path") or req.path,
            canonical_body=canonical,
            identity=request_identity(flow),
            key_headers=[(h, req.headers[h]) for h in KEY_HEADERS if h in req.headers],
        )
        flow.metadata[META_CACHE_KEY] = key
        flow.metadata[META_CACHE_ROUTE] = route.name
        entry = None if "no-cache" in directives else cache.get(key)
        if entry is None:
            flow.metadata[META_CACHE_STATE] = "miss"
            return
        flow.metadata[META_CACHE_STATE] = "hit"
        fields["cache_hit"] = True
        # Nothing went upstream: the row names no upstream.
        flow.metadata.pop("aiops_upstream", None)
        flow.response = cached_response(entry, time.time())

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        state = flow.metadata.get(META_CACHE_STATE)
        resp = flow.response
        if state is None or resp is None:
            return
        resp.headers[CACHE_HEADER] = state
        if state != "miss" or resp.status_code != 200 or resp.stream or is_event_stream(flow):
            return
        length = resp.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) <= STREAM_THRESHOLD_BYTES:
            return  # mitmproxy buffers it: the body is there in `response`
        cache = self.caches.get(flow.metadata.get(META_CACHE_ROUTE, ""))
        if cache is not None:
            collector = _BodyCollector(cache.settings.max_bytes)
            resp.stream = collector
            flow.metadata[META_CACHE_COLLECTOR] = collector

    def response(self, flow: http.HTTPFlow) -> None:
        if flow.metadata.get(META_CACHE_STATE) != "miss":
            return
        resp = flow.response
        key = flow.metadata.get(META_CACHE_KEY)
        cache = self.caches.get(flow.metadata.get(META_CACHE_ROUTE, ""))
        if resp is None or key is None or cache is None or resp.status_code != 200:
            return
        if is_event_stream(flow) or "no-store" in cache_control_directives(
            resp.headers.get("cache-control")
        ):
            return
        collector: _BodyCollector | None = flow.metadata.get(META_CACHE_COLLECTOR)
        body = resp.raw_content  # whole unless mitmproxy streamed it on (then None)
        if not body:
            # Streamed: only what the collector kept (nothing when someone else streamed it).
            body = collector.body() if collector is not None else None
        if body is None:
            return
        # Headers the gateway's own rules add come back on a hit anyway: not stored, so
        # an `add` rule never doubles them.
        skip = UNSTORED_HEADERS | LIFECYCLE_HEADERS | self._rule_headers(flow)
        headers = tuple((k, v) for k, v in resp.headers.items(multi=True) if k.lower() not in skip)
        cache.put(key, CachedResponse(resp.status_code, headers, body, time.time()))

    def _rule_headers(self, flow: http.HTTPFlow) -> set[str]:
        routes = [self._routes.get(flow.metadata.get(META_CACHE_ROUTE, ""))]
        routes.append(flow.metadata.get("aiops_route_cfg"))
        return {
            name.lower()
            for route in routes
            if route is not None
            for _action, name, _value in route.response_headers
        }


class CacheHitCost:
    """After LlmUsage, before the policy charges usage: a hit keeps the tokens it served
    but costs nothing (no provider was paid), so spend and budgets count only real calls.
    LlmUsage's finisher is wrapped (not followed by another) so whoever charges its
    result sees the zero too."""

    def response(self, flow: http.HTTPFlow) -> None:
        if flow.metadata.get(META_CACHE_STATE) != "hit":
            return
        finishers = flow.metadata.get(META_DEFERRED)
        if finishers:
            finishers[:] = [free_of_charge(fn) for fn in finishers]


def free_of_charge(fn: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    def run() -> dict[str, Any]:
        fields = fn()
        if fields.get("kind") == "llm":
            fields["cost_usd"] = 0.0
            fields["llm_unpriced"] = False
        return fields

    return run


addons = [ResponseCache(), CacheHitCost()]

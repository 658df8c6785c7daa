"""Routes requests by path prefix to upstreams (round-robin) and answers unknown paths.

Reverse mode: `/claims/...` goes to the `claims` route's next upstream; no route -> a 404
JSON error from the gateway. Regular (forward-proxy) mode: the route is named from the
upstream the client addressed, and the request goes where the client sent it.
"""

from __future__ import annotations

import logging

from mitmproxy import ctx, exceptions, http

from suite.config import GatewayConfig, Route, Upstream, load_gateway_config
from suite.errors import ConfigError
from suite.gateway_errors import gateway_error_response, install_json_error_pages
from suite.pool import META_POOLS, Pools, no_healthy_upstream_response  # [pool]

log = logging.getLogger("aiops.router")

META_ROUTE = "aiops_route"
META_ROUTE_CFG = "aiops_route_cfg"  # the Route object, for addons that need its settings
META_UPSTREAM = "aiops_upstream"
META_ERROR = "aiops_error"
# What the client sent, before the route rewrites it (capture records these).
META_CLIENT_HOST = "aiops_client_host"
META_CLIENT_PATH = "aiops_client_path"


def match_route(routes: tuple[Route, ...], path: str) -> Route | None:
    """The most specific route for a path (routes must be longest-prefix first)."""
    bare = path.split("?", 1)[0]
    for route in routes:
        if route.matches(bare):
            return route
    return None


def forwarded_path(route: Route, upstream: Upstream, path: str) -> str:
    """The path sent upstream: prefix stripped if asked, upstream base path prepended."""
    if route.strip_prefix and route.prefix != "/":
        path = path[len(route.prefix) :]
        if not path.startswith("/"):
            path = "/" + path
    return upstream.base_path + path


class Router:
    def __init__(self) -> None:
        self.config = GatewayConfig(path="")
        self._routes: tuple[Route, ...] = ()
        self.pools = Pools()  # [pool] strategies, latency and circuit breakers per route
        self._by_authority: dict[tuple[str, str, int], Route] = {}
        self._reverse = True

    def load(self, loader) -> None:
        install_json_error_pages()
        loader.add_option(
            "aiops_config", str, "", "Gateway TOML config with [[routes]] (the aiops contract)."
        )

    def configure(self, updated: set[str]) -> None:
        if "aiops_config" in updated and ctx.options.aiops_config:
            try:
                self.set_config(load_gateway_config(ctx.options.aiops_config))
            except ConfigError as e:
                raise exceptions.OptionsError(str(e)) from None
        if "mode" in updated:
            self._reverse = any(m.startswith("reverse") for m in ctx.options.mode)

    def set_config(self, config: GatewayConfig) -> None:
        self.config = config
        self._routes = config.routes_by_specificity()
        self.pools.set_config(config)  # [pool] keeps health/latency of upstreams still listed
        self._by_authority = {
            (u.scheme, u.host, u.port): r for r in config.routes for u in r.upstreams
        }

    def next_upstream(self, route: Route) -> Upstream | None:
        """[pool] The route's next upstream by its strategy, skipping open circuits (suite.pool);
        None when every upstream's circuit is open."""
        return self.pools.pick(route)

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error:
            return
        req = flow.request
        if not self._reverse:
            route = self._by_authority.get((req.scheme, req.host, req.port))
            if route is not None:
                flow.metadata[META_ROUTE] = route.name
                flow.metadata[META_ROUTE_CFG] = route
                if route.capture_bodies != "none":
                    flow.metadata.setdefault("aiops_fields", {})["body_capture"] = (
                        route.capture_bodies
                    )
            flow.metadata[META_UPSTREAM] = f"{req.scheme}://{req.host}:{req.port}"
            return
        flow.metadata[META_CLIENT_HOST] = req.host_header
        flow.metadata[META_CLIENT_PATH] = req.path
        route = match_route(self._routes, req.path)
        if route is None:
            flow.metadata[META_ERROR] = "no_route"
            flow.response = gateway_error_response(
                404,
                "no_route",
                f"no route matches path {req.path.split('?', 1)[0]!r}",
                routes=[r.prefix for r in self._routes],
            )
            return
        upstream = self.next_upstream(route)
        flow.metadata[META_ROUTE] = route.name
        flow.metadata[META_ROUTE_CFG] = route
        flow.metadata[META_POOLS] = self.pools  # [pool] for retries/fallbacks (proxy_addons.pool)
        if upstream is None:  # [pool] every upstream's circuit is open
            flow.metadata[META_ERROR] = "no_healthy_upstream"
            flow.response = no_healthy_upstream_response(route, self.pools)
            return
        flow.metadata[META_UPSTREAM] = upstream.url
        if route.capture_bodies != "none":
            flow.metadata.setdefault("aiops_fields", {})["body_capture"] = route.capture_bodies
        req.scheme = upstream.scheme
        # .data: the public setters also rewrite Host, which we set once below.
        req.data.host = upstream.host
        req.data.port = upstream.port
        req.path = forwarded_path(route, upstream, req.path)
        default_port = 443 if upstream.scheme == "https" else 80
        req.host_header = (
            upstream.host if upstream.port == default_port else f"{upstream.host}:{upstream.port}"
        )


addons = [Router()]

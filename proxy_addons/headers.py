"""Per-route API version and header rules: `route_version` on every row, request header
rules before forwarding, response header rules and the Deprecation / Sunset / Link
headers (RFC 9745, RFC 8594) at responseheaders, so streamed responses get them too.

Pure header edits; never does I/O and never logs a header value.
"""

from __future__ import annotations

from datetime import UTC, datetime

from mitmproxy import http

from suite.api_versions import apply_header_rules, lifecycle_headers
from suite.config import GatewayConfig, Route

META_ROUTE_CFG = "aiops_route_cfg"


class RouteHeaders:
    def __init__(self, config: GatewayConfig | None = None) -> None:
        # Deprecated without a date: deprecated since this gateway first saw it so.
        self._since: dict[str, datetime] = {}
        self._lifecycle: dict[str, list[tuple[str, str]]] = {}
        if config is not None:
            self.set_config(config)

    def set_config(self, config: GatewayConfig) -> None:
        now = datetime.now(UTC).replace(microsecond=0)
        lifecycle: dict[str, list[tuple[str, str]]] = {}
        for r in config.routes:
            if r.deprecated and r.deprecated_since is None:
                self._since.setdefault(r.name, now)
            headers = self.lifecycle_for(r)
            if headers:
                lifecycle[r.name] = headers
        self._lifecycle = lifecycle

    def lifecycle_for(self, route: Route) -> list[tuple[str, str]]:
        return lifecycle_headers(
            deprecated=route.deprecated,
            deprecated_since=route.deprecated_since or self._since.get(route.name),
            sunset=route.sunset,
            link=route.deprecation_link,
        )

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        route: Route | None = flow.metadata.get(META_ROUTE_CFG)
        if route is None:
            return
        if route.version:
            flow.metadata.setdefault("aiops_fields", {})["route_version"] = route.version
        if route.request_headers and not flow.response and not flow.error:
            apply_header_rules(flow.request.headers, route.request_headers)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        route: Route | None = flow.metadata.get(META_ROUTE_CFG)
        resp = flow.response
        if route is None or resp is None:
            return
        if route.response_headers:
            apply_header_rules(resp.headers, route.response_headers)
        for name, value in self._lifecycle.get(route.name, ()):
            if name == "Link":
                resp.headers.add(name, value)
            else:
                resp.headers[name] = value


addons = [RouteHeaders()]

"""Upstream pools: which upstream of a route gets the next request (round robin, smooth
weighted round robin, least latency by EWMA) and passive health (circuit breakers).

Pure in-memory state driven by the gateway's hooks; never does I/O, never blocks, and
takes the clock as an argument so tests can drive it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from mitmproxy import http

from suite.config import GatewayConfig, Route, Upstream
from suite.gateway_errors import gateway_error_response
from suite.pool_config import CircuitBreaker

# Weight of the newest latency sample in the moving average (~ the last 5 samples count).
EWMA_ALPHA = 0.3
# least_latency sends every Nth pick round robin instead, so an upstream that was slow
# gets measured again and wins its traffic back once it recovers.
EXPLORE_EVERY = 10
CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass
class UpstreamState:
    upstream: Upstream
    ewma_s: float | None = None  # time to response headers, seconds
    current_weight: int = 0  # smooth weighted round robin
    failures: int = 0  # consecutive
    opened_at: float | None = None  # circuit open since (None: closed)
    probe_started: float | None = None  # half-open: the one probe in flight since

    def circuit(self, breaker: CircuitBreaker | None, now: float) -> str:
        if breaker is None or self.opened_at is None:
            return CLOSED
        if now - self.opened_at < breaker.cooldown_seconds:
            return OPEN
        return HALF_OPEN


class RoutePool:
    """The upstreams of one route with their health and latency."""

    def __init__(
        self,
        route: Route,
        clock: Callable[[], float] = time.monotonic,
        keep: RoutePool | None = None,
    ) -> None:
        self.route = route
        self.clock = clock
        old = {s.upstream.url: s for s in keep.states} if keep is not None else {}
        self.states: list[UpstreamState] = [_carry(old.get(u.url), u) for u in route.upstreams]
        self._by_url = {s.upstream.url: s for s in self.states}
        self._rr = 0
        self._picks = 0

    @property
    def breaker(self) -> CircuitBreaker | None:
        return self.route.circuit_breaker

    def available(self, exclude: Iterable[str] = ()) -> list[UpstreamState]:
        """Upstreams that may take a request now: circuit closed, or half-open with no
        probe in flight (a probe that never reported back is given up after a cool-down)."""
        now = self.clock()
        skip = set(exclude)
        out = []
        breaker = self.breaker
        for s in self.states:
            if s.upstream.url in skip or (s.upstream.weight == 0 and len(self.states) > 1):
                continue
            state = s.circuit(breaker, now)
            if state == OPEN:
                continue
            if state == HALF_OPEN and breaker is not None and s.probe_started is not None:
                if now - s.probe_started < breaker.cooldown_seconds:
                    continue
            out.append(s)
        return out

    def pick(self, exclude: Iterable[str] = ()) -> Upstream | None:
        """The next upstream by the route's strategy; None when every one is unavailable."""
        candidates = self.available(exclude)
        if not candidates:
            return None
        strategy = self.route.strategy
        self._picks += 1
        if strategy == "weighted":
            chosen = self._smooth_weighted(candidates)
        elif strategy == "least_latency" and self._picks % EXPLORE_EVERY != 0:
            chosen = self._fastest(candidates)
        else:
            chosen = self._round_robin(candidates)
        now = self.clock()
        if chosen.circuit(self.breaker, now) == HALF_OPEN:
            chosen.probe_started = now
        return chosen.upstream

    def _round_robin(self, candidates: list[UpstreamState]) -> UpstreamState:
        # Walk the full list so the order stays exact when every upstream is healthy.
        n = len(self.states)
        ok = {id(s) for s in candidates}
        for k in range(n):
            s = self.states[(self._rr + k) % n]
            if id(s) in ok:
                self._rr = (self._rr + k + 1) % n
                return s
        return candidates[0]

    def _smooth_weighted(self, candidates: list[UpstreamState]) -> UpstreamState:
        """nginx's smooth weighted round robin: exact shares, evenly interleaved."""
        total = 0
        best: UpstreamState | None = None
        for s in candidates:
            s.current_weight += s.upstream.weight
            total += s.upstream.weight
            if best is None or s.current_weight > best.current_weight:
                best = s
        assert best is not None
        best.current_weight -= total
        return best

    def _fastest(self, candidates: list[UpstreamState]) -> UpstreamState:
        unmeasured = [s for s in candidates if s.ewma_s is None]
        if unmeasured:
            return self._round_robin(unmeasured)
        return min(candidates, key=lambda s: s.ewma_s or 0.0)

    def record(self, url: str, ok: bool, latency_s: float | None = None) -> str | None:
        """Report how a request to `url` went (ok: answered below 500). Returns 'opened'
        or 'closed' when the circuit changed, for the log."""
        s = self._by_url.get(url)
        if s is None:
            return None
        if latency_s is not None and latency_s >= 0:
            s.ewma_s = (
                latency_s
                if s.ewma_s is None
                else EWMA_ALPHA * latency_s + (1 - EWMA_ALPHA) * s.ewma_s
            )
        breaker = self.breaker
        if breaker is None:
            return None
        now = self.clock()
        was = s.circuit(breaker, now)
        s.probe_started = None
        if ok:
            s.failures = 0
            if s.opened_at is not None:
                s.opened_at = None
                return "closed"
            return None
        s.failures += 1
        if was == HALF_OPEN or (was == CLOSED and s.failures >= breaker.failures):
            s.opened_at = now
            return "opened"
        return None

    def snapshot(self) -> list[dict[str, object]]:
        now = self.clock()
        return [
            {
                "upstream": s.upstream.url,
                "circuit": s.circuit(self.breaker, now),
                "failures": s.failures,
                "ewma_ms": None if s.ewma_s is None else round(s.ewma_s * 1000, 3),
            }
            for s in self.states
        ]


def _carry(old: UpstreamState | None, upstream: Upstream) -> UpstreamState:
    """A reload keeps what was learnt about an upstream that is still in the pool."""
    if old is None:
        return UpstreamState(upstream)
    return UpstreamState(
        upstream,
        ewma_s=old.ewma_s,
        failures=old.failures,
        opened_at=old.opened_at,
        probe_started=old.probe_started,
    )


class Pools:
    """Every route's pool, rebuilt on reload (state kept per route and upstream URL)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.by_route: dict[str, RoutePool] = {}

    def set_config(self, config: GatewayConfig) -> None:
        old = self.by_route
        self.by_route = {
            r.name: RoutePool(r, self.clock, keep=old.get(r.name)) for r in config.routes
        }

    def get(self, route: Route) -> RoutePool:
        pool = self.by_route.get(route.name)
        if pool is None or pool.route is not route:
            pool = RoutePool(route, self.clock, keep=pool)
            self.by_route[route.name] = pool
        return pool

    def pick(self, route: Route, exclude: Iterable[str] = ()) -> Upstream | None:
        return self.get(route).pick(exclude)


META_POOLS = "aiops_pools"  # the gateway's Pools, set on every routed flow by the router


def no_healthy_upstream_response(route: Route, pools: Pools) -> http.Response:
    """503 when every upstream of a route has its circuit open."""
    pool = pools.get(route)
    now = pool.clock()
    breaker = pool.breaker
    retry_after = 1.0
    if breaker is not None:
        waits = [
            breaker.cooldown_seconds - (now - s.opened_at)
            for s in pool.states
            if s.opened_at is not None
        ]
        retry_after = max(1.0, min(waits, default=1.0))
    resp = gateway_error_response(
        503,
        "no_healthy_upstream",
        f"route {route.name!r}: every upstream is failing (circuit open); retry later",
        route=route.name,
        upstreams=pool.snapshot(),
    )
    resp.headers["Retry-After"] = str(math.ceil(retry_after))
    return resp

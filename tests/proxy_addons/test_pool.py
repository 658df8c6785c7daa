"""Upstream pools: config parsing, strategies, circuit breakers, and the pure helpers of the
failover addon (paths, headers, alias detection)."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from mitmproxy import http
from mitmproxy.test import taddons, tflow

from proxy_addons.pool import (
    UpstreamPool,
    alias_of_request,
    api_relative_path,
    needs_managed_forwarding,
    outgoing_headers,
    target_path,
)
from proxy_addons.router import Router
from suite.config import GatewayConfig, parse_gateway_config
from suite.errors import ConfigError
from suite.pool import EXPLORE_EVERY, Pools, RoutePool
from suite.pool_config import CircuitBreaker, Retries, resolve_alias

BASE = """
[[routes]]
name = "claims"
prefix = "/claims"
upstreams = ["http://127.0.0.1:9001", { url = "http://127.0.0.1:9002/v2", weight = 3, timeout_seconds = 2.5 }]
strategy = "weighted"
timeout_seconds = 10
circuit_breaker = { failures = 3, cooldown_seconds = 5 }
retries = { attempts = 1, backoff_ms = 50 }

[[routes]]
name = "openai"
prefix = "/openai"
strip_prefix = true
llm_provider = "openai"
upstreams = ["http://127.0.0.1:9100"]

[[routes]]
name = "openai-backup"
prefix = "/backup"
strip_prefix = true
llm_provider = "azure"
upstreams = ["http://127.0.0.1:9200/openai"]

[[routes]]
name = "claude"
prefix = "/anthropic"
strip_prefix = true
llm_provider = "anthropic"
upstreams = ["http://127.0.0.1:9300"]
"""


def parse(extra: str = "") -> GatewayConfig:
    import tomllib

    return parse_gateway_config(tomllib.loads(BASE + extra), "gateway.toml")


def errors(extra: str) -> list[str]:
    with pytest.raises(ConfigError) as e:
        parse(extra)
    return str(e.value).splitlines()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- config -----------------------------------------------------------------------------
def test_table_and_plain_upstreams_parse_with_pool_settings() -> None:
    cfg = parse()
    claims = cfg.routes[0]
    plain, table = claims.upstreams
    assert (plain.url, plain.weight, plain.timeout_seconds) == ("http://127.0.0.1:9001", 1, None)
    assert (table.host, table.port, table.base_path) == ("127.0.0.1", 9002, "/v2")
    assert (table.weight, table.timeout_seconds) == (3, 2.5)
    assert claims.strategy == "weighted"
    assert claims.timeout_seconds == 10.0
    assert claims.circuit_breaker == CircuitBreaker(3, 5.0)
    assert claims.retries == Retries(1, 50.0)
    assert cfg.routes[1].strategy == "round_robin"
    assert cfg.routes[1].circuit_breaker is None and cfg.routes[1].retries is None


def test_each_pool_mistake_is_named_once() -> None:
    bad = errors(
        """
[[routes]]
name = "bad"
prefix = "/bad"
strategy = "fastest"
upstreams = [{ url = "htp://nope", weight = 2 }, { url = "http://ok:1", weight = -1 }, { weight = 1 }]
circuit_breaker = { failures = 0 }
retries = { attempts = 2, backof_ms = 3 }
"""
    )
    text = "\n".join(bad)
    assert (
        "routes[4].strategy: 'fastest' is not one of round_robin, weighted, least_latency" in text
    )
    assert "routes[4].upstreams[0]: url: 'htp://nope' is not an http(s) URL" in text
    assert "routes[4].upstreams[1]: weight: -1 must be a whole number" in text
    assert "routes[4].upstreams[2]: url is required" in text
    assert "routes[4].circuit_breaker.failures: 0 is out of range" in text
    assert "routes[4].retries.backof_ms: unknown key" in text
    assert len(bad) == 6, bad


def test_aliases_parse_and_resolve_in_order() -> None:
    cfg = parse(
        """
[[llm_aliases]]
name = "claims-summarizer"
targets = ["openai:gpt-4o-mini", "openai-backup:gpt-4o-mini"]
"""
    )
    (alias,) = cfg.llm_aliases
    assert [str(t) for t in alias.targets] == ["openai:gpt-4o-mini", "openai-backup:gpt-4o-mini"]
    assert alias.api_family == "openai"
    resolved = resolve_alias(cfg, "claims-summarizer")
    assert [(r.name, m) for r, m in resolved] == [
        ("openai", "gpt-4o-mini"),
        ("openai-backup", "gpt-4o-mini"),
    ]
    assert [(r.name, m) for r, m in resolve_alias(cfg, "claude:claude-haiku-4-5")] == [
        ("claude", "claude-haiku-4-5")
    ]
    assert resolve_alias(cfg, "nope") == []


def test_alias_mistakes() -> None:
    bad = errors(
        """
[[llm_aliases]]
name = "summ"
targets = ["openai:gpt-4o-mini", "nowhere:gpt-4o"]

[[llm_aliases]]
name = "mixed"
targets = ["openai:gpt-4o-mini", "claude:claude-haiku-4-5"]

[[llm_aliases]]
name = "summ"
targets = ["openai"]

[[llm_aliases]]
name = "a:b"
targets = []
"""
    )
    text = "\n".join(bad)
    assert "alias summ target nowhere:gpt-4o: no route named 'nowhere'" in text
    assert (
        "alias mixed mixes wire formats" in text and "claude:claude-haiku-4-5 (anthropic)" in text
    )
    assert "llm_aliases[2].name: 'summ' is already used by llm_aliases[0]" in text
    assert "llm_aliases[2].targets[0]: 'openai' must be \"<route name>:<model>\"" in text
    assert "llm_aliases[3].name: 'a:b' is not a valid alias name" in text
    assert "llm_aliases[3].targets: must be a non-empty list" in text


# -- strategies -------------------------------------------------------------------------
def pool_for(extra_route: str) -> RoutePool:
    cfg = parse(extra_route)
    return RoutePool(cfg.routes[-1], Clock())


def test_round_robin_is_exact() -> None:
    pool = pool_for(
        """
[[routes]]
name = "rr"
prefix = "/rr"
upstreams = ["http://a:1", "http://b:1", "http://c:1"]
"""
    )
    picks = [pool.pick() for _ in range(9)]
    assert [u.host for u in picks if u] == ["a", "b", "c"] * 3


def test_smooth_weighted_shares_are_exact_and_interleaved() -> None:
    pool = pool_for(
        """
[[routes]]
name = "w"
prefix = "/w"
strategy = "weighted"
upstreams = [{ url = "http://a:1", weight = 3 }, "http://b:1"]
"""
    )
    picks = [u.host for u in (pool.pick() for _ in range(1000)) if u]
    assert Counter(picks) == {"a": 750, "b": 250}
    assert "bb" not in "".join(picks)  # smooth: never two b in a row at 3:1


def test_least_latency_prefers_fast_explores_and_recovers() -> None:
    pool = pool_for(
        """
[[routes]]
name = "ll"
prefix = "/ll"
strategy = "least_latency"
upstreams = ["http://fast:1", "http://slow:1"]
"""
    )
    latency = {"fast": 0.01, "slow": 0.2}
    picks = []
    for _ in range(200):
        u = pool.pick()
        assert u is not None
        picks.append(u.host)
        pool.record(u.url, True, latency[u.host])
    counts = Counter(picks)
    assert counts["fast"] > 180 and counts["slow"] >= 200 // EXPLORE_EVERY // 2
    latency = {"fast": 0.3, "slow": 0.01}  # the slow one recovered, the fast one degraded
    later = []
    for _ in range(200):
        u = pool.pick()
        assert u is not None
        later.append(u.host)
        pool.record(u.url, True, latency[u.host])
    assert Counter(later[50:])["slow"] > 130


# -- circuit breaker ----------------------------------------------------------------------
def breaker_pool() -> tuple[RoutePool, Clock]:
    cfg = parse(
        """
[[routes]]
name = "cb"
prefix = "/cb"
upstreams = ["http://a:1", "http://b:1"]
circuit_breaker = { failures = 3, cooldown_seconds = 10 }
"""
    )
    clock = Clock()
    return RoutePool(cfg.routes[-1], clock), clock


def test_circuit_opens_after_n_failures_then_half_open_probe_closes_it() -> None:
    pool, clock = breaker_pool()
    a = "http://a:1"
    assert pool.record(a, False) is None
    assert pool.record(a, True) is None  # a success resets the count: consecutive only
    pool.record(a, False)
    pool.record(a, False)
    assert pool.record(a, False) == "opened"
    assert {u.host for u in (pool.pick() for _ in range(10)) if u} == {"b"}
    clock.now += 10
    first = [pool.pick() for _ in range(4)]
    hosts = [u.host for u in first if u]
    assert hosts.count("a") == 1, hosts  # one probe only while it is in flight
    assert pool.record(a, True) == "closed"
    assert Counter(u.host for u in (pool.pick() for _ in range(10)) if u) == {"a": 5, "b": 5}


def test_failed_probe_reopens_and_all_open_gives_none() -> None:
    pool, clock = breaker_pool()
    for url in ("http://a:1", "http://b:1"):
        for _ in range(3):
            pool.record(url, False)
    assert pool.pick() is None
    clock.now += 10
    probe = pool.pick()
    assert probe is not None
    assert pool.record(probe.url, False) == "opened"
    assert pool.snapshot()[0]["circuit"] in ("open", "half_open")


def test_reload_keeps_state_of_upstreams_still_listed() -> None:
    route_text = """
[[routes]]
name = "cb"
prefix = "/cb"
upstreams = ["http://a:1", "http://b:1"]
circuit_breaker = { failures = 1, cooldown_seconds = 10 }
"""
    pools = Pools(Clock())
    cfg = parse(route_text)
    pools.set_config(cfg)
    pools.get(cfg.routes[-1]).record("http://a:1", False)
    reloaded = parse(route_text)  # new Route objects, as a reload makes
    pools.set_config(reloaded)
    route = reloaded.routes[-1]
    assert {u.host for u in (pools.pick(route) for _ in range(4)) if u} == {"b"}


# -- router and addon helpers ------------------------------------------------------------
def test_router_answers_503_when_every_circuit_is_open() -> None:
    cfg = parse(
        """
[[routes]]
name = "cb"
prefix = "/cb"
upstreams = ["http://a:1"]
circuit_breaker = { failures = 1, cooldown_seconds = 30 }
"""
    )
    router = Router()
    with taddons.context(router):
        router.set_config(cfg)
        router.pools.get(cfg.routes[-1]).record("http://a:1", False)
        f = tflow.tflow()
        f.request.path = "/cb/items"
        router.requestheaders(f)
        assert f.response is not None and f.response.status_code == 503
        body = json.loads(f.response.content or b"")
        assert body["error"]["type"] == "no_healthy_upstream"
        assert body["error"]["upstreams"][0]["circuit"] == "open"
        assert f.metadata["aiops_route"] == "cb"
        assert int(f.response.headers["Retry-After"]) == 30


def test_paths_for_alias_targets() -> None:
    cfg = parse()
    openai, backup = cfg.routes[1], cfg.routes[2]
    claims = cfg.routes[0]
    rel = api_relative_path(openai, openai.upstreams[0], "/v1/chat/completions")
    assert rel == "/v1/chat/completions"
    assert target_path(backup, backup.upstreams[0], rel) == "/openai/v1/chat/completions"
    # a route that does not strip its prefix and has a base path
    assert api_relative_path(claims, claims.upstreams[1], "/v2/claims/1?x=1") == "/1?x=1"
    assert target_path(claims, claims.upstreams[1], "/1?x=1") == "/v2/claims/1?x=1"


def test_outgoing_headers_swap_provider_keys_and_never_leak_them() -> None:
    from dataclasses import replace

    cfg = parse()
    openai = replace(cfg.routes[1], provider_key="sk-openai")
    backup = cfg.routes[2]
    keyed_backup = replace(backup, provider_key="sk-backup")
    client = http.Headers(
        authorization="Bearer sk-openai", connection="keep-alive", host="gw", foo="1"
    )
    up = backup.upstreams[0]
    h = dict(outgoing_headers(client, openai, keyed_backup, up))
    assert h["authorization"] == "Bearer sk-backup" and h["host"] == "127.0.0.1:9200"
    assert "connection" not in h and h["foo"] == "1"
    h = dict(outgoing_headers(client, openai, backup, up))
    assert "authorization" not in h  # the openai key never goes to another provider
    h = dict(outgoing_headers(client, cfg.routes[1], backup, up))
    assert h["authorization"] == "Bearer sk-openai"  # no keys configured: client's own


def test_alias_detection_and_managed_decision() -> None:
    cfg = parse(
        """
[[llm_aliases]]
name = "claims-summarizer"
targets = ["openai:gpt-4o-mini"]
"""
    )
    aliases = {a.name: a for a in cfg.llm_aliases}
    found = alias_of_request(aliases, b'{"model": "claims-summarizer", "messages": []}')
    assert found is not None and found[0].name == "claims-summarizer"
    assert alias_of_request(aliases, b'{"model": "gpt-4o-mini"}') is None
    assert alias_of_request(aliases, b'not json with "model"') is None
    claims, openai = cfg.routes[0], cfg.routes[1]
    assert needs_managed_forwarding(claims, "POST")  # it has a timeout to enforce
    assert not needs_managed_forwarding(openai, "GET")
    addon = UpstreamPool(cfg)
    assert set(addon.aliases) == {"claims-summarizer"}


def test_alias_called_through_a_route_of_another_format_is_refused() -> None:
    import asyncio

    from suite.pool import META_POOLS

    cfg = parse(
        """
[[llm_aliases]]
name = "claims-summarizer"
targets = ["openai:gpt-4o-mini"]
"""
    )
    claude = cfg.routes[3]
    pools = Pools()
    pools.set_config(cfg)
    addon = UpstreamPool(cfg)
    f = tflow.tflow()
    f.request.method = "POST"
    f.request.path = "/v1/chat/completions"
    f.request.content = b'{"model": "claims-summarizer", "messages": []}'
    f.metadata.update(
        {META_POOLS: pools, "aiops_route_cfg": claude, "aiops_upstream": claude.upstreams[0].url}
    )
    pending = addon.request(f)
    assert pending is not None
    asyncio.run(pending)
    assert f.response is not None and f.response.status_code == 400
    error = json.loads(f.response.content or b"")["error"]
    assert error["type"] == "alias_wrong_format" and "openai API" in error["message"]
    assert f.metadata["aiops_fields"]["llm_alias"] == "claims-summarizer"


def test_native_first_try_points_the_flow_at_the_first_target_without_key_leaks() -> None:
    """The gateway path: request() only rewrites the flow (mitmproxy forwards it) and keeps
    the client's headers, before the target's key went in, for the tries that may follow."""
    import asyncio
    from dataclasses import replace

    from suite.gateway_errors import META_TAKEOVER
    from suite.pool import META_POOLS

    cfg = parse(
        """
[[llm_aliases]]
name = "claims-summarizer"
targets = ["openai-backup:gpt-4.1-mini", "openai:gpt-4o-mini"]
"""
    )
    openai = replace(cfg.routes[1], provider_key="sk-openai")
    backup = replace(cfg.routes[2], provider_key="sk-backup")
    cfg = replace(cfg, routes=(cfg.routes[0], openai, backup, cfg.routes[3]))
    pools = Pools()
    pools.set_config(cfg)
    addon = UpstreamPool(cfg)
    addon.native = True

    async def run() -> http.HTTPFlow:
        f = tflow.tflow()
        f.request.method = "POST"
        f.request.path = "/v1/chat/completions"
        f.request.headers["authorization"] = "Bearer sk-openai"  # as Policy put it
        f.request.content = b'{"model": "claims-summarizer", "messages": []}'
        f.metadata.update(
            {
                META_POOLS: pools,
                "aiops_route_cfg": openai,
                "aiops_upstream": openai.upstreams[0].url,
            }
        )
        assert addon.request(f) is None  # nothing to await: mitmproxy sends it
        state = f.metadata[META_TAKEOVER]
        state.cancel_timer()
        return f

    f = asyncio.run(run())
    assert (f.request.host, f.request.port, f.request.path) == (
        "127.0.0.1", 9200, "/openai/v1/chat/completions",
    )  # fmt: skip
    assert f.request.headers["authorization"] == "Bearer sk-backup"
    assert json.loads(f.request.content or b"")["model"] == "gpt-4.1-mini"
    assert f.request.headers["content-length"] == str(len(f.request.raw_content or b""))
    assert f.metadata["aiops_upstream"] == backup.upstreams[0].url
    assert f.metadata["aiops_route_cfg"] is backup
    state = f.metadata[META_TAKEOVER]
    assert state.client_headers["authorization"] == "Bearer sk-openai"  # for the next try
    assert state.next_target == 1 and state.has_more(cfg)
    assert state.failed(429) and state.failed(503) and not state.failed(400)
    assert f.metadata["aiops_fields"] == {"llm_alias": "claims-summarizer", "attempts": 1}

    # a target without a key of its own never gets the client route's key
    plain_backup = replace(backup, provider_key=None)
    f2 = tflow.tflow()
    f2.request.headers["authorization"] = "Bearer sk-openai"
    addon._point(f2, openai, plain_backup, backup.upstreams[0], "/x", None)
    assert "authorization" not in f2.request.headers

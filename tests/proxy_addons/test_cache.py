from __future__ import annotations

import json
import tomllib
from typing import Any

from mitmproxy import http
from mitmproxy.test import tflow, tutils

from proxy_addons.cache import (
    CACHE_HEADER,
    META_CACHE_STATE,
    CacheHitCost,
    ResponseCache,
    _BodyCollector,
)
from proxy_addons.capture import META_DEFERRED
from suite.config import GatewayConfig, parse_gateway_config

CONFIG = """
[[routes]]
name = "openai"
prefix = "/openai"
strip_prefix = true
upstreams = ["http://127.0.0.1:9100"]
llm_provider = "openai"
[routes.cache]
ttl_seconds = 60
max_entries = 2

[[routes]]
name = "nocache"
prefix = "/plain"
strip_prefix = true
upstreams = ["http://127.0.0.1:9100"]
llm_provider = "openai"
"""
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def config(text: str = CONFIG) -> GatewayConfig:
    return parse_gateway_config(tomllib.loads(text), "gw.toml")


def llm_flow(
    cfg: GatewayConfig,
    body: dict[str, Any] | bytes = BODY,
    route: str = "openai",
    headers: dict[str, str] | None = None,
    fields: dict[str, Any] | None = None,
) -> http.HTTPFlow:
    f = tflow.tflow()
    f.request.method = "POST"
    f.request.path = "/v1/chat/completions"
    f.request.content = body if isinstance(body, bytes) else json.dumps(body).encode()
    for k, v in (headers or {}).items():
        f.request.headers[k] = v
    f.metadata["aiops_route"] = route
    f.metadata["aiops_route_cfg"] = next(r for r in cfg.routes if r.name == route)
    f.metadata["aiops_client_path"] = f"/{route}/v1/chat/completions"
    f.metadata["aiops_upstream"] = "http://127.0.0.1:9100"
    if fields:
        f.metadata["aiops_fields"] = dict(fields)
    return f


def upstream_answers(
    addon: ResponseCache, f: http.HTTPFlow, status: int = 200, **headers: str
) -> None:
    """What the proxy does on a miss: the upstream's answer, then the two hooks."""
    assert f.response is None, "a hit must not go upstream"
    f.response = tutils.tresp(
        status_code=status,
        content=json.dumps({"id": "chatcmpl-1", "usage": {"prompt_tokens": 3}}).encode(),
    )
    f.response.headers["content-type"] = "application/json"
    for k, v in headers.items():
        f.response.headers[k.replace("_", "-")] = v
    addon.responseheaders(f)
    addon.response(f)


def call(addon: ResponseCache, f: http.HTTPFlow, **upstream: Any) -> str:
    addon.request(f)
    if f.response is None:
        upstream_answers(addon, f, **upstream)
    else:
        addon.responseheaders(f)
        addon.response(f)
    assert f.response is not None
    return f.response.headers.get(CACHE_HEADER, "")


def test_second_identical_call_is_a_hit_answered_by_the_gateway() -> None:
    cfg = config()
    addon = ResponseCache(cfg)
    first = llm_flow(cfg)
    assert call(addon, first) == "miss"
    assert first.metadata["aiops_fields"]["cache_hit"] is False
    # Same request with its keys in another order: the same entry.
    again = llm_flow(cfg, json.dumps(dict(reversed(BODY.items()))).encode())
    assert call(addon, again) == "hit"
    assert again.response is not None and first.response is not None
    assert again.response.content == first.response.content
    assert again.metadata["aiops_fields"]["cache_hit"] is True
    assert "aiops_upstream" not in again.metadata  # nothing went upstream
    assert again.response.headers["age"] == "0"
    # LlmUsage's finisher priced the call; after CacheHitCost it costs nothing.
    again.metadata[META_DEFERRED] = [lambda: {"kind": "llm", "prompt_tokens": 3, "cost_usd": 0.2}]
    CacheHitCost().response(again)
    (finisher,) = again.metadata[META_DEFERRED]
    assert finisher() == {
        "kind": "llm", "prompt_tokens": 3, "cost_usd": 0.0, "llm_unpriced": False,
    }  # fmt: skip
    first.metadata[META_DEFERRED] = [lambda: {"kind": "llm", "cost_usd": 0.2}]
    CacheHitCost().response(first)  # a miss is left alone
    assert first.metadata[META_DEFERRED][0]()["cost_usd"] == 0.2


def test_different_body_tenant_or_credential_misses() -> None:
    cfg = config(CONFIG.replace("max_entries = 2", "max_entries = 100"))
    addon = ResponseCache(cfg)
    assert call(addon, llm_flow(cfg, fields={"tenant": "acme", "api_key_id": "k1"})) == "miss"
    assert call(addon, llm_flow(cfg, fields={"tenant": "acme", "api_key_id": "k1"})) == "hit"
    assert call(addon, llm_flow(cfg, fields={"tenant": "globex", "api_key_id": "k2"})) == "miss"
    other = {**BODY, "temperature": 0}
    assert (
        call(addon, llm_flow(cfg, other, fields={"tenant": "acme", "api_key_id": "k1"})) == "miss"
    )
    # Without gateway keys, each client credential has its own answers.
    assert call(addon, llm_flow(cfg, headers={"authorization": "Bearer one"})) == "miss"
    assert call(addon, llm_flow(cfg, headers={"authorization": "Bearer two"})) == "miss"
    assert call(addon, llm_flow(cfg, headers={"authorization": "Bearer one"})) == "hit"


def test_streamed_no_store_and_non_200_are_never_stored() -> None:
    cfg = config()
    addon = ResponseCache(cfg)
    stream = {**BODY, "stream": True}
    assert call(addon, llm_flow(cfg, stream)) == "bypass"
    assert call(addon, llm_flow(cfg, stream)) == "bypass"
    assert call(addon, llm_flow(cfg, headers={"cache-control": "no-store"})) == "bypass"
    assert call(addon, llm_flow(cfg), status=429) == "miss"
    assert call(addon, llm_flow(cfg), cache_control="no-store") == "miss"
    assert call(addon, llm_flow(cfg)) == "miss"  # none of the above was stored
    assert len(addon.caches["openai"]) == 1


def test_no_cache_refreshes_the_entry_without_reading_it() -> None:
    cfg = config()
    addon = ResponseCache(cfg)
    assert call(addon, llm_flow(cfg)) == "miss"
    assert call(addon, llm_flow(cfg, headers={"cache-control": "no-cache"})) == "miss"
    assert call(addon, llm_flow(cfg, headers={"pragma": "no-cache"})) == "miss"
    assert call(addon, llm_flow(cfg)) == "hit"


def test_routes_without_cache_and_non_llm_calls_are_untouched() -> None:
    cfg = config()
    addon = ResponseCache(cfg)
    f = llm_flow(cfg, route="nocache")
    addon.request(f)
    assert META_CACHE_STATE not in f.metadata and "aiops_fields" not in f.metadata
    g = llm_flow(cfg)
    g.request.method, g.request.path = "GET", "/v1/models"
    addon.request(g)
    assert META_CACHE_STATE not in g.metadata


def test_reload_keeps_unchanged_routes_and_empties_changed_ones() -> None:
    cfg = config()
    addon = ResponseCache(cfg)
    call(addon, llm_flow(cfg))
    addon.set_config(config())
    assert len(addon.caches["openai"]) == 1
    changed = config(CONFIG.replace("ttl_seconds = 60", "ttl_seconds = 30"))
    addon.set_config(changed)
    assert len(addon.caches["openai"]) == 0
    addon.set_config(config(CONFIG.replace("[routes.cache]", "[routes.x]").split("[routes.x]")[0]))
    assert addon.caches == {}


def test_body_collector_keeps_a_bounded_copy_and_passes_chunks_on() -> None:
    c = _BodyCollector(limit=10)
    assert c(b"abcd") == b"abcd" and c(b"efg") == b"efg" and c(b"") == b""
    assert c.body() == b"abcdefg"
    assert c(b"hijkl") == b"hijkl"
    assert c.body() is None  # over the limit: not cached


def test_headers_of_the_gateways_own_rules_are_not_stored() -> None:
    text = CONFIG.replace(
        "[routes.cache]\nttl_seconds = 60",
        '[routes.response_headers]\nadd = {"X-Team" = "claims"}\n[routes.cache]\nttl_seconds = 60',
    )
    cfg = config(text)
    addon = ResponseCache(cfg)
    f = llm_flow(cfg)
    addon.request(f)
    f.response = tutils.tresp(content=b"{}")
    f.response.headers["X-Team"] = "claims"  # as RouteHeaders added it
    f.response.headers["Deprecation"] = "@1700000000"
    f.response.headers["x-request-id"] = "req_1"
    addon.responseheaders(f)
    addon.response(f)
    hit = llm_flow(cfg)
    addon.request(hit)
    assert hit.response is not None
    assert hit.response.headers["x-request-id"] == "req_1"
    assert "X-Team" not in hit.response.headers and "Deprecation" not in hit.response.headers


def test_an_answer_served_by_another_route_is_stored_where_it_was_looked_up() -> None:
    cfg = config()
    addon = ResponseCache(cfg)
    f = llm_flow(cfg)
    addon.request(f)
    # An alias fallback served it from another route and re-labelled the flow.
    f.metadata["aiops_route_cfg"] = next(r for r in cfg.routes if r.name == "nocache")
    upstream_answers(addon, f)
    assert call(addon, llm_flow(cfg)) == "hit"

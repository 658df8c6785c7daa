from __future__ import annotations

import pytest

from suite.config import parse_gateway_config
from suite.errors import ConfigError
from suite.response_cache import (
    CachedResponse,
    CacheSettings,
    LruTtlCache,
    cache_control_directives,
    cache_key,
    canonical_request_body,
    credential_fingerprint,
    entry_size,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def answer(body: bytes = b'{"ok": true}') -> CachedResponse:
    return CachedResponse(200, (("content-type", "application/json"),), body, 0.0)


def key(body: bytes, identity: str | None = "tenant-a", route: str = "openai") -> str:
    canonical = canonical_request_body(body)
    assert isinstance(canonical, bytes)
    return cache_key(
        route=route,
        method="POST",
        path="/openai/v1/chat/completions",
        canonical_body=canonical,
        identity=identity,
    )


def test_key_ignores_key_order_and_spacing_but_not_content_or_identity() -> None:
    a = key(b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}')
    b = key(b'{"messages":[{"content":"hi","role":"user"}],"model":"gpt-4o-mini"}')
    assert a == b
    assert a != key(b'{"messages":[{"content":"hi!","role":"user"}],"model":"gpt-4o-mini"}')
    assert a != key(b'{"messages":[{"content":"hi","role":"user"}],"model":"gpt-4o-mini"}', "b")
    assert a != key(b'{"messages":[{"content":"hi","role":"user"}],"model":"gpt-4o-mini"}', None)
    other_route = key(
        b'{"messages":[{"content":"hi","role":"user"}],"model":"gpt-4o-mini"}', route="x"
    )
    assert a != other_route


def test_streamed_and_non_json_requests_are_not_cacheable() -> None:
    assert canonical_request_body(b'{"model": "m", "stream": true}') == "stream"
    assert (
        canonical_request_body(b'{"model": "m", "stream": false}')
        == b'{"model":"m","stream":false}'
    )
    assert canonical_request_body(b"[1, 2]") == "not_json"
    assert canonical_request_body(b"not json") == "not_json"
    assert canonical_request_body(None) == "not_json"


def test_credential_fingerprint_is_a_digest_per_credential() -> None:
    a = credential_fingerprint([("Authorization", "Bearer sk-one")])
    b = credential_fingerprint([("authorization", "Bearer sk-two")])
    assert a and b and a != b
    assert "sk-one" not in a
    assert credential_fingerprint([("content-type", "application/json")]) is None


def test_cache_control_directives() -> None:
    assert cache_control_directives("No-Cache, max-age=0") == {"no-cache", "max-age"}
    assert cache_control_directives(None) == set()


def test_ttl_expiry_misses() -> None:
    clock = FakeClock()
    cache = LruTtlCache(CacheSettings(ttl_seconds=10), clock)
    cache.put("k", answer())
    clock.now += 9.9
    assert cache.get("k") is not None
    clock.now += 0.2
    assert cache.get("k") is None
    assert len(cache) == 0 and cache.bytes == 0
    assert cache.stats()["expirations"] == 1


def test_lru_evicts_least_recently_used_by_entries() -> None:
    cache = LruTtlCache(CacheSettings(max_entries=2), FakeClock())
    cache.put("a", answer())
    cache.put("b", answer())
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("c", answer())
    assert cache.get("b") is None
    assert cache.get("a") is not None and cache.get("c") is not None
    assert cache.stats()["evictions"] == 1


def test_byte_bound_evicts_and_an_oversized_answer_is_not_stored() -> None:
    one = entry_size("a", answer(b"x" * 1000))
    cache = LruTtlCache(CacheSettings(max_bytes=2 * one + 10), FakeClock())
    for k in "abc":
        assert cache.put(k, answer(b"x" * 1000))
    assert len(cache) == 2 and cache.get("a") is None
    assert cache.bytes <= cache.settings.max_bytes
    assert not cache.put("huge", answer(b"x" * 10_000))
    assert cache.get("huge") is None


def test_resize_evicts_down_to_new_bounds() -> None:
    cache = LruTtlCache(CacheSettings(max_entries=10), FakeClock())
    for k in "abcde":
        cache.put(k, answer())
    cache.resize(CacheSettings(max_entries=2))
    assert len(cache) == 2 and cache.get("e") is not None


ROUTE = """
[[routes]]
name = "openai"
prefix = "/openai"
upstreams = ["http://127.0.0.1:9100"]
"""


def test_route_cache_config_parses_with_defaults() -> None:
    import tomllib

    data = tomllib.loads(ROUTE + "[routes.cache]\nttl_seconds = 60\n")
    route = parse_gateway_config(data, "gw.toml").routes[0]
    assert route.cache == CacheSettings(ttl_seconds=60.0, max_entries=1000, max_bytes=50_000_000)
    off = parse_gateway_config(tomllib.loads(ROUTE + "[routes.cache]\nenabled = false\n"), "g")
    assert off.routes[0].cache is None
    assert parse_gateway_config(tomllib.loads(ROUTE), "g").routes[0].cache is None


def test_route_cache_config_mistakes_are_each_named() -> None:
    import tomllib

    data = tomllib.loads(
        ROUTE + '[routes.cache]\nttl_seconds = -1\nmax_entries = 1.5\nmax_bytes = "big"\nsize = 3\n'
    )
    with pytest.raises(ConfigError) as e:
        parse_gateway_config(data, "gw.toml")
    text = str(e.value)
    assert "routes[0].cache.ttl_seconds: -1 is out of range" in text
    assert "routes[0].cache.max_entries: 1.5 is not a whole number" in text
    assert "routes[0].cache.max_bytes: 'big' is not a number" in text
    assert "routes[0].cache.size: unknown key" in text

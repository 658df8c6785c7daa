"""Exact-match LLM response cache: the `[routes.cache]` settings, the cache key and a
bounded in-memory LRU store with a TTL.

Pure and in-process: nothing here does I/O or touches the store; the gateway's
`proxy_addons/cache.py` calls it from its hooks.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from suite.config import _Problems

CACHE_KEYS = {"enabled", "ttl_seconds", "max_entries", "max_bytes"}
# Request headers that change what a provider answers, so they are part of the key.
KEY_HEADERS = ("anthropic-version", "anthropic-beta", "openai-beta", "openai-organization")
# The LLM APIs whose non-streamed answers are cached (suite.llm_usage.detect_llm_api names).
CACHEABLE_APIS = ("chat", "responses", "embeddings", "messages")
# Response headers not replayed from a stored answer: hop-by-hop, recomputed, or per call.
UNSTORED_HEADERS = frozenset(
    {
        "connection", "keep-alive", "transfer-encoding", "content-length", "date",
        "proxy-connection", "te", "trailer", "upgrade", "set-cookie", "age",
        "x-aiops-cache",
    }
)  # fmt: skip
MAX_KEY_BODY_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class CacheSettings:
    """`[routes.cache]`: opt-in exact-match cache of a route's non-streamed LLM answers."""

    ttl_seconds: float = 300.0
    max_entries: int = 1000
    max_bytes: int = 50_000_000


def parse_route_cache(problems: _Problems, where: str, raw: object) -> CacheSettings | None:
    """`routes[i].cache` -> settings, or None (absent, `enabled = false`, or wrong)."""
    from suite.config import _check_keys, _number

    key = f"{where}.cache"
    if not isinstance(raw, dict):
        problems.add(key, "must be a table ([routes.cache] with ttl_seconds, max_entries, ...)")
        return None
    _check_keys(problems, f"{key}.", raw, CACHE_KEYS)
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        problems.add(f"{key}.enabled", f"{enabled!r} must be true or false")
        return None
    values: dict[str, Any] = {}
    if "ttl_seconds" in raw:
        v = _number(problems, f"{key}.ttl_seconds", raw["ttl_seconds"], minimum=0.001)
        values["ttl_seconds"] = float(v) if v is not None else None
    for name in ("max_entries", "max_bytes"):
        if name in raw:
            v = _number(problems, f"{key}.{name}", raw[name], minimum=1, integer=True)
            values[name] = int(v) if v is not None else None
    if any(v is None for v in values.values()) or not enabled:
        return None
    return CacheSettings(**values)


# -- the key ------------------------------------------------------------------------------
def canonical_request_body(body: bytes | None) -> bytes | str:
    """The request body as JSON with sorted keys and no spaces, or why it is not cacheable:
    'not_json' (not a JSON object, or too big to hash) or 'stream' (`stream: true`)."""
    if not body or len(body) > MAX_KEY_BODY_BYTES:
        return "not_json"
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return "not_json"
    if not isinstance(obj, dict):
        return "not_json"
    if obj.get("stream") is True:
        return "stream"
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def credential_fingerprint(headers: Iterable[tuple[str, str]]) -> str | None:
    """A one-way digest of the client's own credential (Authorization / x-api-key /
    api-key), so callers without a gateway key never share answers either. Only the
    digest is kept, in memory."""
    parts = sorted(
        f"{k.lower()}={v}"
        for k, v in headers
        if k.lower() in ("authorization", "x-api-key", "api-key")
    )
    if not parts:
        return None
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def cache_key(
    *,
    route: str,
    method: str,
    path: str,
    canonical_body: bytes,
    identity: str | None,
    key_headers: Iterable[tuple[str, str]] = (),
) -> str:
    """sha256 over route, method, path (with query), identity (tenant / key id / credential
    digest), the answer-changing headers and the canonical JSON body."""
    h = hashlib.sha256()
    for part in (route, method.upper(), path, identity or "-"):
        h.update(part.encode())
        h.update(b"\0")
    for name, value in sorted((k.lower(), v) for k, v in key_headers):
        h.update(f"{name}={value}".encode())
        h.update(b"\0")
    h.update(canonical_body)
    return h.hexdigest()


def cache_control_directives(value: str | None) -> set[str]:
    """Lower-cased directive names of a Cache-Control header (`no-cache`, `no-store`...)."""
    if not value:
        return set()
    return {d.split("=", 1)[0].strip().lower() for d in value.split(",") if d.strip()}


# -- the store ----------------------------------------------------------------------------
class CachedResponse(NamedTuple):
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    stored_at: float  # time.time() when stored (for the Age header)


class _Entry(NamedTuple):
    response: CachedResponse
    expires: float  # monotonic
    size: int


class LruTtlCache:
    """Least-recently-used entries go first once `max_entries` or `max_bytes` is passed;
    entries older than `ttl_seconds` are never returned. Single-threaded (the proxy loop)."""

    def __init__(
        self, settings: CacheSettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self.bytes = 0
        self.hits = self.misses = self.stores = self.evictions = self.expirations = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> CachedResponse | None:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        if entry.expires <= self._clock():
            self._drop(key)
            self.expirations += 1
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry.response

    def put(self, key: str, response: CachedResponse) -> bool:
        """Store an answer; False when it alone is bigger than the whole cache."""
        size = entry_size(key, response)
        if size > self.settings.max_bytes:
            return False
        if key in self._entries:
            self._drop(key)
        self._entries[key] = _Entry(response, self._clock() + self.settings.ttl_seconds, size)
        self.bytes += size
        self.stores += 1
        self._shrink()
        return True

    def resize(self, settings: CacheSettings) -> None:
        """New bounds (a config reload): evicts down to them; the TTL of entries already
        stored is kept."""
        self.settings = settings
        self._shrink()

    def _shrink(self) -> None:
        s = self.settings
        while self._entries and (len(self._entries) > s.max_entries or self.bytes > s.max_bytes):
            oldest = next(iter(self._entries))
            self._drop(oldest)
            self.evictions += 1

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key)
        self.bytes -= entry.size

    def stats(self) -> dict[str, int]:
        return {
            "entries": len(self._entries),
            "bytes": self.bytes,
            "hits": self.hits,
            "misses": self.misses,
            "stores": self.stores,
            "evictions": self.evictions,
            "expirations": self.expirations,
        }


def entry_size(key: str, response: CachedResponse) -> int:
    """Bytes an entry counts against `max_bytes`: body, headers and key."""
    return len(response.body) + sum(len(k) + len(v) for k, v in response.headers) + len(key) + 64

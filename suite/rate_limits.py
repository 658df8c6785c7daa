"""Token buckets for the gateway's per-key and per-route limits (requests and LLM tokens
per minute), held in memory only.

No I/O and no database: a gateway process keeps its own buckets. Thread-safe, because
tokens are charged from the spool writer's thread once a call's usage is known.
"""

from __future__ import annotations

import math
import threading
from typing import NamedTuple


class TokenBucket:
    """`limit` per minute: holds at most `limit`, refills `limit / 60` per second. A charge
    may take it below zero (LLM tokens are known only after the call); it then refuses
    until it has refilled above zero."""

    __slots__ = ("limit", "rate", "tokens", "updated")

    def __init__(self, limit: int, now: float) -> None:
        self.limit = limit
        self.rate = limit / 60.0
        self.tokens = float(limit)
        self.updated = now

    def refill(self, now: float) -> float:
        if now > self.updated:
            self.tokens = min(float(self.limit), self.tokens + (now - self.updated) * self.rate)
            self.updated = now
        return self.tokens

    def seconds_until(self, level: float) -> float:
        """Seconds until the bucket holds `level` (after a refill at the current time)."""
        return max(0.0, (level - self.tokens) / self.rate)


class Limit(NamedTuple):
    """One limit that applies to a request: `name` as reported ('key rpm', 'route tpm'),
    the bucket it draws on, requests ('rpm') or tokens ('tpm'), and the value."""

    name: str
    bucket: tuple[str, str, str]  # (scope, id, kind), e.g. ("key", "3f2a...", "rpm")
    kind: str
    value: int


class Refusal(NamedTuple):
    limit: Limit
    retry_after: int  # whole seconds, >= 1 (the Retry-After header)


class RateLimiter:
    def __init__(self) -> None:
        self._buckets: dict[tuple[str, str, str], TokenBucket] = {}
        self._lock = threading.Lock()

    def _bucket(self, limit: Limit, now: float) -> TokenBucket:
        b = self._buckets.get(limit.bucket)
        if b is None or b.limit != limit.value:
            # A new key, or a limit changed by a reload: start full at the new size, but
            # never hand out more than the old bucket still held.
            fresh = TokenBucket(limit.value, now)
            if b is not None:
                fresh.tokens = min(fresh.tokens, b.refill(now))
            self._buckets[limit.bucket] = b = fresh
        return b

    def admit(self, limits: list[Limit], now: float) -> Refusal | None:
        """Take one request from every 'rpm' bucket if every bucket allows it (all or
        nothing: a refused request costs nothing); else the first limit that refuses.
        A 'tpm' bucket only has to be above zero."""
        if not limits:
            return None
        with self._lock:
            for limit in limits:
                b = self._bucket(limit, now)
                level = b.refill(now)
                need = 1.0 if limit.kind == "rpm" else 1e-9
                if level < need:
                    wait = b.seconds_until(1.0 if limit.kind == "rpm" else 1.0)
                    return Refusal(limit, max(1, math.ceil(wait)))
            for limit in limits:
                if limit.kind == "rpm":
                    self._buckets[limit.bucket].tokens -= 1.0
        return None

    def charge(self, limits: list[Limit], tokens: int, now: float) -> None:
        """Take `tokens` LLM tokens from each 'tpm' bucket (called once usage is known)."""
        if tokens <= 0:
            return
        with self._lock:
            for limit in limits:
                if limit.kind == "tpm":
                    b = self._bucket(limit, now)
                    b.refill(now)
                    b.tokens -= tokens

    def level(self, bucket: tuple[str, str, str], now: float) -> float | None:
        """The bucket's current content (for tests and status), None if never used."""
        with self._lock:
            b = self._buckets.get(bucket)
            return None if b is None else b.refill(now)

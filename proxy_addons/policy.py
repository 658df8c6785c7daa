"""Gateway policy: API keys, rate limits, budgets and provider key injection.

On a route with `auth = "key"` the caller's gateway key (`Authorization: Bearer` or
`x-api-key`) must be valid for the route; then the per-key budgets and the per-key and
per-route limits apply, the gateway key is removed and the provider's key injected. Hooks
never do I/O: keys and spend come from snapshot files re-read by a background thread.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, NamedTuple

from mitmproxy import ctx, http

from proxy_addons.capture import META_DEFERRED, META_FIELDS
from suite.config import GatewayConfig, Route
from suite.gateway_errors import META_ERROR, gateway_error_response
from suite.key_spend import (
    SpendLedger,
    next_day_start,
    next_month_start,
    read_spend_snapshot,
    spend_snapshot_path,
)
from suite.keys import KEY_PREFIX, KeyRecord, read_keys_snapshot, snapshot_path, state_reason
from suite.keys import verify_key as verify_with_snapshot
from suite.provider_keys import apply_provider_key
from suite.rate_limits import Limit, RateLimiter

log = logging.getLogger("aiops.policy")

META_ROUTE_CFG = "aiops_route_cfg"
META_POLICY = "aiops_policy"  # what to charge once the call's usage is known
RELOAD_CHECK_SECONDS = 1.0
MAX_CACHED_KEYS = 100_000
AUTH_REASONS = {
    "missing": "no gateway key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'",
    "malformed": "the credential sent is not a gateway key (aiops_<id>_<secret>)",
    "unknown": "the gateway key is not known (mistyped, or never issued here)",
    "revoked": "the gateway key has been revoked",
    "expired": "the gateway key has expired",
}


class Presented(NamedTuple):
    key: str | None  # the gateway key, if one was sent
    headers: tuple[str, ...]  # header names that carried it (removed before forwarding)
    other_credential: bool  # some other credential was sent (a provider key, Basic auth)


_KEY_PREFIX_BYTES = KEY_PREFIX.encode()


def presented_key(headers: http.Headers) -> Presented:
    """The gateway key from `Authorization: Bearer <key>` or `x-api-key: <key>` (one pass
    over the raw header fields: this runs on every request)."""
    found: bytes | None = None
    carriers: list[str] = []
    other = False
    for raw_name, raw_value in headers.fields:
        name = raw_name.lower()
        if name == b"authorization":
            scheme, _, value = raw_value.strip().partition(b" ")
            value = value.strip()
            if scheme.lower() == b"bearer" and value.startswith(_KEY_PREFIX_BYTES):
                found = found or value
                carriers.append("authorization")
            else:
                other = True
        elif name == b"x-api-key":
            value = raw_value.strip()
            if value.startswith(_KEY_PREFIX_BYTES):
                found = found or value
                carriers.append("x-api-key")
            else:
                other = True
    key = found.decode("ascii", "replace") if found is not None else None
    return Presented(key, tuple(carriers), other and key is None)


class FileWatch:
    """Re-reads a file when its mtime or size changes; `parse` failures keep the old value."""

    def __init__(self, path: Any, parse: Callable[[Any], Any], apply: Callable[[Any], None]):
        self.path, self.parse, self.apply = path, parse, apply
        self.stamp: tuple[int, int, int] | None = None

    def check(self) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return
        # Writers replace the file (a new inode), so even two writes within the clock's
        # resolution and of the same size are told apart.
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp == self.stamp:
            return
        try:
            value = self.parse(self.path)
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.error("policy: cannot read %s (%s); keeping the previous one", self.path, e)
            self.stamp = stamp
            return
        self.stamp = stamp
        self.apply(value)
        log.info("policy: loaded %s", self.path)


class Policy:
    def __init__(self) -> None:
        self.config = GatewayConfig(path="")
        self.keys: dict[str, KeyRecord] = {}
        self.limiter = RateLimiter()
        self.ledger = SpendLedger()
        self._verified: dict[str, str] = {}  # presented key -> key id (hash checked once)
        self._watches: list[FileWatch] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def set_config(self, config: GatewayConfig) -> None:
        self.config = config

    # -- snapshots ------------------------------------------------------------------------
    def _set_keys(self, keys: dict[str, KeyRecord]) -> None:
        self.keys = keys  # one assignment: the proxy loop sees the old dict or the new one

    def watch_home(self, home_root: str) -> None:
        """Load the key and spend snapshots now, and start re-reading them on change."""
        from suite.home import resolve_home

        home = resolve_home(home_root or None)
        self._watches = [
            FileWatch(snapshot_path(home), read_keys_snapshot, self._set_keys),
            FileWatch(spend_snapshot_path(home), read_spend_snapshot, self.ledger.load),
        ]
        for w in self._watches:
            w.check()
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, name="aiops-policy", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(RELOAD_CHECK_SECONDS):
            for w in self._watches:
                try:
                    w.check()
                except Exception:  # never let the watcher die: keys would go stale
                    log.exception("policy: checking %s failed", w.path)

    def running(self) -> None:
        self.watch_home(getattr(ctx.options, "aiops_home", "") or "")
        log.info("policy: %d gateway keys loaded", len(self.keys))

    def done(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    # -- the checks -----------------------------------------------------------------------
    def verify(self, presented: str, now: float) -> tuple[KeyRecord | None, str | None]:
        key_id = self._verified.get(presented)
        if key_id is not None:
            record = self.keys.get(key_id)
            if record is None:
                return None, "unknown"
            return record, state_reason(record, now)
        record, reason = verify_with_snapshot(presented, self.keys, now)
        if record is not None:
            if len(self._verified) >= MAX_CACHED_KEYS:
                self._verified.clear()
            self._verified[presented] = record.key_id
        return record, reason

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error:
            return
        route: Route | None = flow.metadata.get(META_ROUTE_CFG)
        if route is None:
            return
        headers = flow.request.headers
        sent = presented_key(headers)
        now = time.time()
        record: KeyRecord | None = None
        if route.auth == "key":
            if sent.key is None:
                why = "malformed" if sent.other_credential else "missing"
                return self._refuse_auth(flow, route, why, None)
            record, reason = self.verify(sent.key, now)
            if reason is not None:
                return self._refuse_auth(flow, route, reason, record)
            assert record is not None
            self._attribute(flow, record)
            if not record.allows_route(route.name):
                return _refuse(
                    flow, 403, "api_key_route_forbidden",
                    f"gateway key {record.key_id} may not call route {route.name!r} "
                    f"(allowed: {', '.join(record.routes)})",
                    route=route.name, api_key_id=record.key_id, allowed_routes=list(record.routes),
                )  # fmt: skip
        elif sent.key is not None:
            # Not required here, but if a valid key is sent its tenant is recorded and its
            # own limits and budgets still apply.
            record, reason = self.verify(sent.key, now)
            if reason is not None or (record is not None and not record.allows_route(route.name)):
                record = None
            if record is not None:
                self._attribute(flow, record)
        if sent.headers and not route.provider_key:  # the upstream never sees a gateway key
            for name in sent.headers:
                del headers[name]
        if record is not None and not self._within_budget(flow, record, now):
            return
        limits = _limits(record, route)
        if limits:
            refusal = self.limiter.admit(limits, now)
            if refusal is not None:
                lim = refusal.limit
                return _refuse(
                    flow, 429, f"rate_limited_{lim.name.replace(' ', '_')}",
                    f"{lim.name} limit of {lim.value} "
                    f"{'requests' if lim.kind == 'rpm' else 'LLM tokens'} per minute reached; "
                    f"retry in {refusal.retry_after} s",
                    headers={"Retry-After": str(refusal.retry_after)},
                    route=route.name, limit=lim.name, limit_per_minute=lim.value,
                    retry_after_seconds=refusal.retry_after,
                    api_key_id=record.key_id if record else None,
                )  # fmt: skip
        charge_tokens = [lim for lim in limits if lim.kind == "tpm"]
        budget_key = (
            record.key_id
            if record is not None and (record.budget_usd_day or record.budget_usd_month)
            else None
        )
        if charge_tokens or budget_key:
            flow.metadata[META_POLICY] = (charge_tokens, budget_key)
        apply_provider_key(headers, route)  # drops every client credential first

    def _attribute(self, flow: http.HTTPFlow, record: KeyRecord) -> None:
        fields = flow.metadata.setdefault(META_FIELDS, {})
        fields["api_key_id"] = record.key_id
        fields["tenant"] = record.tenant

    def _refuse_auth(
        self, flow: http.HTTPFlow, route: Route, reason: str, record: KeyRecord | None
    ) -> None:
        if record is not None:  # revoked or expired: which key tried is worth recording
            self._attribute(flow, record)
        _refuse(
            flow, 401, f"api_key_{reason}", AUTH_REASONS[reason],
            headers={"WWW-Authenticate": 'Bearer realm="aiops gateway"'},
            route=route.name, reason=reason, api_key_id=record.key_id if record else None,
        )  # fmt: skip

    def _within_budget(self, flow: http.HTTPFlow, record: KeyRecord, now: float) -> bool:
        if record.budget_usd_day is None and record.budget_usd_month is None:
            return True
        day, month = self.ledger.spent(record.key_id, now)
        for period, spent, limit, resets in (
            ("day", day, record.budget_usd_day, next_day_start),
            ("month", month, record.budget_usd_month, next_month_start),
        ):
            if limit is not None and spent >= limit:
                at = resets(now)
                _refuse(
                    flow, 402, f"budget_exceeded_{period}",
                    f"gateway key {record.key_id} has spent ${spent:.4f} of its "
                    f"${limit:g} {'daily' if period == 'day' else 'monthly'} budget; "
                    f"it resets at {at:%Y-%m-%d %H:%M} UTC",
                    headers={"Retry-After": str(max(1, int(at.timestamp() - now)))},
                    budget=period, spent_usd=round(spent, 6), limit_usd=limit,
                    resets_at=at.isoformat().replace("+00:00", "Z"), api_key_id=record.key_id,
                )  # fmt: skip
                return False
        return True

    # -- charging, once the usage is known ------------------------------------------------
    def charge(self, flow: http.HTTPFlow, fields: dict[str, Any]) -> None:
        """Charge a finished LLM call's tokens and cost (runs in the spool writer thread)."""
        plan = flow.metadata.get(META_POLICY)
        if plan is None or (flow.metadata.get(META_FIELDS) or {}).get("cache_hit"):
            return
        charge_tokens, budget_key = plan
        now = time.time()
        tokens = (fields.get("prompt_tokens") or 0) + (fields.get("completion_tokens") or 0)
        if charge_tokens and tokens:
            self.limiter.charge(charge_tokens, int(tokens), now)
        cost = fields.get("cost_usd")
        if budget_key and cost:
            self.ledger.charge(budget_key, float(cost), now)


def _limits(record: KeyRecord | None, route: Route) -> list[Limit]:
    out: list[Limit] = []
    if record is not None:
        if record.rpm:
            out.append(Limit("key rpm", ("key", record.key_id, "rpm"), "rpm", record.rpm))
        if record.tpm:
            out.append(Limit("key tpm", ("key", record.key_id, "tpm"), "tpm", record.tpm))
    if route.rpm:
        out.append(Limit("route rpm", ("route", route.name, "rpm"), "rpm", route.rpm))
    if route.tpm:
        out.append(Limit("route tpm", ("route", route.name, "tpm"), "tpm", route.tpm))
    return out


def _refuse(
    flow: http.HTTPFlow,
    status: int,
    error_type: str,
    message: str,
    *,
    headers: dict[str, str] | None = None,
    **extra: object,
) -> None:
    flow.metadata[META_ERROR] = error_type
    flow.response = gateway_error_response(status, error_type, message, **extra)
    flow.response.reason = HTTPStatus(status).phrase  # mitmproxy leaves 402/429 without one
    for name, value in (headers or {}).items():
        flow.response.headers[name] = value


class PolicyUsage:
    """Placed after LlmUsage: wraps the finisher that computes a call's tokens and cost
    (in the spool writer's thread) so the policy can charge them to its buckets/ledger."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def response(self, flow: http.HTTPFlow) -> None:
        self._wrap(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._wrap(flow)

    def _wrap(self, flow: http.HTTPFlow) -> None:
        if META_POLICY not in flow.metadata:
            return
        finishers = flow.metadata.get(META_DEFERRED)
        if not finishers:
            return
        charge = self.policy.charge

        def wrapped(fn: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
            def run() -> dict[str, Any]:
                fields = fn()
                if "prompt_tokens" in fields or "cost_usd" in fields:
                    try:
                        charge(flow, fields)
                    except Exception:  # charging must never cost the row
                        log.exception("policy: charging usage failed")
                return fields

            return run

        finishers[:] = [wrapped(fn) for fn in finishers]


_policy = Policy()
addons = [_policy, PolicyUsage(_policy)]

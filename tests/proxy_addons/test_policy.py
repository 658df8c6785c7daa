"""The policy addon on mitmproxy test flows: key checks, header handling, limits, budgets,
charging once usage is known, and snapshot reloads."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from mitmproxy import http
from mitmproxy.test import tflow

from proxy_addons.capture import META_DEFERRED, META_FIELDS
from proxy_addons.policy import Policy, PolicyUsage, presented_key
from suite.config import Route, parse_upstream_url
from suite.gateway_errors import META_ERROR
from suite.home import Home
from suite.key_spend import SpendSnapshot
from suite.keys import KeyRecord, hash_secret, new_key, read_keys_snapshot, write_keys_snapshot

UPSTREAM = parse_upstream_url("http://127.0.0.1:9100")
assert not isinstance(UPSTREAM, str)


def route(**kw: Any) -> Route:
    values: dict[str, Any] = dict(
        name="openai", prefix="/openai", upstreams=(UPSTREAM,), llm_provider="openai",
        auth="key", provider_key="sk-provider-secret",
    )  # fmt: skip
    values.update(kw)
    return Route(**values)


def make_key(**kw: Any) -> tuple[str, KeyRecord]:
    key_id, secret, key = new_key()
    values: dict[str, Any] = dict(
        key_id=key_id, tenant="acme", routes=(), rpm=None, tpm=None, budget_usd_day=None,
        budget_usd_month=None, expires_at=None, revoked_at=None, salt="ab" * 16,
        hash=hash_secret("ab" * 16, secret),
    )  # fmt: skip
    values.update(kw)
    return key, KeyRecord(**values)


def policy_with(*records: KeyRecord) -> Policy:
    p = Policy()
    p._set_keys({r.key_id: r for r in records})
    return p


def flow_for(r: Route, headers: dict[str, str] | None = None) -> http.HTTPFlow:
    f = tflow.tflow()
    for k, v in (headers or {}).items():
        f.request.headers[k] = v
    f.metadata["aiops_route"] = r.name
    f.metadata["aiops_route_cfg"] = r
    return f


def body(f: http.HTTPFlow) -> dict[str, Any]:
    assert f.response is not None
    return json.loads(f.response.content or b"{}")["error"]


def test_presented_key_reads_bearer_and_x_api_key() -> None:
    key, _ = make_key()
    assert presented_key(http.Headers(authorization=f"Bearer {key}")).key == key
    assert presented_key(http.Headers(x_api_key=key)).key == key
    other = presented_key(http.Headers(authorization="Bearer sk-proj-xyz"))
    assert other.key is None and other.other_credential
    assert presented_key(http.Headers()) == (None, (), False)


def test_missing_malformed_unknown_revoked_expired() -> None:
    key, rec = make_key()
    revoked_key, revoked = make_key(revoked_at=time.time() - 1)
    expired_key, expired = make_key(expires_at=time.time() - 1)
    p = policy_with(rec, revoked, expired)
    unknown_key, _ = make_key()
    cases = {
        "missing": {},
        "malformed": {"authorization": "Bearer sk-not-a-gateway-key"},
        "unknown": {"authorization": f"Bearer {unknown_key}"},
        "revoked": {"x-api-key": revoked_key},
        "expired": {"authorization": f"Bearer {expired_key}"},
    }
    for reason, headers in cases.items():
        f = flow_for(route(), headers)
        p.requestheaders(f)
        assert f.response is not None and f.response.status_code == 401, reason
        assert body(f)["reason"] == reason
        assert f.metadata[META_ERROR] == f"api_key_{reason}"
        assert f.response.headers["WWW-Authenticate"].startswith("Bearer")
    # Which revoked key tried is recorded (never the key itself).
    f = flow_for(route(), cases["revoked"])
    p.requestheaders(f)
    assert f.metadata[META_FIELDS]["api_key_id"] == revoked.key_id


def test_valid_key_is_swapped_for_the_provider_key_and_attributed() -> None:
    key, rec = make_key()
    p = policy_with(rec)
    f = flow_for(route(), {"authorization": f"Bearer {key}"})
    p.requestheaders(f)
    assert f.response is None
    assert f.request.headers["authorization"] == "Bearer sk-provider-secret"
    assert f.metadata[META_FIELDS] == {"api_key_id": rec.key_id, "tenant": "acme"}
    # Anthropic wire format: x-api-key carries the provider key; the gateway key is gone.
    f = flow_for(route(llm_provider="anthropic"), {"x-api-key": key})
    p.requestheaders(f)
    assert f.request.headers["x-api-key"] == "sk-provider-secret"
    assert "authorization" not in f.request.headers
    # No provider key configured: the gateway key is removed all the same.
    f = flow_for(route(provider_key=None), {"authorization": f"Bearer {key}", "x-api-key": key})
    p.requestheaders(f)
    assert f.response is None and key not in str(f.request.headers)


def test_route_without_auth_still_injects_and_strips() -> None:
    key, rec = make_key()
    p = policy_with(rec)
    f = flow_for(route(auth="none"), {"authorization": "Bearer client-own"})
    p.requestheaders(f)
    assert f.response is None and f.request.headers["authorization"] == "Bearer sk-provider-secret"
    f = flow_for(route(auth="none", provider_key=None), {"x-api-key": key})
    p.requestheaders(f)
    assert "x-api-key" not in f.request.headers
    assert f.metadata[META_FIELDS]["tenant"] == "acme"


def test_key_not_allowed_on_route_is_403() -> None:
    key, rec = make_key(routes=("claude",))
    p = policy_with(rec)
    f = flow_for(route(), {"authorization": f"Bearer {key}"})
    p.requestheaders(f)
    assert f.response is not None and f.response.status_code == 403
    assert body(f)["allowed_routes"] == ["claude"]
    assert f.metadata[META_ERROR] == "api_key_route_forbidden"


def test_verification_is_cached_and_follows_revocation() -> None:
    key, rec = make_key()
    p = policy_with(rec)
    p.requestheaders(flow_for(route(), {"authorization": f"Bearer {key}"}))
    assert p._verified == {key: rec.key_id}
    p._set_keys({rec.key_id: dataclasses.replace(rec, revoked_at=1.0)})
    f = flow_for(route(), {"authorization": f"Bearer {key}"})
    p.requestheaders(f)
    assert f.response is not None and body(f)["reason"] == "revoked"
    p._set_keys({})
    f = flow_for(route(), {"authorization": f"Bearer {key}"})
    p.requestheaders(f)
    assert f.response is not None and body(f)["reason"] == "unknown"


def test_limits_refuse_with_429_naming_the_limit() -> None:
    key, rec = make_key(rpm=2)
    p = policy_with(rec)
    statuses = []
    for _ in range(3):
        f = flow_for(route(rpm=100), {"authorization": f"Bearer {key}"})
        p.requestheaders(f)
        statuses.append(f.response.status_code if f.response else 200)
    assert statuses == [200, 200, 429]
    assert body(f)["limit"] == "key rpm" and f.response is not None
    assert int(f.response.headers["Retry-After"]) >= 1
    assert f.response.reason == "Too Many Requests"
    assert f.metadata[META_ERROR] == "rate_limited_key_rpm"
    # A route limit applies to every caller, keyed or not.
    p2 = policy_with()
    f1, f2 = flow_for(route(auth="none", rpm=1)), flow_for(route(auth="none", rpm=1))
    p2.requestheaders(f1)
    p2.requestheaders(f2)
    assert f1.response is None and body(f2)["limit"] == "route rpm"


def test_tokens_and_cost_are_charged_when_usage_is_known() -> None:
    key, rec = make_key(tpm=100, budget_usd_day=0.01)
    p = policy_with(rec)
    usage = PolicyUsage(p)
    f = flow_for(route(), {"authorization": f"Bearer {key}"})
    p.requestheaders(f)
    assert f.response is None
    f.response = http.Response.make(200, b"{}")
    f.metadata[META_DEFERRED] = [
        lambda: {"kind": "llm", "prompt_tokens": 80, "completion_tokens": 40, "cost_usd": 0.02}
    ]
    usage.response(f)
    fields = f.metadata[META_DEFERRED][0]()  # what the spool writer thread does
    assert fields["prompt_tokens"] == 80
    f2 = flow_for(route(), {"authorization": f"Bearer {key}"})
    p.requestheaders(f2)
    assert f2.response is not None and f2.response.status_code == 402
    err = body(f2)
    assert err["budget"] == "day" and err["spent_usd"] == 0.02 and err["limit_usd"] == 0.01
    assert err["resets_at"].endswith("T00:00:00Z")
    # Without the budget in the way, the token bucket (120 charged of 100) refuses.
    p.ledger.load(SpendSnapshot(as_of=time.time() + 5, day="", month=""))
    f3 = flow_for(route(), {"authorization": f"Bearer {key}"})
    p.requestheaders(f3)
    assert f3.response is not None and body(f3)["limit"] == "key tpm"


def test_snapshot_reload_picks_up_new_and_revoked_keys(tmp_path: Path) -> None:
    home = Home(tmp_path / "h").ensure()
    key, rec = make_key()
    p = Policy()
    try:
        p.watch_home(str(home.root))
        assert p.keys == {}
        row = {**rec.__dict__, "routes": []}
        write_keys_snapshot(home, [row])
        deadline = time.monotonic() + 10
        while not p.keys and time.monotonic() < deadline:
            time.sleep(0.05)
        assert set(p.keys) == {rec.key_id}
        f = flow_for(route(), {"authorization": f"Bearer {key}"})
        p.requestheaders(f)
        assert f.response is None
        write_keys_snapshot(home, [{**row, "revoked_at": time.time() - 1}])
        while p.keys[rec.key_id].revoked_at is None and time.monotonic() < deadline:
            time.sleep(0.05)
        f = flow_for(route(), {"authorization": f"Bearer {key}"})
        p.requestheaders(f)
        assert f.response is not None and body(f)["reason"] == "revoked"
        assert read_keys_snapshot(home.run_dir / "api_keys.json")[rec.key_id].revoked_at
    finally:
        p.done()

"""Gateway keys (suite.keys), token buckets (suite.rate_limits), key spend (suite.key_spend)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from suite.config import parse_gateway_config
from suite.errors import ConfigError
from suite.home import Home
from suite.key_spend import (
    SpendLedger,
    SpendSnapshot,
    compute_spend_snapshot,
    read_spend_snapshot,
    spend_snapshot_path,
    write_spend_snapshot,
)
from suite.keys import (
    KeyNotFound,
    KeyRecord,
    create_key,
    hash_secret,
    list_keys,
    new_key,
    parse_expires,
    read_keys_snapshot,
    revoke_key,
    snapshot_path,
    split_key,
    verify_key,
)
from suite.rate_limits import Limit, RateLimiter
from suite.store import Store


def _record(key: str, **kw: object) -> KeyRecord:
    key_id, secret = split_key(key) or ("", "")
    salt = "00" * 16
    values: dict[str, object] = dict(
        key_id=key_id, tenant="acme", routes=(), rpm=None, tpm=None, budget_usd_day=None,
        budget_usd_month=None, expires_at=None, revoked_at=None, salt=salt,
        hash=hash_secret(salt, secret),
    )  # fmt: skip
    values.update(kw)
    return KeyRecord(**values)  # type: ignore[arg-type]


def test_new_key_has_256_bit_secret_and_parses_back() -> None:
    key_id, secret, full = new_key()
    assert full == f"aiops_{key_id}_{secret}"
    assert len(secret) == 64 and int(secret, 16) >= 0
    assert split_key(full) == (key_id, secret)
    assert split_key(full + "x") is None
    assert split_key("sk-proj-abc") is None
    assert new_key()[2] != full


def test_verify_reasons() -> None:
    _, _, key = new_key()
    rec = _record(key)
    keys = {rec.key_id: rec}
    assert verify_key(key, keys, 1000.0) == (rec, None)
    assert verify_key("aiops_nope", keys, 1000.0) == (None, "malformed")
    _, _, other = new_key()
    assert verify_key(other, keys, 1000.0) == (None, "unknown")
    # The right id with a wrong secret is unknown too (the id alone proves nothing).
    wrong = key[:-1] + ("0" if key[-1] != "0" else "1")
    assert verify_key(wrong, keys, 1000.0) == (None, "unknown")
    revoked = {rec.key_id: _record(key, revoked_at=999.0)}
    assert verify_key(key, revoked, 1000.0)[1] == "revoked"
    expired = {rec.key_id: _record(key, expires_at=1000.0)}
    assert verify_key(key, expired, 1000.0)[1] == "expired"
    assert verify_key(key, expired, 999.0)[1] is None


def test_parse_expires() -> None:
    now = datetime(2026, 11, 28, 9, 0)
    assert parse_expires("30d", now) == now + timedelta(days=30)
    assert parse_expires("12h", now) == now + timedelta(hours=12)
    assert parse_expires("2027-01-01", now) == datetime(2027, 1, 1)
    assert parse_expires("2027-01-01T12:00:00+02:00", now) == datetime(2027, 1, 1, 10)
    with pytest.raises(ConfigError, match="in the past"):
        parse_expires("2020-01-01", now)
    with pytest.raises(ConfigError, match="neither a date"):
        parse_expires("soon", now)
    with pytest.raises(ConfigError, match="longer than zero"):
        parse_expires("0d", now)


def test_route_auth_and_limits_in_config() -> None:
    route = {"name": "openai", "prefix": "/openai", "upstreams": ["http://127.0.0.1:1"]}
    cfg = parse_gateway_config({"routes": [{**route, "auth": "key", "rpm": 60, "tpm": 1000}]}, "g")
    assert (cfg.routes[0].auth, cfg.routes[0].rpm, cfg.routes[0].tpm) == ("key", 60, 1000)
    plain = parse_gateway_config({"routes": [route]}, "g").routes[0]
    assert (plain.auth, plain.rpm, plain.tpm) == ("none", None, None)
    with pytest.raises(ConfigError) as e:
        parse_gateway_config({"routes": [{**route, "auth": "yes", "rpm": 0, "tpm": 1.5}]}, "g")
    msg = str(e.value)
    assert "routes[0].auth: 'yes' is not one of none, key" in msg
    assert "routes[0].rpm: 0 must be a whole number >= 1" in msg
    assert "routes[0].tpm: 1.5 must be a whole number >= 1" in msg


def test_create_list_revoke_with_audit_and_snapshot(home: Path) -> None:
    store = Store(home)
    key_id, key = create_key(
        store, tenant="claims-team", routes=("openai",), rpm=5, budget_usd_day=2.5,
        expires_at=datetime(2099, 1, 1), actor="alice",
    )  # fmt: skip
    rows = list_keys(store)
    assert [r["key_id"] for r in rows] == [key_id]
    row = rows[0]
    assert row["status"] == "active" and row["routes"] == ["openai"] and row["rpm"] == 5
    assert row["key"] == f"aiops_{key_id}_...{key[-4:]}"
    assert key not in json.dumps(rows, default=str) and "hash" not in row and "salt" not in row
    snap = read_keys_snapshot(snapshot_path(Home(home)))
    assert verify_key(key, snap, datetime.now().timestamp())[1] is None
    assert key.split("_")[2] not in snapshot_path(Home(home)).read_text()
    assert oct(snapshot_path(Home(home)).stat().st_mode & 0o777) == "0o600"

    assert revoke_key(store, key_id, actor="bob") is True
    assert revoke_key(store, key_id, actor="bob") is False
    assert list_keys(store)[0]["status"] == "revoked"
    assert list_keys(store, include_revoked=False) == []
    snap = read_keys_snapshot(snapshot_path(Home(home)))
    assert verify_key(key, snap, datetime.now().timestamp())[1] == "revoked"
    audit = store.query("SELECT actor, action, target_id FROM audit_log ORDER BY id").rows()
    assert audit == [("alice", "api_key.create", key_id), ("bob", "api_key.revoke", key_id)]
    with pytest.raises(KeyNotFound, match="no key with id"):
        revoke_key(store, "0" * 12)
    with pytest.raises(KeyNotFound, match="not a key id"):
        revoke_key(store, "xyz")


def test_create_rejects_bad_options_without_writing(home: Path) -> None:
    store = Store(home)
    with pytest.raises(ConfigError) as e:
        create_key(
            store, tenant="", routes=("nope",), rpm=0, budget_usd_month=-1,
            known_routes={"openai"},
        )  # fmt: skip
    msg = str(e.value)
    for part in ("--tenant", "'nope' is not a route", "--rpm: 0", "--budget-usd-month"):
        assert part in msg
    assert store.query("SELECT count(*) FROM api_keys").item() == 0


def test_token_bucket_rpm_admits_exactly_n_then_refills() -> None:
    limiter = RateLimiter()
    lim = [Limit("key rpm", ("key", "k", "rpm"), "rpm", 3)]
    admitted = [limiter.admit(lim, 100.0) is None for _ in range(5)]
    assert admitted == [True, True, True, False, False]
    refusal = limiter.admit(lim, 100.0)
    assert refusal is not None and refusal.limit.name == "key rpm" and refusal.retry_after == 20
    assert limiter.admit(lim, 120.0) is None  # 20 s refill one request at 3/min
    assert limiter.admit(lim, 120.0) is not None


def test_refused_request_costs_nothing_in_other_buckets() -> None:
    limiter = RateLimiter()
    key = Limit("key rpm", ("key", "k", "rpm"), "rpm", 10)
    route = Limit("route rpm", ("route", "r", "rpm"), "rpm", 1)
    assert limiter.admit([key, route], 0.0) is None
    refusal = limiter.admit([key, route], 0.0)
    assert refusal is not None and refusal.limit.name == "route rpm"
    assert limiter.level(("key", "k", "rpm"), 0.0) == 9.0


def test_tpm_refuses_only_after_tokens_are_charged() -> None:
    limiter = RateLimiter()
    tpm = [Limit("key tpm", ("key", "k", "tpm"), "tpm", 600)]
    assert limiter.admit(tpm, 0.0) is None and limiter.admit(tpm, 0.0) is None
    limiter.charge(tpm, 700, 0.0)  # one call used more than the minute's allowance
    refusal = limiter.admit(tpm, 0.0)
    assert refusal is not None and refusal.limit.name == "key tpm"
    assert refusal.retry_after == 11  # 101 tokens to refill at 10/s
    assert limiter.admit(tpm, 11.0) is None


def test_spend_ledger_adds_local_charges_after_snapshot() -> None:
    t = datetime(2026, 11, 28, 12).timestamp()
    ledger = SpendLedger()
    ledger.charge("k", 0.5, t - 10)
    ledger.charge("k", 0.25, t + 10)
    assert ledger.spent("k", t + 20) == pytest.approx((0.75, 0.75))
    # The worker's snapshot covers up to t: only the later local charge is added to it.
    ledger.load(SpendSnapshot(as_of=t, day="2026-11-28", month="2026-11", keys={"k": (1.0, 3.0)}))
    assert ledger.spent("k", t + 20) == pytest.approx((1.25, 3.25))
    # Next day: the day's spend starts again, the month's does not.
    tomorrow = t + 86400
    assert ledger.spent("k", tomorrow) == pytest.approx((0.0, 3.25))
    assert ledger.spent("other", t) == (0.0, 0.0)


def test_spend_snapshot_from_store(home: Path) -> None:
    store = Store(home)
    store.ensure_schema()
    now = datetime.now().timestamp()
    with store.write() as con:
        con.execute(
            "INSERT INTO requests (id, ts, api_key_id, cost_usd, cache_hit) VALUES "
            "('a', now()::TIMESTAMP, 'k1', 0.5, NULL), ('b', now()::TIMESTAMP, 'k1', 0.25, false),"
            "('c', now()::TIMESTAMP, 'k1', 9.0, true), ('d', now()::TIMESTAMP, 'k2', NULL, NULL)"
        )
    with store.read() as con:
        snap = compute_spend_snapshot(con, now)
    assert snap["keys"] == {"k1": {"day_usd": 0.75, "month_usd": 0.75}}
    result = write_spend_snapshot(store, now)
    assert result["keys_with_spend"] == 1
    loaded = read_spend_snapshot(spend_snapshot_path(Home(home)))
    assert loaded.keys == {"k1": (0.75, 0.75)} and loaded.as_of <= now


def test_cli_create_list_revoke(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from suite.cli import main

    (home).mkdir(parents=True, exist_ok=True)
    (home / "gateway.toml").write_text(
        '[[routes]]\nname = "openai"\nprefix = "/openai"\nupstreams = ["http://127.0.0.1:1"]\n'
    )
    assert main(["keys", "create", "--home", str(home), "--tenant", "t", "--routes", "nope"]) == 2
    assert "'nope' is not a route of the gateway config (openai)" in capsys.readouterr().err
    assert main(["keys", "create", "--home", str(home), "--tenant", "t", "--rpm", "0"]) == 2
    assert "--rpm: 0 must be at least 1" in capsys.readouterr().err
    assert main(["keys", "create", "--home", str(home), "--tenant", "t", "--expires", "x"]) == 2
    capsys.readouterr()
    assert main(["keys", "list", "--home", str(home), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []  # nothing was written by the failures

    argv = ["keys", "create", "--home", str(home), "--tenant", "t", "--routes", "openai"]
    assert main([*argv, "--tpm", "100", "--expires", "30d"]) == 0
    out = capsys.readouterr()
    key = out.out.strip()
    assert split_key(key) is not None and "shown once" in out.err and key not in out.err
    assert main(["keys", "list", "--home", str(home)]) == 0
    listing = capsys.readouterr().out
    assert "active" in listing and "tpm=100" in listing and key not in listing
    key_id = key.split("_")[1]
    assert main(["keys", "revoke", "--home", str(home), key_id]) == 0
    assert "revoked" in capsys.readouterr().out
    assert main(["keys", "list", "--home", str(home), "--json", "--active"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["keys", "revoke", "--home", str(home), "0" * 12]) == 2

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from suite.chaos import (
    ChaosError,
    Drill,
    chaos_path,
    close_expired,
    list_drills,
    read_drills,
    start_drill,
    stop_drills,
    write_drills,
)
from suite.cli import main
from suite.config import parse_gateway_config
from suite.home import Home
from suite.store import Store

CONFIG = """
[[routes]]
name = "claims"
prefix = "/claims"
upstreams = ["http://127.0.0.1:9001"]

[[routes]]
name = "quotes"
prefix = "/quotes"
upstreams = ["http://127.0.0.1:9002"]
"""


@pytest.fixture
def env(tmp_path: Path):  # type: ignore[no-untyped-def]
    home = Home(tmp_path / "home").ensure()
    config = parse_gateway_config(
        {"routes": [
            {"name": "claims", "prefix": "/claims", "upstreams": ["http://127.0.0.1:9001"]},
            {"name": "quotes", "prefix": "/quotes", "upstreams": ["http://127.0.0.1:9002"]},
        ]},
        "gw.toml",
    )  # fmt: skip
    return home, Store(home), config


def test_start_records_a_change_and_publishes_the_drill(env) -> None:  # type: ignore[no-untyped-def]
    home, store, config = env
    d = start_drill(store, home, config, route="claims", error_rate=0.25, latency_ms=50,
                    status=500, duration_seconds=600, reason="game day", actor="alice")  # fmt: skip
    assert read_drills(chaos_path(home)) == [d]
    row = store.query("SELECT * FROM changes").to_dicts()[0]
    assert (row["id"], row["service"], row["kind"], row["source"], row["status"]) == (
        d.id, "claims", "chaos", "cli", "implemented",
    )  # fmt: skip
    assert row["requested_by"] == "alice" and row["window_end"] is not None
    detail = json.loads(row["detail"])
    assert detail["error_rate"] == 0.25 and detail["latency_ms"] == 50 and detail["status"] == 500
    assert "error 25% (status 500), latency +50 ms" in row["summary"]
    audit = store.query("SELECT action, actor, target_id FROM audit_log").rows()
    assert audit == [("chaos.start", "alice", d.id)]
    # One drill per route at a time.
    with pytest.raises(ChaosError, match="already has drill"):
        start_drill(store, home, config, route="claims", latency_ms=5, actor="bob")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"route": "nope", "error_rate": 0.1}, "'nope' is not a route of gw.toml"),
        ({"route": "claims", "error_rate": -0.1}, "--error-rate: -0.1 must be between 0 and 1"),
        ({"route": "claims", "error_rate": 1.01}, "--error-rate: 1.01 must be between 0 and 1"),
        ({"route": "claims"}, "no fault given"),
        ({"route": "claims", "error_rate": 0.1, "status": 200}, "--status: 200"),
        ({"route": "claims", "latency_ms": -1}, "--latency-ms: -1"),
    ],
)
def test_bad_drills_are_refused_and_change_nothing(env, kwargs, message) -> None:  # type: ignore[no-untyped-def]
    home, store, config = env
    with pytest.raises(ChaosError, match=message.replace("(", r"\(")):
        start_drill(store, home, config, actor="alice", **kwargs)
    assert not chaos_path(home).exists()
    assert store.query("SELECT count(*) FROM changes").item() == 0


def test_stop_closes_the_change_and_removes_the_drill(env) -> None:  # type: ignore[no-untyped-def]
    home, store, config = env
    a = start_drill(store, home, config, route="claims", error_rate=1.0, actor="alice")
    b = start_drill(store, home, config, route="quotes", latency_ms=10, actor="alice")
    stopped, expired = stop_drills(store, home, route="claims", actor="bob")
    assert stopped == [a] and expired == []
    assert read_drills(chaos_path(home)) == [b]
    status, closed = store.query("SELECT status, closed_at FROM changes WHERE id = ?", [a.id]).row(
        0
    )
    assert status == "verified" and closed is not None
    events = store.query(
        "SELECT to_status, actor, note FROM change_events WHERE change_id = ? ORDER BY id", [a.id]
    ).rows()
    assert events == [
        ("implemented", "alice", "chaos drill started"),
        ("verified", "bob", "chaos drill ended (stopped)"),
    ]
    with pytest.raises(ChaosError, match="no active drill on 'claims'"):
        stop_drills(store, home, route="claims", actor="bob")
    stopped, _ = stop_drills(store, home, route=None, actor="bob")
    assert stopped == [b] and read_drills(chaos_path(home)) == []


def test_expired_drills_are_closed_by_the_worker_job(env) -> None:  # type: ignore[no-untyped-def]
    home, store, config = env
    d = start_drill(store, home, config, route="claims", latency_ms=5, duration_seconds=60,
                    actor="alice")  # fmt: skip
    assert d.expires_at is not None and d.active(d.expires_at - 1)
    assert close_expired(store, home, now=d.expires_at - 1) == []
    assert not d.active(d.expires_at)
    assert close_expired(store, home, now=d.expires_at + 1) == [d]
    assert read_drills(chaos_path(home)) == []
    assert store.query("SELECT status FROM changes").item() == "verified"
    assert (
        store.query("SELECT note FROM change_events WHERE to_status = 'verified'").item()
        == "chaos drill ended (expired)"
    )
    assert store.query("SELECT source FROM audit_log WHERE action = 'chaos.expired'").item() == (
        "worker"
    )
    assert close_expired(store, home, now=d.expires_at + 2) == []  # closed once
    assert list_drills(store, home) == []


def test_a_damaged_drill_file_reads_as_no_drills(tmp_path: Path) -> None:
    path = tmp_path / "chaos.json"
    path.write_text("{not json")
    assert read_drills(path) == []
    d = Drill("CHG-1", "claims", 0, 0.5, 503, time.time(), None)
    write_drills(path, [d])
    assert read_drills(path) == [d]


def test_cli_validation_exits_2_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "gw.toml"
    config.write_text(CONFIG)
    base = ["chaos", "start", "--home", str(tmp_path / "home"), "--config", str(config)]
    assert main([*base, "--route", "nope", "--error-rate", "0.3"]) == 2
    assert "--route: 'nope' is not a route" in capsys.readouterr().err
    assert main([*base, "--route", "claims", "--error-rate", "2"]) == 2
    assert "--error-rate: 2 must be between 0 and 1" in capsys.readouterr().err
    assert main([*base, "--route", "claims"]) == 2
    assert "no fault given" in capsys.readouterr().err
    assert main([*base, "--route", "claims", "--latency-ms", "5", "--for", "soon"]) == 2
    assert "--for: 'soon' is not a duration" in capsys.readouterr().err
    assert main(["chaos", "stop", "--home", str(tmp_path / "home")]) == 2
    assert "--route R, or --all" in capsys.readouterr().err
    assert main(["chaos", "list", "--home", str(tmp_path / "home"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main([*base, "--route", "claims", "--error-rate", "0.5", "--for", "1h"]) == 0
    assert "on claims: error 50% (status 503) for 1h" in capsys.readouterr().out
    assert main(["chaos", "list", "--home", str(tmp_path / "home")]) == 0
    assert "claims  error 50% (503)" in capsys.readouterr().out

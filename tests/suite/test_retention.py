from __future__ import annotations

import tomllib
from datetime import datetime, timedelta
from pathlib import Path

from suite.config import GatewayConfig, parse_gateway_config
from suite.retention import run_retention
from suite.rollup import rollup_dirty_minutes
from suite.store import Store

NOW = datetime(2026, 3, 10, 12, 0, 0)


def config(worker: str = "") -> GatewayConfig:
    return parse_gateway_config(tomllib.loads(worker), "gw.toml")


def add_requests(store: Store, rows: list[tuple[str, datetime]]) -> None:
    """Requests (and a captured body each) as ingest writes them: rows plus dirty minutes."""
    with store.write() as con:
        con.executemany(
            "INSERT INTO requests (id, ts, route, status, duration_ms) "
            "VALUES (?, ?, 'claims-api', 200, 12.0)",
            [[i, ts] for i, ts in rows],
        )
        con.executemany(
            "INSERT INTO request_bodies (request_id, ts, route, policy) "
            "VALUES (?, ?, 'claims-api', 'redacted')",
            [[i, ts] for i, ts in rows],
        )
        con.executemany(
            "INSERT INTO rollup_dirty_minutes VALUES (date_trunc('minute', ?::TIMESTAMP)) "
            "ON CONFLICT DO NOTHING",
            [[ts] for _, ts in rows],
        )


def ids(store: Store, table: str, column: str = "id") -> list[str]:
    return [r[column] for r in store.query(f"SELECT {column} FROM {table} ORDER BY 1").to_dicts()]


def test_deletes_only_old_rolled_up_rows(tmp_path: Path) -> None:
    store = Store(tmp_path)
    old = NOW - timedelta(days=40)
    add_requests(
        store,
        [
            ("old-rolled-1", old),
            ("old-rolled-2", old + timedelta(seconds=30)),
            ("old-late", old + timedelta(minutes=5)),
            ("recent", NOW - timedelta(days=2)),
            ("edge-young", NOW - timedelta(days=30) + timedelta(minutes=1)),
        ],
    )
    rollup_dirty_minutes(store)
    # A late row arrives in an old minute: that minute is dirty again until re-rolled.
    add_requests(store, [("old-late-2", old + timedelta(minutes=5, seconds=10))])
    # An old minute with rows but no rollup at all (e.g. rolled up before a rebuild).
    with store.write() as con:
        con.execute(
            "INSERT INTO requests (id, ts, route) VALUES ('old-no-rollup', ?, 'claims-api')",
            [old + timedelta(minutes=9)],
        )
        # Rollups past rollup_retention_days go too.
        con.execute(
            "INSERT INTO metrics_1m (minute, service, dimension, key, requests, errors_4xx, "
            "errors_5xx, gateway_errors, error_ratio, computed_at) "
            "VALUES (?, 'claims-api', 'service', '', 1, 0, 0, 0, 0, ?)",
            [NOW - timedelta(days=401), NOW],
        )
    metrics_before = store.query("SELECT count(*) FROM metrics_1m").item()

    result = run_retention(store, config(), NOW)
    assert result.requests_deleted == 2 and result.bodies_deleted == 2
    assert result.metrics_deleted == 1
    assert result.requests_kept_not_rolled_up == 3
    assert ids(store, "requests") == [
        "edge-young",
        "old-late",
        "old-late-2",
        "old-no-rollup",
        "recent",
    ]
    assert ids(store, "request_bodies", "request_id") == [
        "edge-young",
        "old-late",
        "old-late-2",
        "recent",
    ]
    # The old minute's rollup stays: only raw rows expire at retention_days.
    assert store.query("SELECT count(*) FROM metrics_1m").item() == metrics_before - 1
    assert (
        store.query(
            "SELECT requests FROM metrics_1m WHERE minute = ? AND dimension = 'service'",
            [old.replace(second=0)],
        ).item()
        == 2
    )

    # Once the late minute is rolled up again, the next run takes it.
    rollup_dirty_minutes(store)
    again = run_retention(store, config(), NOW)
    assert again.requests_deleted == 2 and again.bodies_deleted == 2
    assert ids(store, "requests") == ["edge-young", "old-no-rollup", "recent"]
    assert run_retention(store, config(), NOW).requests_deleted == 0


def test_retention_days_come_from_the_worker_table(tmp_path: Path) -> None:
    store = Store(tmp_path)
    add_requests(store, [("a", NOW - timedelta(days=3)), ("b", NOW - timedelta(hours=1))])
    rollup_dirty_minutes(store)
    cfg = config("[worker]\nretention_days = 2\nrollup_retention_days = 2\n")
    assert (cfg.worker.retention_days, cfg.worker.rollup_retention_days) == (2, 2)
    result = run_retention(store, cfg, NOW)
    assert result.requests_deleted == 1 and result.metrics_deleted == 1
    assert ids(store, "requests") == ["b"]
    assert store.query("SELECT count(*) FROM metrics_1m WHERE dimension = 'service'").item() == 1


def test_empty_store(tmp_path: Path) -> None:
    result = run_retention(Store(tmp_path), config(), NOW)
    assert (result.requests_deleted, result.metrics_deleted, result.bodies_deleted) == (0, 0, 0)
    assert "deleted 0 requests" in str(result)

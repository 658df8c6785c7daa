from __future__ import annotations

from pathlib import Path

import pytest

from suite.ingest import ingest_spool
from suite.rollup import rollup_dirty_minutes
from suite.schema import REQUEST_COLUMN_NAMES, REQUEST_COLUMNS
from suite.spool import spool_segment_name, write_segment_atomically
from suite.store import Store

T0 = 1_790_000_080.0  # 40 s into a minute: +25 s is the next minute
IDX = {n: i for i, n in enumerate(REQUEST_COLUMN_NAMES)}


def row(
    i: int, ts: float, route: str | None, status: int | None, ms: float, **extra: object
) -> tuple[object, ...]:
    v: list[object] = [None] * len(REQUEST_COLUMNS)
    v[IDX["id"]], v[IDX["ts"]], v[IDX["route"]], v[IDX["status"]], v[IDX["duration_ms"]] = (
        f"r-{i}",
        ts,
        route,
        status,
        ms,
    )
    v[IDX["response_bytes"]] = 100
    for k, x in extra.items():
        v[IDX[k]] = x
    return tuple(v)


def load(store: Store, rows: list[tuple[object, ...]], seq: int) -> None:
    write_segment_atomically(store.home.spool_dir, spool_segment_name("gt", seq), rows)
    ingest_spool(store)


def metrics(store: Store) -> list[dict[str, object]]:
    return store.query(
        "SELECT minute, service, dimension, key, requests, errors_4xx, errors_5xx, error_ratio, "
        "latency_p50_ms, prompt_tokens, cost_usd FROM metrics_1m ORDER BY minute, service, dimension, key"
    ).to_dicts()


def test_rollup_per_minute_service_model_and_late_rows(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.home.spool_dir.mkdir(parents=True)
    first = [
        row(1, T0 + 1, "claims", 200, 10.0),
        row(2, T0 + 2, "claims", 500, 30.0),
        row(3, T0 + 3, "claims", 404, 20.0),
        row(4, T0 + 25, "claims", 200, 40.0),  # next minute
        row(5, T0 + 4, None, 404, 1.0, error="no_route"),
        row(
            6,
            T0 + 5,
            "openai",
            200,
            100.0,
            llm_model="gpt-4o-mini",
            prompt_tokens=10,
            cost_usd=0.001,
        ),
        row(
            7,
            T0 + 6,
            "openai",
            200,
            300.0,
            llm_model="gpt-4o-mini",
            prompt_tokens=30,
            cost_usd=0.003,
        ),
    ]
    load(store, first, 1)
    r = rollup_dirty_minutes(store)
    assert r.minutes == 2
    m = metrics(store)
    claims = [x for x in m if x["service"] == "claims"]
    assert [(x["requests"], x["errors_4xx"], x["errors_5xx"]) for x in claims] == [
        (3, 1, 1),
        (1, 0, 0),
    ]
    assert claims[0]["error_ratio"] == pytest.approx(1 / 3)
    assert claims[0]["latency_p50_ms"] == 20.0
    model = next(x for x in m if x["dimension"] == "model")
    assert (model["service"], model["key"], model["requests"], model["prompt_tokens"]) == (
        "openai",
        "gpt-4o-mini",
        2,
        40,
    )
    assert model["cost_usd"] == pytest.approx(0.004)
    assert any(x["service"] == "(unrouted)" and x["errors_4xx"] == 1 for x in m)
    # nothing new: nothing recomputed
    assert rollup_dirty_minutes(store).minutes == 0
    # a late row for the first minute recomputes that minute only
    load(store, [row(8, T0 + 7, "claims", 503, 50.0)], 2)
    assert rollup_dirty_minutes(store).minutes == 1
    claims = [x for x in metrics(store) if x["service"] == "claims"]
    assert [(x["requests"], x["errors_5xx"]) for x in claims] == [(4, 2), (1, 0)]


def test_migration_marks_existing_rows_dirty(tmp_path: Path) -> None:
    store = Store(tmp_path)
    with store.write() as con:
        con.execute(
            "INSERT INTO requests (id, ts, route, status, duration_ms) VALUES ('a', now()::TIMESTAMP, 'x', 200, 1)"
        )
        con.execute("DELETE FROM metrics_1m")
        con.execute(
            "INSERT INTO rollup_dirty_minutes SELECT DISTINCT date_trunc('minute', ts) FROM requests ON CONFLICT DO NOTHING"
        )
    assert rollup_dirty_minutes(store).minutes == 1
    assert metrics(store)[0]["requests"] == 1

from __future__ import annotations

import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from suite.ingest import ingest_spool
from suite.spool import spool_segment_name, write_segment_atomically
from suite.store import Store
from tests.suite.test_spool import make_row


def write_segments(spool: Path, n_segments: int, rows_each: int, gateway: str = "gtest") -> int:
    spool.mkdir(parents=True, exist_ok=True)
    i = 0
    for s in range(n_segments):
        rows = [make_row(i + k, gateway) for k in range(rows_each)]
        write_segment_atomically(spool, spool_segment_name(gateway, s + 1), rows)
        i += rows_each
    return i


def test_ingest_loads_everything_once_and_empties_the_spool(tmp_path: Path) -> None:
    store = Store(tmp_path)
    n = write_segments(store.home.spool_dir, 5, 100)
    r = ingest_spool(store)
    assert (r.rows, r.segments, r.quarantined) == (n, 5, [])
    assert list(store.home.spool_dir.glob("*.parquet")) == []
    again = ingest_spool(store)
    assert again.rows == 0
    df = store.query("SELECT count(*) AS n, count(DISTINCT id) AS d FROM requests")
    assert df.row(0) == (n, n)
    assert store.query("SELECT count(*) AS n FROM ingested_segments")["n"][0] == 5


def test_segment_left_behind_after_commit_is_skipped_not_duplicated(tmp_path: Path) -> None:
    store = Store(tmp_path)
    write_segments(store.home.spool_dir, 1, 50)
    seg = next(store.home.spool_dir.glob("*.parquet"))
    keep = seg.read_bytes()
    ingest_spool(store)
    # as if the worker died between COMMIT and deleting the file
    seg.write_bytes(keep)
    r = ingest_spool(store)
    assert r.rows == 0 and r.skipped_already_loaded == 1
    assert not seg.exists()
    assert store.query("SELECT count(*) AS n FROM requests")["n"][0] == 50


def test_bad_files_are_quarantined_and_good_ones_load(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store(tmp_path)
    spool = store.home.spool_dir
    write_segments(spool, 2, 10)
    (spool / spool_segment_name("gbad", 1)).write_bytes(b"PAR1 this is not parquet")
    (spool / "notes.txt").write_text("hello")
    pq.write_table(pa.table({"x": [1, 2]}), spool / spool_segment_name("gforeign", 1))
    with caplog.at_level(logging.WARNING, logger="aiops.spool"):
        r = ingest_spool(store)
    assert r.rows == 20
    assert len(r.quarantined) == 3
    assert sorted(p.name for p in (spool / "quarantine").iterdir()) == sorted(r.quarantined)
    assert "not a readable Parquet file" in caplog.text
    assert "missing required columns" in caplog.text
    assert "notes.txt" in caplog.text


def test_segments_with_fewer_or_extra_columns_load_by_name(tmp_path: Path) -> None:
    store = Store(tmp_path)
    spool = store.home.spool_dir
    spool.mkdir(parents=True)
    table = pa.table({
        "id": ["old-1"], "ts": pa.array([1_000_000], pa.timestamp("us")), "status": pa.array([201], pa.int16()),
        "future_column": ["ignored"],
    })  # fmt: skip
    pq.write_table(table, spool / spool_segment_name("gold", 1))
    r = ingest_spool(store)
    assert r.rows == 1
    row = store.query("SELECT id, status, route FROM requests").row(0)
    assert row == ("old-1", 201, None)

from __future__ import annotations

import logging
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from suite.schema import REQUEST_COLUMN_NAMES, REQUEST_COLUMNS
from suite.spool import (
    SEGMENT_NAME_RE,
    SpoolWriter,
    list_foreign_files,
    list_ready_segments,
    segment_problem,
    spool_segment_name,
    write_segment_atomically,
)


def make_row(i: int, gateway: str = "gtest") -> tuple[object, ...]:
    values: list[object] = [None] * len(REQUEST_COLUMNS)
    values[0] = f"{gateway}-{i}"
    values[1] = 1_790_000_000.0 + i
    values[REQUEST_COLUMN_NAMES.index("route")] = "claims-api"
    values[REQUEST_COLUMN_NAMES.index("status")] = 200
    values[REQUEST_COLUMN_NAMES.index("kind")] = "http"
    return tuple(values)


def test_segment_names_sort_by_time_and_match_the_pattern() -> None:
    a = spool_segment_name("g1", 1, now=1_790_000_000.25)
    b = spool_segment_name("g1", 2, now=1_790_000_001.0)
    assert SEGMENT_NAME_RE.match(a) and SEGMENT_NAME_RE.match(b)
    assert a < b


def test_atomic_write_leaves_no_temporary_and_round_trips(tmp_path: Path) -> None:
    p = write_segment_atomically(
        tmp_path, spool_segment_name("g1", 1), [make_row(i) for i in range(10)]
    )
    assert [x.name for x in tmp_path.iterdir()] == [p.name]
    table = pq.read_table(p)
    assert table.num_rows == 10
    assert table.column("id").to_pylist()[3] == "gtest-3"
    assert segment_problem(p) == (10, list(REQUEST_COLUMN_NAMES))


def test_temporary_files_are_not_ready(tmp_path: Path) -> None:
    (tmp_path / ".x.parquet.tmp").write_bytes(b"partial")
    write_segment_atomically(tmp_path, spool_segment_name("g1", 1), [make_row(1)])
    assert len(list_ready_segments(tmp_path)) == 1
    # a fresh temporary file may still be being written: not foreign yet
    assert list_foreign_files(tmp_path) == []
    assert list_foreign_files(tmp_path, min_age_seconds=-1) == [tmp_path / ".x.parquet.tmp"]


def test_writer_flushes_by_row_count_and_on_close(tmp_path: Path) -> None:
    w = SpoolWriter(tmp_path, "gw", flush_interval=60, flush_rows=100)
    w.start()
    for i in range(250):
        w.append(make_row(i))
    deadline = time.monotonic() + 10
    while w.counters.written < 200 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert w.counters.written >= 100  # flushed early, long before the 60 s interval
    w.close()
    total = sum(pq.read_metadata(p).num_rows for p in list_ready_segments(tmp_path))
    assert total == 250
    assert w.counters.received == w.counters.written == 250
    assert w.counters.dropped == 0


def test_writer_flushes_on_interval(tmp_path: Path) -> None:
    w = SpoolWriter(tmp_path, "gw", flush_interval=0.05, flush_rows=10_000)
    w.start()
    w.append(make_row(1))
    deadline = time.monotonic() + 5
    while not list_ready_segments(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.01)
    w.close()
    assert len(list_ready_segments(tmp_path)) == 1


def test_rows_appended_during_flush_are_never_lost(tmp_path: Path) -> None:
    w = SpoolWriter(tmp_path, "gw", flush_interval=0.001, flush_rows=50)
    w.start()
    for i in range(20_000):
        w.append(make_row(i))
    w.close()
    ids = set()
    for p in list_ready_segments(tmp_path):
        ids.update(pq.read_table(p, columns=["id"]).column("id").to_pylist())
    assert len(ids) == 20_000


def test_storage_failure_keeps_rows_then_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fail = {"on": True}

    def flaky(spool: Path, name: str, rows: list[tuple[object, ...]]) -> Path:
        if fail["on"]:
            raise OSError("disk full")
        return write_segment_atomically(spool, name, rows)

    w = SpoolWriter(tmp_path, "gw", flush_interval=60, flush_rows=10**9, write_segment=flaky)
    for i in range(30):
        w.append(make_row(i))
    with caplog.at_level(logging.ERROR, logger="aiops.spool"):
        assert w.flush() == 0
    assert "cannot write segment (OSError: disk full)" in caplog.text
    assert w.backlog_rows == 30 and w.counters.write_failures == 1
    fail["on"] = False
    assert w.flush() == 30
    assert w.backlog_rows == 0 and w.counters.dropped == 0


def test_backlog_bound_drops_oldest_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(spool: Path, name: str, rows: list[tuple[object, ...]]) -> Path:
        raise OSError("read-only file system")

    w = SpoolWriter(
        tmp_path, "gw", max_backlog_rows=1000, write_segment=broken, status_path=tmp_path / "s.json"
    )
    with caplog.at_level(logging.ERROR, logger="aiops.spool"):
        for batch in range(3):
            for i in range(600):
                w.append(make_row(batch * 600 + i))
            w.flush()
    assert w.counters.dropped == 800
    assert w.backlog_rows == 1000
    assert "DROPPED" in caplog.text
    # the newest rows are the ones kept
    kept = [r[0] for b in w._backlog for r in b]
    assert kept[-1] == "gtest-1799" and kept[0] == "gtest-800"
    w.write_status()
    assert '"dropped": 800' in (tmp_path / "s.json").read_text()

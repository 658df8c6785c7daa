from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import polars as pl
import pytest

from suite.errors import StoreError
from suite.migrations import MIGRATIONS
from suite.store import Store


def test_migrations_are_recorded_once(tmp_path: Path) -> None:
    s = Store(tmp_path)
    assert s.ensure_schema() == [m.name for m in MIGRATIONS]
    assert Store(tmp_path).ensure_schema() == []
    assert s.applied_migrations() == [m.name for m in MIGRATIONS]


def test_query_returns_polars_and_arrow(tmp_path: Path) -> None:
    s = Store(tmp_path)
    with s.write() as con:
        con.execute(
            "INSERT INTO requests (id, ts, route, status) VALUES ('a', now()::TIMESTAMP, 'r', 200)"
        )
    df = s.query("SELECT id, status FROM requests WHERE route = ?", ["r"])
    assert isinstance(df, pl.DataFrame)
    assert df.to_dicts() == [{"id": "a", "status": 200}]
    assert s.query_arrow("SELECT count(*) AS n FROM requests").column("n").to_pylist() == [1]


def test_reads_are_read_only_with_a_readable_error(tmp_path: Path) -> None:
    s = Store(tmp_path)
    with pytest.raises(StoreError, match="read-only"):
        s.query("DELETE FROM requests")
    with pytest.raises(StoreError) as e:
        s.query("SELEC 1")
    assert "syntax error" in str(e.value).lower() and "SELEC 1" in str(e.value)


def test_readers_share_the_lock_and_writers_wait(tmp_path: Path) -> None:
    s = Store(tmp_path)
    s.ensure_schema()
    events: list[str] = []
    inside = threading.Event()

    def long_read() -> None:
        with s.read() as con:
            inside.set()
            con.execute("SELECT count(*) FROM requests").fetchall()
            time.sleep(0.5)
            events.append("read-done")

    t = threading.Thread(target=long_read)
    t.start()
    inside.wait(5)
    # another reader gets in while the first holds its shared lock
    t0 = time.monotonic()
    assert s.query("SELECT 1 AS x")["x"][0] == 1
    assert time.monotonic() - t0 < 0.45
    with s.write() as con:  # waits for the reader to finish
        events.append("write")
        con.execute("INSERT INTO requests (id) VALUES ('w')")
    t.join()
    assert events == ["read-done", "write"]


def test_lock_timeout_is_a_clear_error(tmp_path: Path) -> None:
    s = Store(tmp_path)
    s.ensure_schema()
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from suite.store import Store\n"
         f"with Store({str(tmp_path)!r}).write():\n    print('held', flush=True); time.sleep(5)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        impatient = Store(tmp_path, lock_timeout=0.3)
        impatient._schema_ready = True
        with pytest.raises(StoreError, match="store busy: waited 0 s for the shared lock"):
            impatient.query("SELECT 1")
    finally:
        holder.kill()
        holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()


def test_a_new_process_reader_does_not_queue_behind_a_long_read(tmp_path: Path) -> None:
    Store(tmp_path).ensure_schema()
    release = threading.Event()
    holding = threading.Event()

    def long_read() -> None:
        with Store(tmp_path).read():
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=long_read)
    holder.start()
    holding.wait(10)
    fresh = Store(tmp_path)  # its schema check has not run yet, as in a new process
    result: list[int] = []
    reader = threading.Thread(
        target=lambda: result.append(fresh.query("SELECT 41 + 1 AS x")["x"][0])
    )
    reader.start()
    reader.join(10)
    finished_while_held = not reader.is_alive()
    release.set()
    holder.join()
    reader.join()
    assert finished_while_held and result == [42]

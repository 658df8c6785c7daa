"""The ingest worker killed with SIGKILL in the middle of its work, again and again, still
loads every spool row exactly once; files that are not segments are quarantined."""

from __future__ import annotations

import os
import random
import signal
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest

from tests.integration.helpers import (
    query_json,
    run_worker_once,
    stop_and_close,
    write_segments,
)
from tests.procs import AIOPS, Proc

pytestmark = pytest.mark.integration

SEGMENTS = 300
ROWS_PER_SEGMENT = 2000

# `aiops worker --once` with smaller ingest transactions, so that the spool shrinks batch
# by batch and a kill can land between two committed batches. Same CLI code otherwise.
SMALL_BATCH_WORKER = """
import sys
import suite.ingest
suite.ingest.MAX_ROWS_PER_BATCH = 40_000
from suite.cli import main
sys.exit(main(["worker", "--once", "--home", sys.argv[1]]))
"""


def spool_segments(home: Path) -> int:
    return sum(
        1
        for name in os.listdir(home / "spool")
        if name.endswith(".parquet") and not name.startswith(".")
    )


def _past(deadline: float) -> bool:
    return time.monotonic() >= deadline


def _shrunk_below(home: Path, before: int) -> bool:
    """Some segments of the `before` are gone (loaded), and some are left."""
    return 0 < spool_segments(home) < before


def start_worker(home: Path, small_batches: bool) -> Proc:
    if small_batches:
        return Proc([sys.executable, "-c", SMALL_BATCH_WORKER, str(home)])
    return Proc([AIOPS, "worker", "--once", "--home", str(home)])


def kill_when(proc: Proc, should_kill: Callable[[], bool], timeout: float = 60.0) -> bool:
    """SIGKILL proc as soon as should_kill() holds; False if it exited first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            return False
        if should_kill():
            proc.popen.send_signal(signal.SIGKILL)
            proc.popen.wait(10)
            return True
        time.sleep(0.005)
    raise AssertionError(f"worker neither finished nor reached the kill point:\n{proc.output}")


def test_sigkill_during_ingest_loses_and_duplicates_nothing(home: Path, procs: list[Proc]):
    total = write_segments(home / "spool", SEGMENTS, ROWS_PER_SEGMENT, tag="crash")
    rng = random.Random(20261125)
    partial_kills = 0  # killed with some, but not all, segments loaded
    plan = [
        # Real CLI (one big transaction): killed after a random delay, most likely before
        # its commit.
        ("random", False),
        # Small batches: killed as soon as a batch is committed and its files are being
        # removed, i.e. with some segments loaded and the rest still to do.
        ("shrinking", True),
        ("random", True),
        ("shrinking", True),
        # Real CLI again: killed while it removes the files it has committed, if the
        # poll catches that moment (else it simply finishes).
        ("shrinking", False),
    ]
    for how, small in plan:
        before = spool_segments(home)
        if before == 0:
            break
        worker = start_worker(home, small)
        procs.append(worker)
        if how == "random":
            deadline = time.monotonic() + rng.uniform(0.3, 2.0)
            killed = kill_when(worker, partial(_past, deadline))
        else:
            killed = kill_when(worker, partial(_shrunk_below, home, before))
        stop_and_close(worker)
        if killed:
            assert worker.popen.returncode == -signal.SIGKILL
            if 0 < spool_segments(home) < before:
                partial_kills += 1
        else:
            assert worker.popen.returncode == 0, worker.output
    assert partial_kills >= 2, "the worker was never killed half-way through the spool"

    out = run_worker_once(home)
    assert "ingest:" in out, out
    assert spool_segments(home) == 0
    assert not (home / "spool" / "quarantine").exists(), os.listdir(home / "spool" / "quarantine")
    result = query_json(
        home,
        "SELECT count(*) AS n, count(DISTINCT id) AS d, "
        "(SELECT count(*) FROM ingested_segments) AS segs, "
        "(SELECT sum(rows)::BIGINT FROM ingested_segments) AS ledger_rows FROM requests",
    )
    assert result == [{"n": total, "d": total, "segs": SEGMENTS, "ledger_rows": total}]


def test_corrupt_and_foreign_files_are_quarantined(home: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    spool = home / "spool"
    total = write_segments(spool, 3, 100, tag="good")
    corrupt = spool / "20260101T000000000000Z-gbad-00000001.parquet"
    corrupt.write_bytes(random.Random(7).randbytes(4096))
    foreign_parquet = spool / "20260101T000000000001Z-gother-00000001.parquet"
    pq.write_table(pa.table({"claim": [1, 2, 3]}), foreign_parquet)
    notes = spool / "notes.txt"
    notes.write_text("someone's notes in the spool\n")

    out = run_worker_once(home)  # exit code 0 is asserted inside

    quarantine = spool / "quarantine"
    assert sorted(os.listdir(quarantine)) == sorted(
        [corrupt.name, foreign_parquet.name, notes.name]
    )
    assert sorted(os.listdir(spool)) == ["quarantine"]
    for name in (corrupt.name, foreign_parquet.name, notes.name):
        assert any("quarantined" in line and name in line for line in out.splitlines()), out
    log = (home / "logs" / "worker.log").read_text()
    assert "quarantined notes.txt" in log and f"quarantined {corrupt.name}" in log
    assert f"ingest: {total} rows from 3 segments" in out
    assert "3 quarantined" in out
    result = query_json(home, "SELECT count(*) AS n, count(DISTINCT id) AS d FROM requests")
    assert result == [{"n": total, "d": total}]

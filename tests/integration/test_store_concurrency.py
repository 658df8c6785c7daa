"""Readers and the ingest worker in separate processes share the DuckDB file through the
store's locks: nobody fails with a DuckDB lock conflict, and every row arrives once."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from tests.integration.helpers import query_json, stop_and_close, write_segments
from tests.procs import AIOPS, Proc, run_aiops

pytestmark = pytest.mark.integration

SEGMENTS = 40
ROWS_PER_SEGMENT = 5000

# Holds one read unit of work open for ~3 s (a long dashboard query, say).
LONG_READER = """
import sys, time
from suite.store import Store
store = Store(sys.argv[1])
with store.read() as con:
    n = con.execute("SELECT count(*) FROM requests").fetchone()[0]
    print(f"LONG-READ-START {n}", flush=True)
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        con.execute("SELECT count(*), sum(response_bytes) FROM requests").fetchone()
        time.sleep(0.05)
    n = con.execute("SELECT count(*) FROM requests").fetchone()[0]
    print(f"LONG-READ-END {n}", flush=True)
"""

# Queries over and over (a refreshing dashboard) until it has seen every row.
POLLING_READER = """
import sys, time
from suite.store import Store
store = Store(sys.argv[1])
total = int(sys.argv[2])
deadline = time.monotonic() + 90
n = -1
while n != total and time.monotonic() < deadline:
    n = store.query("SELECT count(*) AS n FROM requests")["n"][0]
    print(f"COUNT {n}", flush=True)
    time.sleep(0.05)
print("POLL-DONE", flush=True)
"""

LOCK_ERROR = re.compile(r"\block\b|busy|Traceback|IO Error|Conflicting", re.IGNORECASE)


def test_long_read_worker_and_polling_reader(home: Path, procs: list[Proc]):
    total = write_segments(home / "spool", SEGMENTS, ROWS_PER_SEGMENT, tag="conc")

    long_reader = Proc([sys.executable, "-c", LONG_READER, str(home)])
    procs.append(long_reader)
    long_reader.wait_for(r"LONG-READ-START 0")

    poller = Proc([sys.executable, "-c", POLLING_READER, str(home), str(total)])
    procs.append(poller)
    worker = Proc([AIOPS, "worker", "--once", "--home", str(home)])
    procs.append(worker)
    # A one-off CLI query at the same time, too.
    cli = run_aiops("query", "--home", str(home), "SELECT count(*) AS n FROM requests", "--format", "json")  # fmt: skip

    for p in (long_reader, poller, worker):
        p.popen.wait(120)
    codes = {
        "long reader": stop_and_close(long_reader),
        "polling reader": stop_and_close(poller),
        "worker": stop_and_close(worker),
    }
    outputs = {
        "long reader": long_reader.output,
        "polling reader": poller.output,
        "worker": worker.output,
        "aiops query": cli.stdout + cli.stderr,
    }
    assert codes == {"long reader": 0, "polling reader": 0, "worker": 0}, outputs
    assert cli.returncode == 0, outputs
    for name, out in outputs.items():
        assert not LOCK_ERROR.search(out), f"{name} printed a lock error:\n{out}"

    # The long read saw one consistent snapshot: the worker could not commit under it.
    assert "LONG-READ-END 0" in long_reader.output, long_reader.output
    # The polling reader only ever saw whole segments, never fewer rows than before.
    counts = [int(line.split()[1]) for line in poller.lines if line.startswith("COUNT ")]
    assert counts and counts[-1] == total, poller.output
    assert counts == sorted(counts), counts
    assert all(c % ROWS_PER_SEGMENT == 0 for c in counts), counts
    assert f"ingest: {total} rows from {SEGMENTS} segments" in worker.output, worker.output

    final = query_json(
        home,
        "SELECT count(*) AS n, count(DISTINCT id) AS d, "
        "(SELECT count(*) FROM ingested_segments) AS segs FROM requests",
    )
    assert final == [{"n": total, "d": total, "segs": SEGMENTS}]
    assert list((home / "spool").glob("*.parquet")) == []

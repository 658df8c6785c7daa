"""Small helpers shared by the integration tests (real processes, loopback only)."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from suite.schema import REQUEST_COLUMN_NAMES, REQUEST_COLUMNS
from suite.spool import spool_segment_name, write_segment_atomically
from tests.procs import Proc, run_aiops

N_COLUMNS = len(REQUEST_COLUMN_NAMES)
VARCHAR_COLUMNS = tuple(c.name for c in REQUEST_COLUMNS if c.sql == "VARCHAR")


def query_json(home: Path, sql: str) -> list[dict[str, Any]]:
    """Run `aiops query --format json` as a real process and parse its output."""
    r = run_aiops("query", "--home", str(home), sql, "--format", "json")
    assert r.returncode == 0, f"aiops query failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return json.loads(r.stdout)


def run_worker_once(home: Path, *extra: str) -> str:
    r = run_aiops("worker", "--once", "--home", str(home), *extra, timeout=180)
    out = r.stdout + r.stderr
    assert r.returncode == 0, f"aiops worker --once exited {r.returncode}:\n{out}"
    return out


def gateway_received(home: Path) -> int:
    """Records received so far by every gateway that wrote a status file under <home>/run."""
    total = 0
    for f in (home / "run").glob("gateway-*.json"):
        try:
            total += int(json.loads(f.read_text())["received"])
        except (OSError, ValueError, KeyError):
            pass
    return total


def wait_gateway_received(home: Path, n: int, timeout: float = 30.0) -> int:
    """Wait until the gateway reports having recorded `n` flows (its status file is
    rewritten every flush interval); returns the last value seen."""
    deadline = time.monotonic() + timeout
    seen = gateway_received(home)
    while seen < n and time.monotonic() < deadline:
        time.sleep(0.1)
        seen = gateway_received(home)
    return seen


def files_containing(root: Path, needles: Iterable[bytes]) -> list[tuple[str, str]]:
    """(file, needle) for every file under root whose raw bytes contain a needle."""
    needles = list(needles)
    hits = []
    for f in sorted(root.rglob("*")):
        if not f.is_file():
            continue
        data = f.read_bytes()
        for n in needles:
            if n in data:
                hits.append((str(f), n.decode(errors="replace")))
    return hits


def parquet_string_values(path: Path) -> list[str]:
    """Every non-null string value in a Parquet file (decoded, so compression cannot hide
    a value from a search)."""
    table = pq.read_table(path)
    out: list[str] = []
    for name in table.column_names:
        col = table.column(name)
        if str(col.type) in ("string", "large_string"):
            out.extend(v for v in col.to_pylist() if v is not None)
    return out


def synthetic_row(row_id: str, ts: float, route: str = "claims") -> tuple[object, ...]:
    row: list[object] = [None] * N_COLUMNS
    values = {
        "id": row_id,
        "ts": ts,
        "route": route,
        "method": "GET",
        "scheme": "http",
        "host": "127.0.0.1:8080",
        "path": "/claims/1",
        "status": 200,
        "duration_ms": 1.5,
        "request_bytes": 0,
        "response_bytes": 123,
        "upstream": "http://127.0.0.1:9001",
        "kind": "http",
        "streamed": False,
        "gateway_id": "gtest",
    }
    for name, value in values.items():
        row[REQUEST_COLUMN_NAMES.index(name)] = value
    return tuple(row)


def write_segments(spool_dir: Path, segments: int, rows_per_segment: int, tag: str = "t") -> int:
    """Write `segments` spool segments with unique row ids; returns the rows written."""
    spool_dir.mkdir(parents=True, exist_ok=True)
    # Recent: the worker's retention job deletes raw rows older than retention_days.
    base_ts = float(int(time.time()) - 3600)
    for s in range(segments):
        rows = [
            synthetic_row(f"{tag}-{s}-{i}", base_ts + s + i / 10_000)
            for i in range(rows_per_segment)
        ]
        name = spool_segment_name(f"g{tag}", s + 1, now=base_ts + s)
        write_segment_atomically(spool_dir, name, rows)
    return segments * rows_per_segment


def stop_and_close(proc: Proc, sig: int = signal.SIGINT, timeout: float = 20.0) -> int:
    """Stop a process (Proc.stop also closes its output pipe); its exit code."""
    return proc.stop(sig, timeout)


def secrets_in_spool(home: Path, needles: Iterable[str]) -> list[tuple[str, str]]:
    """(segment, needle) for every spool segment (requests and bodies) holding a needle in
    a decoded string value: compression cannot hide one from this scan."""
    needles = list(needles)
    hits = []
    for seg in sorted((home / "spool").rglob("*.parquet")):
        values = parquet_string_values(seg)
        hits += [(seg.name, n) for n in needles if any(n in v for v in values)]
    return hits


def secrets_in_store(home: Path, needles: Iterable[str]) -> list[tuple[str, str]]:
    """(table, needle) for every table of the DuckDB store holding a needle in any text,
    JSON or blob value, read decoded through the store."""
    from suite.store import Store

    store = Store(home)
    columns = store.query(
        "SELECT table_name AS t, list(column_name) AS cols FROM information_schema.columns "
        "WHERE data_type IN ('VARCHAR', 'BLOB', 'JSON') AND table_schema = 'main' GROUP BY 1"
    ).rows()
    assert columns, "no text columns found: the scan would prove nothing"
    hits = []
    for table, cols in columns:
        text = "concat_ws('|', " + ", ".join(f'"{c}"::VARCHAR' for c in cols) + ")"
        for n in needles:
            found = store.query(
                f'SELECT count(*) FROM "{table}" WHERE position(? IN {text}) > 0', [n]
            )
            if found.item():
                hits.append((table, n))
    return hits

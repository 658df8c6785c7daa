"""The ingest job: spool segments -> `requests`, exactly once.

A segment's rows and its name in `ingested_segments` commit in one transaction, so a
crash anywhere neither loses nor duplicates a row. Bad files are quarantined, never fatal.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import duckdb

from suite.change_spool import CHANGE_COLUMN_NAMES, CHANGES_SUBDIR
from suite.schema import BODY_COLUMN_NAMES, REQUEST_COLUMN_NAMES
from suite.spool import list_foreign_files, list_ready_segments, quarantine, segment_problem
from suite.store import Store

log = logging.getLogger("aiops.ingest")

# Rows per transaction: big enough to amortise the commit, small enough to keep the
# exclusive lock short (readers wait for it).
MAX_ROWS_PER_BATCH = 1_000_000
MAX_SEGMENTS_PER_BATCH = 2000


@dataclass
class IngestResult:
    segments: int = 0
    rows: int = 0
    skipped_already_loaded: int = 0
    quarantined: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


class SegmentKind(NamedTuple):
    """A kind of spool segment: where it lives under spool/, the table it loads into."""

    subdir: str  # "" for requests, "bodies" for request_bodies
    table: str
    columns: tuple[str, ...]
    required: tuple[str, ...]  # a file without these is not one of ours

    def ledger_name(self, path: Path) -> str:
        return f"{self.subdir}/{path.name}" if self.subdir else path.name


SEGMENT_KINDS = (
    SegmentKind("", "requests", REQUEST_COLUMN_NAMES, ("id", "ts")),
    SegmentKind("bodies", "request_bodies", BODY_COLUMN_NAMES, ("request_id", "ts")),
    # Changes recorded by gateways (reloads, chaos drills, the admin endpoint).
    SegmentKind(CHANGES_SUBDIR, "changes", CHANGE_COLUMN_NAMES, ("id", "ts", "service", "kind")),
)


def _plan_batches(
    ready: list[tuple[Path, int, list[str]]],
) -> list[list[tuple[Path, int, list[str]]]]:
    batches: list[list[tuple[Path, int, list[str]]]] = []
    current: list[tuple[Path, int, list[str]]] = []
    rows = 0
    for item in ready:
        if current and (
            rows + item[1] > MAX_ROWS_PER_BATCH or len(current) >= MAX_SEGMENTS_PER_BATCH
        ):
            batches.append(current)
            current, rows = [], 0
        current.append(item)
        rows += item[1]
    if current:
        batches.append(current)
    return batches


def _load_batch(
    con: duckdb.DuckDBPyConnection, kind: SegmentKind, batch: list[tuple[Path, int, list[str]]]
) -> tuple[int, int, list[Path]]:
    """Insert one batch in one transaction. Returns (rows, segments, already-loaded paths)."""
    names = [kind.ledger_name(p) for p, _, _ in batch]
    con.execute("BEGIN TRANSACTION")
    try:
        loaded = {
            r[0]
            for r in con.execute(
                "SELECT name FROM ingested_segments WHERE name IN (SELECT unnest(?::VARCHAR[]))",
                [names],
            ).fetchall()
        }
        todo = [(p, n, cols) for p, n, cols in batch if kind.ledger_name(p) not in loaded]
        rows = 0
        if todo:
            present = set().union(*(set(cols) for _, _, cols in todo))
            cols = [c for c in kind.columns if c in present]
            col_list = ", ".join(cols)
            con.execute(
                f"INSERT INTO {kind.table} ({col_list}) SELECT {col_list} "
                "FROM read_parquet(?::VARCHAR[], union_by_name = true)",
                [[str(p) for p, _, _ in todo]],
            )
            if kind.table == "requests":
                # The minutes these rows fall in must be rolled up (again): late rows too.
                con.execute(
                    "INSERT INTO rollup_dirty_minutes SELECT DISTINCT date_trunc('minute', ts) "
                    "FROM read_parquet(?::VARCHAR[], union_by_name = true) WHERE ts IS NOT NULL "
                    "ON CONFLICT DO NOTHING",
                    [[str(p) for p, _, _ in todo]],
                )
            con.execute(
                "INSERT INTO ingested_segments SELECT unnest(?::VARCHAR[]), unnest(?::BIGINT[]), "
                "now()::TIMESTAMP",
                [[kind.ledger_name(p) for p, _, _ in todo], [n for _, n, _ in todo]],
            )
            rows = sum(n for _, n, _ in todo)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return rows, len(todo), [p for p, _, _ in batch if kind.ledger_name(p) in loaded]


def _remove_loaded(paths: list[Path]) -> None:
    for p in paths:
        try:
            p.unlink()
        except FileNotFoundError:
            pass


def ingest_spool(
    store: Store, spool_dir: Path | None = None, *, quarantine_dir: Path | None = None
) -> IngestResult:
    """Load every ready segment in the spool (requests, bodies, changes); returns counts."""
    spool = spool_dir or store.home.spool_dir
    qdir = quarantine_dir or (spool / "quarantine")
    result = IngestResult()
    t0 = time.perf_counter()
    for kind in SEGMENT_KINDS:
        _ingest_kind(store, kind, spool / kind.subdir if kind.subdir else spool, qdir, result)
    result.seconds = time.perf_counter() - t0
    if result.rows or result.quarantined or result.skipped_already_loaded:
        log.info(
            "ingest: %d rows from %d segments in %.2f s (%d already loaded, %d quarantined)",
            result.rows,
            result.segments,
            result.seconds,
            result.skipped_already_loaded,
            len(result.quarantined),
        )
    return result


def _ingest_kind(
    store: Store, kind: SegmentKind, spool: Path, qdir: Path, result: IngestResult
) -> None:
    for foreign in list_foreign_files(spool):
        quarantine(foreign, qdir, "not a spool segment (unexpected file name)")
        result.quarantined.append(foreign.name)

    ready: list[tuple[Path, int, list[str]]] = []
    for path in list_ready_segments(spool):
        checked = segment_problem(path, kind.required)
        if isinstance(checked, str):
            quarantine(path, qdir, checked)
            result.quarantined.append(path.name)
            continue
        nrows, cols = checked
        ready.append((path, nrows, cols))

    for batch in _plan_batches(ready):
        try:
            with store.write() as con:
                rows, segs, already = _load_batch(con, kind, batch)
        except duckdb.Error as e:
            # One bad file fails the whole batch: load one at a time to find it.
            log.warning(
                "ingest: batch of %d segments failed (%s); retrying one by one", len(batch), e
            )
            rows, segs, already = 0, 0, []
            for item in batch:
                try:
                    with store.write() as con:
                        r, s, a = _load_batch(con, kind, [item])
                except duckdb.Error as e1:
                    quarantine(item[0], qdir, f"DuckDB could not load it: {e1}")
                    result.quarantined.append(item[0].name)
                    continue
                rows, segs, already = rows + r, segs + s, already + a
                _remove_loaded([item[0]])
        else:
            # Only after the commit: a crash before this line leaves files the ledger
            # already knows, which the next run skips and removes.
            _remove_loaded([p for p, _, _ in batch])
        result.rows += rows
        result.segments += segs
        result.skipped_already_loaded += len(already)

"""The spool: Parquet segment files that gateways write and the ingest job loads.

Writers never block the proxy: hooks append to a list; a background thread turns batches
into segments (temporary name, then rename). Nothing here opens DuckDB.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from suite.schema import REQUIRED_SEGMENT_COLUMNS, records_to_arrow

Rows = list[tuple[object, ...]]

log = logging.getLogger("aiops.spool")

SEGMENT_SUFFIX = ".parquet"
# <UTC time>-<gateway id>-<sequence>.parquet; the time first so names sort by age.
SEGMENT_NAME_RE = re.compile(r"^\d{8}T\d{6}\d{6}Z-[A-Za-z0-9_.]+-\d{8}\.parquet$")


def spool_segment_name(gateway_id: str, seq: int, now: float | None = None) -> str:
    t = time.time() if now is None else now
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(t)) + f"{int((t % 1) * 1e6):06d}Z"
    return f"{stamp}-{gateway_id}-{seq:08d}{SEGMENT_SUFFIX}"


def write_segment_atomically(
    spool_dir: Path,
    name: str,
    rows: Rows,
    to_arrow: Callable[[Rows], object] = records_to_arrow,
) -> Path:
    """Write rows as a Parquet segment: to a hidden temporary name, fsync, then rename."""
    table = to_arrow(rows)
    final = spool_dir / name
    tmp = spool_dir / f".{name}.tmp"
    with open(tmp, "wb") as fh:
        pq.write_table(table, fh, compression="zstd")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    return final


def list_ready_segments(spool_dir: Path) -> list[Path]:
    """Segments ready to load, oldest first. Temporary and hidden files are not ready."""
    try:
        entries = os.scandir(spool_dir)
    except FileNotFoundError:
        return []
    with entries:
        names = [
            e.name
            for e in entries
            if e.is_file() and not e.name.startswith(".") and e.name.endswith(SEGMENT_SUFFIX)
        ]
    return [spool_dir / n for n in sorted(names)]


def list_foreign_files(spool_dir: Path, min_age_seconds: float = 60.0) -> list[Path]:
    """Files in the spool that no gateway wrote and no gateway is writing (old enough)."""
    out = []
    now = time.time()
    try:
        entries = list(os.scandir(spool_dir))
    except FileNotFoundError:
        return []
    for e in entries:
        if not e.is_file():
            continue
        if e.name.endswith(SEGMENT_SUFFIX) and not e.name.startswith("."):
            continue
        if e.name.startswith(".") and e.name.endswith(".tmp"):
            # A writer that died mid-write leaves these; old ones are garbage, not data.
            if now - e.stat().st_mtime < min_age_seconds:
                continue
        out.append(Path(e.path))
    return out


def segment_problem(
    path: Path, required: tuple[str, ...] = REQUIRED_SEGMENT_COLUMNS
) -> tuple[int, list[str]] | str:
    """(row count, column names) of a readable segment, or why it is not a segment of ours."""
    try:
        meta = pq.read_metadata(path)
        names = list(meta.schema.to_arrow_schema().names)
    except Exception as e:  # pyarrow raises several types for garbage
        return f"not a readable Parquet file ({type(e).__name__}: {e})"
    missing = [c for c in required if c not in names]
    if missing:
        return f"missing required columns {missing} (not a gateway segment)"
    return meta.num_rows, names


def quarantine(path: Path, quarantine_dir: Path, reason: str) -> Path:
    quarantine_dir.mkdir(parents=True, exist_ok=True)
    target = quarantine_dir / path.name.lstrip(".")
    if target.exists():
        target = quarantine_dir / f"{int(time.time() * 1000)}-{path.name.lstrip('.')}"
    shutil.move(str(path), target)
    log.warning("quarantined %s -> %s: %s", path.name, target, reason)
    return target


@dataclass
class SpoolCounters:
    received: int = 0
    written: int = 0
    dropped: int = 0
    segments: int = 0
    write_failures: int = 0
    last_error: str | None = None
    started_at: float = field(default_factory=time.time)


class SpoolWriter:
    """Batches records in memory and flushes them to segments from a background thread.

    `append` is the only call on the proxy's hot path: a list append, no I/O, no lock
    beyond the GIL. If writing fails the rows stay in memory up to `max_backlog_rows`;
    past that the oldest are dropped and counted, loudly.
    """

    def __init__(
        self,
        spool_dir: Path,
        gateway_id: str,
        *,
        flush_interval: float = 1.0,
        flush_rows: int = 5000,
        max_backlog_rows: int = 1_000_000,
        status_path: Path | None = None,
        write_segment: Callable[[Path, str, Rows], Path] = write_segment_atomically,
        prepare_rows: Callable[[list[object]], Rows] | None = None,
    ) -> None:
        self.spool_dir = spool_dir
        self.gateway_id = gateway_id
        self.flush_interval = flush_interval
        self.flush_rows = flush_rows
        self.max_backlog_rows = max_backlog_rows
        self.status_path = status_path
        self._write_segment = write_segment
        # Turns what hooks appended into final rows, in this thread, off the proxy's loop
        # (LLM usage parsing, redaction).
        self._prepare_rows = prepare_rows
        self._rows: deque[object] = deque()
        self._backlog: list[Rows] = []
        self._seq = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._flush_lock = threading.Lock()
        self.counters = SpoolCounters()

    # -- hot path -------------------------------------------------------------------
    def append(self, row: object) -> None:
        self._rows.append(row)
        self.counters.received += 1
        if len(self._rows) >= self.flush_rows:
            self._wake.set()

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> None:
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="aiops-spool-writer", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the thread and flush everything; safe to call twice."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.flush()
        if self._backlog:
            n = sum(len(b) for b in self._backlog)
            log.error("spool: %d records could not be written at shutdown and are lost", n)
            self.counters.dropped += n
            self._backlog.clear()
        self.write_status()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.flush()
            except Exception:  # never let the writer thread die silently
                log.exception("spool: unexpected error while flushing")
            self.write_status()

    # -- flushing -------------------------------------------------------------------
    def flush(self) -> int:
        """Write pending rows (and any backlog) as segments; returns rows written."""
        with self._flush_lock:
            # popleft is atomic, so a hook appending meanwhile can never lose a row
            # (swapping lists could: a hook may hold the old list across the swap).
            pending = self._rows
            items = [pending.popleft() for _ in range(len(pending))]
            if items:
                rows = self._prepare_rows(items) if self._prepare_rows else items
                self._backlog.append(rows)  # type: ignore[arg-type]
            written = 0
            while self._backlog:
                batch = self._backlog[0]
                self._seq += 1
                name = spool_segment_name(self.gateway_id, self._seq)
                try:
                    self._write_segment(self.spool_dir, name, batch)
                except Exception as e:
                    self.counters.write_failures += 1
                    self.counters.last_error = f"{type(e).__name__}: {e}"
                    self._enforce_backlog_bound()
                    log.error(
                        "spool: cannot write segment (%s); %d records held in memory",
                        self.counters.last_error,
                        self.backlog_rows,
                    )
                    break
                self._backlog.pop(0)
                written += len(batch)
                self.counters.written += len(batch)
                self.counters.segments += 1
            return written

    @property
    def backlog_rows(self) -> int:
        return sum(len(b) for b in self._backlog) + len(self._rows)

    def _enforce_backlog_bound(self) -> None:
        excess = sum(len(b) for b in self._backlog) - self.max_backlog_rows
        while excess > 0 and self._backlog:
            oldest = self._backlog[0]
            if len(oldest) <= excess:
                self._backlog.pop(0)
                dropped = len(oldest)
            else:
                del oldest[:excess]
                dropped = excess
            excess -= dropped
            self.counters.dropped += dropped
            log.error(
                "spool: backlog over %d rows: DROPPED %d records (total dropped %d)",
                self.max_backlog_rows,
                dropped,
                self.counters.dropped,
            )

    def status(self) -> dict[str, object]:
        c = self.counters
        return {
            "gateway_id": self.gateway_id,
            "pid": os.getpid(),
            "received": c.received,
            "written": c.written,
            "dropped": c.dropped,
            "backlog": self.backlog_rows,
            "segments": c.segments,
            "write_failures": c.write_failures,
            "last_error": c.last_error,
            "started_at": c.started_at,
            "updated_at": time.time(),
        }

    def write_status(self) -> None:
        if self.status_path is None:
            return
        try:
            tmp = self.status_path.with_name(f".{self.status_path.name}.tmp")
            tmp.write_text(json.dumps(self.status()))
            os.replace(tmp, self.status_path)
        except OSError as e:
            log.warning("spool: cannot write status file %s: %s", self.status_path, e)

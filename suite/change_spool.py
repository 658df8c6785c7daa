"""Change records that processes without the store (the gateway) hand to the worker.

A gateway must never open DuckDB, yet config reloads, chaos drills and its admin
endpoint all record changes. It writes each as a one-row Parquet segment under
`spool/changes/` (temporary name, then rename); the ingest job loads them into
`changes` exactly once, like requests.
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from suite.clock import naive_utc, utc_now
from suite.spool import spool_segment_name, write_segment_atomically

CHANGES_SUBDIR = "changes"

CHANGE_ARROW_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string()),
        pa.field("ts", pa.timestamp("us")),
        pa.field("service", pa.string()),
        pa.field("kind", pa.string()),
        pa.field("summary", pa.string()),
        pa.field("status", pa.string()),
        pa.field("source", pa.string()),
        pa.field("risk", pa.string()),
        pa.field("change_type", pa.string()),
        pa.field("window_start", pa.timestamp("us")),
        pa.field("window_end", pa.timestamp("us")),
        pa.field("requested_by", pa.string()),
        pa.field("approved_by", pa.string()),
        pa.field("approved_at", pa.timestamp("us")),
        pa.field("implemented_at", pa.timestamp("us")),
        pa.field("closed_at", pa.timestamp("us")),
        pa.field("detail", pa.string()),
        pa.field("created_at", pa.timestamp("us")),
        pa.field("updated_at", pa.timestamp("us")),
    ]
)
CHANGE_COLUMN_NAMES = tuple(CHANGE_ARROW_SCHEMA.names)

_seq = itertools.count(1)
_seq_lock = threading.Lock()


def new_change_id() -> str:
    """A change id, "CHG-" and 10 hex digits: unique without asking the store."""
    return "CHG-" + secrets.token_hex(5).upper()


def spool_change(
    spool_dir: Path,
    *,
    service: str,
    kind: str,
    summary: str,
    source: str,
    status: str = "implemented",
    ts: datetime | None = None,
    risk: str | None = None,
    change_type: str | None = "standard",
    window_start: datetime | None = None,
    window_end: datetime | None = None,
    requested_by: str | None = None,
    approved_by: str | None = None,
    detail: dict[str, Any] | None = None,
    change_id: str | None = None,
) -> str:
    """Write one change as a spool segment; returns its id. Safe from any thread."""
    at = naive_utc(ts)
    now = utc_now()
    cid = change_id or new_change_id()
    row = {
        "id": cid,
        "ts": at,
        "service": service,
        "kind": kind,
        "summary": summary,
        "status": status,
        "source": source,
        "risk": risk,
        "change_type": change_type,
        "window_start": naive_utc(window_start) if window_start else None,
        "window_end": naive_utc(window_end) if window_end else None,
        "requested_by": requested_by,
        "approved_by": approved_by,
        "approved_at": None,
        "implemented_at": at if status in ("implemented", "verified", "rolled_back") else None,
        "closed_at": None,
        "detail": json.dumps(detail, default=str, sort_keys=True) if detail else None,
        "created_at": now,
        "updated_at": now,
    }
    table = pa.Table.from_pylist([row], schema=CHANGE_ARROW_SCHEMA)
    directory = spool_dir / CHANGES_SUBDIR
    directory.mkdir(parents=True, exist_ok=True)
    with _seq_lock:
        seq = next(_seq)
    name = spool_segment_name(f"chg{os.getpid()}", seq)
    write_segment_atomically(directory, name, [], to_arrow=lambda _rows: table)
    return cid
